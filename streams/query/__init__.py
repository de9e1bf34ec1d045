"""Analysts' reports over the Parquet history, run with DuckDB.

Nothing a user types is pasted into SQL: checkpoint, days, direction and limits are bound
parameters, and so is the data itself. The files are listed here with ``pathlib`` (which
treats the root literally, so a data root containing ``[`` or ``*`` still works, and which
lets us skip dot-files such as a half-written ``.tmp-*`` file) and passed as one bound
list: ``read_parquet($files, hive_partitioning = true, ...)``. DuckDB 2.0 accepts a bound
parameter there, as a string glob or a list of paths; it does not accept an *empty* list,
so a dataset with no files (no alerts yet) short-circuits to an empty result.

Folder names prune files before DuckDB opens them; the same filters are also in each
query's WHERE clause, so the SQL is correct on its own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from streams.sinks.parquet.layout import ALERTS, DAILY_COUNTS, EVENTS

REPORTS = ("daily", "nationality", "alerts", "reconcile", "all")
FORMATS = ("table", "csv", "json")

DayLike = date | str | None

_SCAN = (
    "read_parquet($files, hive_partitioning = true, union_by_name = true, "
    "hive_types = {'date': DATE, 'checkpoint': VARCHAR})"
)
_FILTER = (
    "($checkpoint IS NULL OR checkpoint = $checkpoint) "
    "AND ($since IS NULL OR date >= $since) "
    "AND ($until IS NULL OR date <= $until)"
)

_DAILY_TOTALS_SQL = f"""
SELECT date AS local_day, checkpoint AS checkpoint_id, direction, sum(count)::BIGINT AS total
FROM {_SCAN}
WHERE {_FILTER}
GROUP BY ALL
ORDER BY local_day, checkpoint_id, direction
"""

_NATIONALITY_MIX_SQL = f"""
WITH totals AS (
    SELECT checkpoint, direction, nationality, sum(count)::BIGINT AS total
    FROM {_SCAN}
    WHERE {_FILTER} AND ($direction IS NULL OR direction = $direction)
    GROUP BY ALL
)
SELECT
    checkpoint AS checkpoint_id,
    direction,
    nationality,
    total,
    coalesce(total / nullif(sum(total) OVER (PARTITION BY checkpoint, direction), 0), 0.0)
        AS share
FROM totals
QUALIFY $top IS NULL
    OR row_number() OVER (PARTITION BY checkpoint, direction ORDER BY total DESC, nationality)
        <= $top
ORDER BY checkpoint_id, direction, total DESC, nationality
"""

_ALERTS_SQL = f"""
SELECT
    as_of, date AS local_day, checkpoint AS checkpoint_id, checkpoint_name, direction, kind,
    status, "window", observed, expected, ratio, score, summary, drivers_json,
    raised_at, alert_id, episode_id, version
FROM {_SCAN}
WHERE {_FILTER}
ORDER BY as_of, raised_at, alert_id
"""

_COUNTED_SQL = f"""
SELECT date AS local_day, checkpoint AS checkpoint_id, sum(count)::BIGINT AS counted
FROM {_SCAN}
WHERE {_FILTER}
GROUP BY ALL
"""

_EVENTS_PER_DAY_SQL = f"""
SELECT date AS local_day, checkpoint AS checkpoint_id, count(*)::BIGINT AS events
FROM {_SCAN}
WHERE {_FILTER}
GROUP BY ALL
"""

_EVENTS_COUNT_SQL = f"SELECT count(*)::BIGINT AS events FROM {_SCAN} WHERE {_FILTER}"


# ---------------------------------------------------------------------- queries


def daily_totals(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> list[dict[str, Any]]:
    """Crossings per local day, checkpoint and direction, from the daily count snapshots."""
    return _query(_DAILY_TOTALS_SQL, root, DAILY_COUNTS, checkpoint, since, until)


def nationality_mix(
    root: Path,
    *,
    checkpoint: str | None = None,
    since: DayLike = None,
    until: DayLike = None,
    direction: str | None = None,
    top: int | None = 10,
) -> list[dict[str, Any]]:
    """Per checkpoint and direction, the ``top`` nationalities by crossings over the days
    selected, each with its share of that checkpoint-direction's total (all nationalities,
    not only the top ones). ``top=None`` lists every nationality."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top must be a positive int or None, got {top!r}")
    extra = {"direction": direction, "top": top}
    return _query(_NATIONALITY_MIX_SQL, root, DAILY_COUNTS, checkpoint, since, until, extra)


