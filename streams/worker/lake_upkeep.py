"""The worker keeps its DuckLake lake by itself: compaction and retention on a thread.

Every ``CROSSINGS_LAKE_UPKEEP_SECONDS`` (0: never) the worker that owns partition 0 of the
events topic compacts the lake and drops the days past ``CROSSINGS_LAKE_RETENTION_DAYS``
(``streams.sinks.ducklake.upkeep``). One owner keeps several workers from doing the same
work; during a rebalance two may run at once, which is safe: DuckLake refuses the later of
two conflicting transactions, the step is retried, or left to the next run. A failed run is
logged and counted, never stops the worker. Plain threading, no Faust: the Faust app only
starts and stops it (``faust_app.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date

import duckdb
from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.sinks.ducklake import upkeep

log = logging.getLogger(__name__)


class LakeUpkeepMetrics:
    """``crossings_lake_*``: what the upkeep did (the README lists them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.compactions = Counter(
            "crossings_lake_compactions",
            "Lake upkeep runs (compaction, then retention), by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.files = Gauge(
            "crossings_lake_files",
            "Parquet files the lake's current snapshot reads, after upkeep.",
            registry=registry,
        )
        self.expired_rows = Counter(
            "crossings_lake_expired_rows",
            "Rows deleted by retention (CROSSINGS_LAKE_RETENTION_DAYS), by table.",
            ["table"],
            registry=registry,
        )
        self.seconds = Gauge(
            "crossings_lake_upkeep_seconds", "How long the last upkeep run took.", registry=registry
        )
        for outcome in ("done", "failed"):
            self.compactions.labels(outcome)
        for table in (*upkeep.DAY_TABLES, upkeep.DEAD_LETTERS):
            self.expired_rows.labels(table)


class LakeUpkeep:
    """Runs :meth:`run_once` every ``interval`` seconds on a daemon thread while ``leads()``."""

    def __init__(
        self,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        *,
        retention_days: int,
        interval: float,
        metrics: LakeUpkeepMetrics,
        leads: Callable[[], bool] = lambda: True,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._connect = connect
        self.retention_days = retention_days
        self.interval = interval
        self.metrics = metrics
        self.leads = leads
        self.today = today
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Compact, then expire; True when both went through."""
        try:
            con = self._connect()
            try:
                compacted = upkeep.compact(con)
                expired = upkeep.expire(con, self.retention_days, self.today())
                if expired.total:  # the emptied files go at once, not an interval later
                    compacted = upkeep.compact(con)
            finally:
                con.close()
        except Exception:
            log.exception("lake upkeep failed; next try in %.0f s", self.interval)
            self.metrics.compactions.labels("failed").inc()
            return False
        self.metrics.compactions.labels("done").inc()
        self.metrics.files.set(compacted.files_after)
        for table, rows in expired.rows_deleted.items():
            self.metrics.expired_rows.labels(table).inc(rows)
        self.metrics.seconds.set(compacted.seconds + expired.seconds)
        return True

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="lake-upkeep", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.leads():
                self.run_once()
