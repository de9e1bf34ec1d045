"""Score episodes against labelled anomalies: recall, delay and false alarms.

A label is (date or time, checkpoint, kind[, direction][, end]). It is *found* by an
episode of the same kind, checkpoint (and direction, if the label names one; a post-level
episode, direction ``both``, speaks for either) that opens
between ``before`` ahead of the label's start and ``after`` past it (two days: an alarm
weeks into a crackdown is not the crackdown's alarm), and, if it opened ahead of the
label, is still open at the label's start (one that ended before it saw something else);
the delay is from the label's start to the first such episode's opening. An episode that
finds no label, and does not open inside any labelled period of its series (a second
episode during the same closure is not a false alarm), is a false alarm.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from streams.backtest.run import EpisodeRow
from streams.backtest.series import SeriesError, SeriesSet
from streams.domain.detect import POST_DIRECTION
from streams.domain.registry import Checkpoint


@dataclass(frozen=True)
class Label:
    start: datetime
    end: datetime
    checkpoint: str
    kind: str
    direction: str | None = None
    name: str = ""

    def _direction_matches(self, row: EpisodeRow) -> bool:
        return self.direction in (None, "", row.direction) or row.direction == POST_DIRECTION

    def covers(self, row: EpisodeRow, before: timedelta, after: timedelta) -> bool:
        return (
            row.checkpoint == self.checkpoint
            and row.kind == self.kind
            and self._direction_matches(row)
            and self.start - before <= row.opened_at <= self.start + after
            and (row.opened_at >= self.start or row.resolved_at is None or row.resolved_at > self.start)
        )

    def during(self, row: EpisodeRow, after: timedelta) -> bool:
        """The episode opened while this label's anomaly (of any kind) was going on."""
        return (
            row.checkpoint == self.checkpoint
            and self._direction_matches(row)
            and self.start <= row.opened_at <= self.end + after
        )


@dataclass
class Score:
    labels: int
    found: int
    delays_h: list[float]
    false_alarms: int
    series: int
    days: float
    missed: list[Label]

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else float("nan")

    @property
    def median_delay_h(self) -> float:
        return statistics.median(self.delays_h) if self.delays_h else float("nan")

    @property
    def false_alarms_per_series_90d(self) -> float:
        return self.false_alarms / max(self.series, 1) / max(self.days, 1e-9) * 90

    def lines(self) -> list[str]:
        missed = ", ".join(f"{m.checkpoint} {m.kind} {m.start:%Y-%m-%d}" for m in self.missed)
        return [
            f"recall: {self.found}/{self.labels} labels found ({self.recall:.0%})",
            f"median delay: {self.median_delay_h:.1f} h (from each label's start to the first alert)",
            f"false alarms: {self.false_alarms} = {self.false_alarms_per_series_90d:.2f} per series "
            f"per 90 days ({self.series} series, {self.days:.0f} days each)",
            *([f"missed: {missed}"] if missed else []),
        ]


def _when(value: Any, zone: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        text = str(value).strip()
        moment = (
            datetime.combine(date.fromisoformat(text), time())
            if len(text) == 10
            else datetime.fromisoformat(text.replace(" ", "T", 1))
        )
    return (moment.replace(tzinfo=zone) if moment.tzinfo is None else moment).astimezone(UTC)


def read_labels(path: Path, checkpoints: Mapping[str, Checkpoint]) -> list[Label]:
    """Labels from a CSV: ``date`` (or ``time``), ``checkpoint``, ``kind``, optional
    ``direction``, ``end`` (last day or time of the anomaly) and ``name``. Dates are the
    checkpoint's local days."""
    import duckdb

    relation = duckdb.connect().read_csv(str(path), all_varchar=True)
    names = relation.columns
    when = "time" if "time" in names else "date"
    for needed in (when, "checkpoint", "kind"):
        if needed not in names:
            raise SeriesError(f"{path}: labels need columns date (or time), checkpoint, kind; no {needed!r}")
    labels = []
    for values in relation.fetchall():
        row = dict(zip(names, values, strict=True))
        checkpoint = checkpoints.get(row["checkpoint"])
        zone = checkpoint.tz if checkpoint else UTC
        start = _when(row[when], zone)
        end = start
        if row.get("end"):
            end = _when(row["end"], zone)
            if len(str(row["end"]).strip()) == 10:
                end += timedelta(days=1) - timedelta(seconds=1)
        labels.append(
            Label(
                start,
                end,
                row["checkpoint"],
                row["kind"],
                row.get("direction") or None,
                row.get("name") or "",
            )
        )
    return labels


def score(
    rows: Sequence[EpisodeRow],
    labels: Sequence[Label],
    data: SeriesSet,
    *,
    before: timedelta = timedelta(hours=0),
    after: timedelta = timedelta(days=2),
    scored_from: datetime | None = None,
) -> Score:
    """Recall, delays and false alarms; episodes and labels before ``scored_from`` (a
    warm-up the caller chooses) are not counted."""
    if scored_from is not None:
        rows = [r for r in rows if r.opened_at >= scored_from]
        labels = [label for label in labels if label.start >= scored_from]
    delays, missed, matched = [], [], set()
    for label in labels:
        hits = [r for r in rows if label.covers(r, before, after)]
        if hits:
            first = min(hits, key=lambda r: r.opened_at)
            delays.append((first.opened_at - label.start).total_seconds() / 3600)
            matched.update(id(r) for r in hits)
        else:
            missed.append(label)
    false_alarms = sum(
        1 for r in rows if id(r) not in matched and not any(label.during(r, after) for label in labels)
    )
    start = scored_from or data.first
    days = (data.last - start).total_seconds() / 86400 + (1 if data.granularity == "day" else 0)
    return Score(len(labels), len(labels) - len(missed), delays, false_alarms, len(data.series), days, missed)