def alerts(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> list[dict[str, Any]]:
    """Alert messages ordered by ``as_of``; ``drivers`` is decoded back into a list."""
    rows = _query(_ALERTS_SQL, root, ALERTS, checkpoint, since, until)
    for row in rows:
        row["drivers"] = json.loads(row.pop("drivers_json"))
    return rows


def events_count(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> int:
    """Raw events kept in history for the checkpoint-days selected."""
    rows = _query(_EVENTS_COUNT_SQL, root, EVENTS, checkpoint, since, until)
    return rows[0]["events"] if rows else 0


def reconcile(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> dict[str, Any]:
    """Compare the daily count snapshots with the raw events, per checkpoint-day.

    ``agree`` is true when, for every checkpoint-day, sum(daily_counts.count) equals the
    number of rows in ``events``: the counts and the raw history tell the same story.
    A difference means a snapshot is behind its events (or duplicates were replayed into
    the append-only events after a crash).
    """
    counted = _query(_COUNTED_SQL, root, DAILY_COUNTS, checkpoint, since, until)
    events = _query(_EVENTS_PER_DAY_SQL, root, EVENTS, checkpoint, since, until)
    merged: dict[tuple[date, str], dict[str, Any]] = {}
    for row in counted:
        key = (row["local_day"], row["checkpoint_id"])
        merged[key] = {**row, "events": 0}
    for row in events:
        key = (row["local_day"], row["checkpoint_id"])
        merged.setdefault(key, {**row, "counted": 0})["events"] = row["events"]
    days = []
    for key in sorted(merged):
        row = merged[key]
        days.append(
            {
                "local_day": row["local_day"],
                "checkpoint_id": row["checkpoint_id"],
                "counted": row["counted"],
                "events": row["events"],
                "difference": row["counted"] - row["events"],
            }
        )
    mismatched = sum(1 for row in days if row["difference"] != 0)
    return {
        "agree": mismatched == 0,
        "checkpoint_days": len(days),
        "mismatched_days": mismatched,
        "counted_total": sum(row["counted"] for row in days),
        "events_total": sum(row["events"] for row in days),
        "days": days,
    }


def _query(
    sql: str,
    root: Path,
    dataset: str,
    checkpoint: str | None,
    since: DayLike,
    until: DayLike,
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    since_day, until_day = _as_day("since", since), _as_day("until", until)
    files = _partition_files(Path(root), dataset, checkpoint, since_day, until_day)
    if not files:
        return []
    parameters = {
        "files": files,
        "checkpoint": checkpoint,
        "since": since_day,
        "until": until_day,
        **(extra or {}),
    }
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        cursor = connection.execute(sql, parameters)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


def _partition_files(
    root: Path, dataset: str, checkpoint: str | None, since: date | None, until: date | None
) -> list[str]:
    """Parquet files of a dataset whose folders match the filters; dot-files skipped."""
    files = []
    for path in (root / dataset).glob("date=*/checkpoint=*/*.parquet"):
        if path.name.startswith("."):
            continue
        try:
            local_day = date.fromisoformat(path.parent.parent.name.removeprefix("date="))
        except ValueError:
            continue  # not a folder this project writes
        if checkpoint is not None and path.parent.name != f"checkpoint={checkpoint}":
            continue
        if (since is not None and local_day < since) or (until is not None and local_day > until):
            continue
        files.append(str(path))
    return sorted(files)


def _as_day(name: str, value: DayLike) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be a day like 2025-03-01, got {value!r}") from None
    raise ValueError(f"{name} must be a date or YYYY-MM-DD, got {value!r}")


# ---------------------------------------------------------------------- rendering


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


def _table(rows: Sequence[Mapping[str, Any]], title: str | None) -> str:
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

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines.append(line(columns))
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(line(values) for values in cells)
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
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2)


# ---------------------------------------------------------------------- CLI entry

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
) -> str:
    """Text for ``crossings report``: one report (daily|nationality|alerts|reconcile) or
    ``all`` of them. ``all`` gives titled tables, CSV sections each headed by a
    ``# <title>`` line, or one JSON object keyed by report name."""
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
        elif name == "alerts" and fmt == "table":
            rows = [{column: row[column] for column in _ALERT_TABLE_COLUMNS} for row in data[name]]
        else:
            rows = data[name]
        if fmt == "table":
            sections.append(_table(rows, title))
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
    if outcome["agree"]:
        return (
            f"agree ({outcome['checkpoint_days']:,} checkpoint-days, {outcome['events_total']:,} crossings)"
        )
    return (
        f"MISMATCH in {outcome['mismatched_days']:,} of {outcome['checkpoint_days']:,} "
        f"checkpoint-days (counted {outcome['counted_total']:,}, "
        f"events {outcome['events_total']:,})"
    )
