"""Analysts' reports over the Parquet history, run with DuckDB (``crossings report``).

``scan`` lists the files and runs bound queries, ``reports`` holds the queries, ``render``
turns rows into a table, CSV or JSON.
"""

from streams.query.render import FORMATS, REPORTS, render, report_main
from streams.query.reports import alerts, daily_totals, events_count, nationality_mix, reconcile
from streams.query.scan import DayLike

__all__ = [
    "FORMATS",
    "REPORTS",
    "DayLike",
    "alerts",
    "daily_totals",
    "events_count",
    "nationality_mix",
    "reconcile",
    "render",
    "report_main",
]
