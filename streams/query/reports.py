"""The analysts' reports: daily totals, nationality mix, alerts, event counts and the
reconciliation of daily counts against raw events. Each returns plain rows."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from streams.query.scan import FILTER, SCAN, DayLike, DuckLakeRoot, fetch_rows, lake_at
from streams.sinks.parquet.layout import ALERTS, DAILY_COUNTS, EVENTS, STAGING

_DAILY_TOTALS_SQL = f"""
SELECT date AS local_day, checkpoint AS checkpoint_id, direction, sum(count)::BIGINT AS total
FROM {SCAN}
WHERE {FILTER}
GROUP BY ALL
ORDER BY local_day, checkpoint_id, direction
"""

_NATIONALITY_MIX_SQL = f"""
WITH totals AS (
    SELECT checkpoint, direction, nationality, sum(count)::BIGINT AS total
    FROM {SCAN}
    WHERE {FILTER} AND ($direction IS NULL OR direction = $direction)
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
FROM {SCAN}
WHERE {FILTER}
ORDER BY as_of, raised_at, alert_id
"""

_COUNTED_SQL = f"""
SELECT date AS local_day, checkpoint AS checkpoint_id, sum(count)::BIGINT AS counted
FROM {SCAN}
WHERE {FILTER}
GROUP BY ALL
"""

_EVENTS_PER_DAY_SQL = f"""
SELECT date AS local_day, checkpoint AS checkpoint_id, count(*)::BIGINT AS events
FROM {SCAN}
WHERE {FILTER}
GROUP BY ALL
"""

_EVENTS_COUNT_SQL = f"SELECT count(*)::BIGINT AS events FROM {SCAN} WHERE {FILTER}"


def daily_totals(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> list[dict[str, Any]]:
    """Crossings per local day, checkpoint and direction, from the daily count snapshots.

    A day with no crossings has no snapshot; between a checkpoint's first and last day in
    the selection it is listed with 0, so a closure shows as zeros rather than as a day
    that is simply missing from the table."""
    rows = fetch_rows(_DAILY_TOTALS_SQL, root, DAILY_COUNTS, checkpoint, since, until)
    return _with_empty_days(rows)


def _with_empty_days(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (sorted) with a 0 row for each day between a checkpoint's first and last
    that has none, per direction the checkpoint has. Filled here rather than in SQL: one
    scan of the snapshots keeps a query short while a worker replaces them."""
    found = {(r["local_day"], r["checkpoint_id"], r["direction"]): r["total"] for r in rows}
    spans: dict[str, tuple[date, date]] = {}
    sides: dict[str, set[str]] = {}
    for day, checkpoint_id, direction in found:
        first, last = spans.get(checkpoint_id, (day, day))
        spans[checkpoint_id] = (min(first, day), max(last, day))
        sides.setdefault(checkpoint_id, set()).add(direction)
    filled = []
    for checkpoint_id, (first, last) in spans.items():
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            for direction in sides[checkpoint_id]:
                total = found.get((day, checkpoint_id, direction), 0)
                filled.append(
                    {"local_day": day, "checkpoint_id": checkpoint_id, "direction": direction, "total": total}
                )
    filled.sort(key=lambda r: (r["local_day"], r["checkpoint_id"], r["direction"]))
    return filled


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
    return fetch_rows(_NATIONALITY_MIX_SQL, root, DAILY_COUNTS, checkpoint, since, until, extra)


def alerts(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> list[dict[str, Any]]:
    """Alert messages ordered by ``as_of``; ``drivers`` is decoded back into a list."""
    rows = fetch_rows(_ALERTS_SQL, root, ALERTS, checkpoint, since, until)
    for row in rows:
        row["drivers"] = json.loads(row.pop("drivers_json"))
    return rows


def events_count(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> int:
    """Raw events kept in history for the checkpoint-days selected."""
    rows = fetch_rows(_EVENTS_COUNT_SQL, root, EVENTS, checkpoint, since, until)
    return rows[0]["events"] if rows else 0


def reconcile(
    root: Path, *, checkpoint: str | None = None, since: DayLike = None, until: DayLike = None
) -> dict[str, Any]:
    """Compare the daily count snapshots with the raw events, per checkpoint-day.

    ``agree`` is true when, for every checkpoint-day, sum(daily_counts.count) equals the
    number of rows in ``events`` plus those staged for it (committed, not yet published):
    the counts and the raw history tell the same story. Run while a worker publishes, a
    day can read as off for that instant (a publication replaces staged files); run again.
    A difference means a snapshot is behind its events (or duplicates were replayed into
    the append-only events after a crash).
    """
    root = lake_at(root)
    counted = fetch_rows(_COUNTED_SQL, root, DAILY_COUNTS, checkpoint, since, until)
    events = fetch_rows(_EVENTS_PER_DAY_SQL, root, EVENTS, checkpoint, since, until)
    # Committed rows not published yet (CROSSINGS_LAKE_ROLL_SECONDS) wait in _staging/p<P>/.
    staged = [
        row
        for folder in ([] if isinstance(root, DuckLakeRoot) else sorted((Path(root) / STAGING).glob("p*")))
        for row in fetch_rows(_EVENTS_PER_DAY_SQL, folder, EVENTS, checkpoint, since, until)
    ]
    merged: dict[tuple[date, str], dict[str, Any]] = {}
    for row in counted:
        key = (row["local_day"], row["checkpoint_id"])
        merged[key] = {**row, "events": 0, "staged": 0}
    for name, rows in (("events", events), ("staged", staged)):
        for row in rows:
            key = (row["local_day"], row["checkpoint_id"])
            entry = merged.setdefault(key, {**row, "counted": 0, "events": 0, "staged": 0})
            entry[name] += row["events"]
    days = []
    for key in sorted(merged):
        row = merged[key]
        days.append(
            {
                "local_day": row["local_day"],
                "checkpoint_id": row["checkpoint_id"],
                "counted": row["counted"],
                "events": row["events"],
                "staged": row["staged"],
                "difference": row["counted"] - row["events"] - row["staged"],
            }
        )
    mismatched = sum(1 for row in days if row["difference"] != 0)
    return {
        "agree": mismatched == 0,
        "checkpoint_days": len(days),
        "mismatched_days": mismatched,
        "counted_total": sum(row["counted"] for row in days),
        "events_total": sum(row["events"] for row in days),
        "staged_total": sum(row["staged"] for row in days),
        "days": days,
    }
