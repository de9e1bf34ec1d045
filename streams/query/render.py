"""Rows as a terminal table, CSV or JSON, and the text of ``crossings report``."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.query.contents import Staged
from streams.query.reports import alerts, daily_totals, nationality_mix, reconcile
from streams.query.scan import DayLike

REPORTS = ("daily", "nationality", "alerts", "reconcile", "all")
FORMATS = ("table", "csv", "json")


def render(rows: Sequence[Mapping[str, Any]], fmt: str, title: str | None = None) -> str:
    """Rows as an aligned terminal table, CSV (header + rows) or a JSON array.

    ``title`` heads the table; CSV and JSON stay machine-readable and omit it.
    """
    if fmt == "table":
        return _table(rows, title)
    if fmt == "csv":
        return _csv(rows)
    if fmt == "json":
        return _json(list(rows))
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], title: str | None, line_width: int | None = None) -> str:
    """An aligned table. With ``line_width``, a table wider than that shows its last column
    (an alert's summary, a few hundred characters) under each row instead, wrapped to it."""
    lines = [title] if title else []
    columns = _columns(rows)
    if not rows:
        lines.append("(no rows)")
        return "\n".join(lines)
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    numeric = [
        all(isinstance(row.get(column), int | float) or row.get(column) is None for row in rows)
        for column in columns
    ]
    widths = [max(len(column), *(len(line[index]) for line in cells)) for index, column in enumerate(columns)]

    below = (
        line_width is not None
        and len(columns) > 1
        and not numeric[-1]
        and sum(widths) + 2 * (len(widths) - 1) > line_width
    )
    if below:
        assert line_width is not None
        lines.append(f"({columns[-1]} under each row)")
        columns, widths, numeric = columns[:-1], widths[:-1], numeric[:-1]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines.append(line(columns))
    lines.append("  ".join("-" * width for width in widths))
    for values in cells:
        if not below:
            lines.append(line(values))
            continue
        lines.append(line(values[:-1]))
        lines.extend(
            textwrap.wrap(
                values[-1],
                line_width,
                initial_indent="    ",
                subsequent_indent="    ",
                break_on_hyphens=False,  # ranges such as 373-596 stay whole
            )
        )
    return "\n".join(lines)


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = _columns(rows)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, Decimal):  # DuckDB's sum of integers is a HUGEINT, read as Decimal
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2)


_ALERT_TABLE_COLUMNS = (
    "as_of",
    "local_day",
    "checkpoint_id",
    "direction",
    "kind",
    "status",
    "window",
    "observed",
    "expected",
    "ratio",
    "score",
    "summary",
)


def report_main(
    root: Path,
    what: str,
    fmt: str,
    checkpoint: str | None,
    since: DayLike,
    until: DayLike,
    width: int | None = None,
) -> str:
    """Text for ``crossings report``: one report (daily|nationality|alerts|reconcile) or
    ``all`` of them. ``all`` gives titled tables, CSV sections each headed by a
    ``# <title>`` line, or one JSON object keyed by report name. ``width``: tables wrap
    their last column to fit it (a terminal's width)."""
    if what not in REPORTS:
        raise ValueError(f"report must be one of {', '.join(REPORTS)}, got {what!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    filters = {"checkpoint": checkpoint, "since": since, "until": until}
    names = REPORTS[:-1] if what == "all" else (what,)
    results = {
        "daily": lambda: daily_totals(root, **filters),
        "nationality": lambda: nationality_mix(root, **filters),
        "alerts": lambda: alerts(root, **filters),
        "reconcile": lambda: reconcile(root, **filters),
    }
    data = {name: results[name]() for name in names}
    if fmt == "json":
        return _json(data if what == "all" else data[what])
    sections = []
    for name in names:
        title = _TITLES[name]
        if name == "reconcile":
            outcome = data[name]
            # The per-day table only matters where the two disagree.
            rows = (
                [day for day in outcome["days"] if day["difference"]] if fmt == "table" else outcome["days"]
            )
            title = f"{title}: {_reconcile_verdict(outcome)}"
            if fmt == "table" and not rows:  # they agree: the verdict says all
                sections.append(title)
                continue
        elif name == "alerts" and fmt == "table":
            rows = [{column: row[column] for column in _ALERT_TABLE_COLUMNS} for row in data[name]]
        else:
            rows = data[name]
        if fmt == "table":
            sections.append(_table(rows, title, width))
        else:
            sections.append((f"# {title}\n" if what == "all" else "") + _csv(rows))
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


_TITLES = {
    "daily": "Crossings per local day",
    "nationality": "Nationality mix",
    "alerts": "Alerts",
    "reconcile": "Daily counts vs raw events",
}


def _reconcile_verdict(outcome: Mapping[str, Any]) -> str:
    staged = f", {outcome['staged_total']:,} of them staged" if outcome["staged_total"] else ""
    if outcome["agree"]:
        return (
            f"agree ({outcome['checkpoint_days']:,} checkpoint-days, "
            f"{outcome['events_total'] + outcome['staged_total']:,} crossings{staged})"
        )
    return (
        f"MISMATCH in {outcome['mismatched_days']:,} of {outcome['checkpoint_days']:,} "
        f"checkpoint-days (counted {outcome['counted_total']:,}, "
        f"events {outcome['events_total']:,}{staged})"
    )


def staged_note(staged: Staged, roll_seconds: float, now: float) -> str:
    """One line on rows a worker committed but has not published yet (``CROSSINGS_LAKE_ROLL_SECONDS``):
    how many, and when they will be visible."""
    parts = [
        f"{count:,} {name}" for count, name in ((staged.events, "events"), (staged.alerts, "alerts")) if count
    ]
    due = (staged.oldest or now) + roll_seconds
    if due > now:
        at = datetime.fromtimestamp(due, UTC).strftime("%H:%M UTC")
        when = f"by {at} (in {_duration(due - now)})"
    else:
        when = "at the worker's next commit"
    return (
        f"Not shown yet: {' and '.join(parts)} committed and staged by the worker, published "
        f"{when}, once the oldest is CROSSINGS_LAKE_ROLL_SECONDS={roll_seconds:g} s old, or "
        "when the worker stops. Daily counts already include them."
    )


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"
