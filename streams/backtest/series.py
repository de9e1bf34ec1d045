"""Count series in long form, read into the day profiles the detector reads.

``crossings backtest`` must judge a file with the very code the worker runs, and the
worker's detector reads one thing: a checkpoint-direction's day profile (total, 24 local
hourly buckets, nationality|purpose groups). So any input, a CSV or Parquet file of
(time, checkpoint, direction, count[, group]) rows or the lake's ``daily_counts``, is
turned into those profiles here, and nothing downstream knows where they came from.

Time values: a date (``2024-03-01``) or a time (``2024-03-01 14:00``, ``...T14:00Z``).
A time without an offset is the checkpoint's local wall-clock time; one with an offset
is converted to it. Values finer than an hour are summed into their hour. A file whose
time values are all dates (or midnights in a ``date`` column) is *daily*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from streams.domain.counts import DayProfile, count_event
from streams.domain.registry import Checkpoint

Granularity = Literal["hour", "day"]

#: The group of a row without a group column.
NO_GROUP = "all"


class SeriesError(ValueError):
    """A file that cannot be read as a count series; the message says what to fix."""


@dataclass(frozen=True)
class Columns:
    """Which column holds what; ``time=None`` means ``time`` if present, else ``date``."""

    time: str | None = None
    checkpoint: str = "checkpoint"
    direction: str = "direction"
    count: str = "count"
    group: str | None = "group"


@dataclass
class Series:
    """One checkpoint-direction: its counts per local day, hour and group, and its span.

    The worker's detector, at a given moment, sees today's profile only up to that
    moment; :meth:`profile` rebuilds exactly that (``through_hour``), so a backtest
    evaluation sees what the worker's would have seen."""

    checkpoint: Checkpoint
    direction: str
    #: local day -> 24 local hours -> group ("nationality|purpose") -> count
    cells: dict[date, list[dict[str, int]]] = field(default_factory=dict)
    #: First and last hour with a row, as aware UTC datetimes (whole hours).
    first: datetime | None = None
    last: datetime | None = None
    _full: dict[date, DayProfile] = field(default_factory=dict, repr=False)
    #: The instant ``seen`` last took in (``build_series`` hands each row of one time the
    #: same one): seen again, it changes nothing.
    _seen: datetime | None = field(default=None, repr=False, compare=False)

    def add(self, local: datetime, group: str, n: int) -> None:
        day = local.date()
        hours = self.cells.get(day)
        if hours is None:
            hours = self.cells[day] = [{} for _ in range(24)]
        bucket = hours[local.hour]
        bucket[group] = bucket.get(group, 0) + n
        self._full.pop(day, None)
        self.seen(local)

    def seen(self, local: datetime) -> None:
        if local is self._seen:
            return
        self._seen = local
        hour = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        if self.first is None or hour < self.first:
            self.first = hour
        if self.last is None or hour > self.last:
            self.last = hour

    @property
    def summed(self) -> dict[date, DayProfile]:
        """The whole days ``profile`` has summed so far (its cache; ``add`` drops a day's)."""
        return self._full

    def profile(self, day: date, through_hour: int = 24) -> DayProfile | None:
        """The day's profile counting only local hours before ``through_hour``."""
        if through_hour >= 24 and day in self._full:
            return self._full[day]
        hours = self.cells.get(day)
        if hours is None:
            return None
        profile: DayProfile | None = None
        for hour, bucket in enumerate(hours[:through_hour]):
            for group, n in bucket.items():
                nationality, purpose = group.split("|", 1) if "|" in group else (group, "-")
                profile = count_event(profile, hour, nationality, purpose, n)
        if through_hour >= 24 and profile is not None:
            self._full[day] = profile
        return profile


@dataclass
class SeriesSet:
    granularity: Granularity
    series: dict[tuple[str, str], Series]
    rows: int
    #: Checkpoint ids not in the registry (judged as ``unknown_checkpoint``).
    unknown: tuple[str, ...] = ()

    @property
    def last(self) -> datetime:
        return max(s.last for s in self.series.values() if s.last is not None)

    @property
    def first(self) -> datetime:
        return min(s.first for s in self.series.values() if s.first is not None)


def unknown_checkpoint(checkpoint_id: str, tz: str = "UTC", countries: tuple[str, ...] = ()) -> Checkpoint:
    """A series not in the registry: judged in ``tz``, with the holidays of ``countries``."""
    return Checkpoint(
        checkpoint_id=checkpoint_id,
        name=checkpoint_id,
        kind="unknown",
        country_a=countries[0] if countries else "",
        country_b=countries[1] if len(countries) > 1 else None,
        region="",
        tz=ZoneInfo(tz),
        lat=0.0,
        lon=0.0,
    )


def read_rows(path: Path, columns: Columns) -> tuple[list[dict[str, Any]], str]:
    """Rows of a CSV or Parquet file (or the lake's ``daily_counts``), and the time column used."""
    import duckdb

    path = Path(path)
    con = duckdb.connect()
    if path.is_dir():
        folder = path / "daily_counts" if (path / "daily_counts").is_dir() else path
        files = sorted(folder.glob("*/*/*.parquet"))
        if not files:
            raise SeriesError(f"{path}: no daily_counts Parquet files (date=*/checkpoint=*/*.parquet)")
        relation = con.read_parquet([str(f) for f in files], hive_partitioning=True)
        query = (
            "SELECT CAST(date AS VARCHAR) AS date, checkpoint, direction, "
            "nationality || '|' || purpose AS \"group\", count FROM relation"
        )
        table = con.sql(query)
        return [dict(zip(table.columns, r, strict=True)) for r in table.fetchall()], "date"
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet"):
            relation = con.read_parquet(str(path))
        elif any(suffix.endswith(s) for s in (".csv", ".csv.gz", ".tsv", ".txt")):
            relation = con.read_csv(str(path), all_varchar=True)
        else:
            raise SeriesError(f"{path}: not a .csv, .csv.gz or .parquet file, nor a lake folder")
    except duckdb.Error as error:
        raise SeriesError(f"{path}: cannot be read: {error}") from None
    names = relation.columns
    time_column = columns.time or ("time" if "time" in names else "date")
    needed = [time_column, columns.count]
    missing = [c for c in needed if c not in names]
    if missing:
        raise SeriesError(
            f"{path}: no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(names)}); "
            "name them with --time-column/--count-column"
        )
    rows = [dict(zip(names, r, strict=True)) for r in relation.fetchall()]
    return rows, time_column


def _parse_time(value: Any) -> tuple[datetime, bool]:
    """(naive or aware datetime, whether it was a bare date)."""
    if isinstance(value, datetime):
        return value, False
    if isinstance(value, date):
        return datetime.combine(value, time()), True
    text = str(value).strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time()), True
    return datetime.fromisoformat(text.replace(" ", "T", 1)), False


def build_series(
    rows: Iterable[Mapping[str, Any]],
    time_column: str,
    columns: Columns,
    registry: Mapping[str, Checkpoint],
    *,
    default_checkpoint: str = "series",
    default_direction: str = "all",
    tz: str = "UTC",
    countries: tuple[str, ...] = (),
) -> SeriesSet:
    """Aggregate rows into per checkpoint-direction day profiles (hourly buckets, groups)."""
    found: dict[tuple[str, str], Series] = {}
    all_dates = True
    parsed: list[tuple[str, str, datetime, str, int]] = []
    # A file repeats each time value once per series and group: parse each one once.
    times: dict[Any, tuple[datetime, bool]] = {}
    n = 0
    for n, row in enumerate(rows, start=1):
        raw = row.get(time_column)
        if raw is None or raw == "":
            raise SeriesError(f"row {n}: empty {time_column!r}")
        try:
            known = times.get(raw)
            when, bare = known if known is not None else times.setdefault(raw, _parse_time(raw))
            count = int(float(row[columns.count]))
        except (ValueError, TypeError) as error:
            raise SeriesError(f"row {n}: cannot read {time_column!r}/{columns.count!r}: {error}") from None
        all_dates = all_dates and (bare or (time_column == "date" and when.time() == time()))
        checkpoint_id = str(row.get(columns.checkpoint) or default_checkpoint)
        direction = str(row.get(columns.direction) or default_direction)
        group = str(row.get(columns.group) or NO_GROUP) if columns.group else NO_GROUP
        parsed.append((checkpoint_id, direction, when, group, count))
    if not parsed:
        raise SeriesError("no rows")
    instants: dict[tuple[datetime, ZoneInfo], datetime] = {}
    for checkpoint_id, direction, when, group, count in parsed:
        series = found.get((checkpoint_id, direction))
        if series is None:
            checkpoint = registry.get(checkpoint_id) or unknown_checkpoint(checkpoint_id, tz, countries)
            series = found[(checkpoint_id, direction)] = Series(checkpoint, direction)
        zone = series.checkpoint.tz
        # One local instant per time and zone (a file repeats each time per series and group).
        local = instants.get((when, zone))
        if local is None:
            local = instants[(when, zone)] = (
                when.replace(tzinfo=zone) if when.tzinfo is None else when.astimezone(zone)
            )
        if count:
            series.add(local, group, count)
        else:  # a zero row still says the series existed then (a closed post reports zeros)
            series.seen(local)
    unknown = tuple(sorted({c for c, _ in found if c not in registry}))
    return SeriesSet("day" if all_dates else "hour", dict(sorted(found.items())), n, unknown)


def assumed_warning(unknown: Sequence[str], tz: str, countries: Sequence[str]) -> str | None:
    """What a backtest says when it judged ids the registry does not know: which zone and
    holidays it assumed for them, and how to set them. None when there are none."""
    if not unknown:
        return None
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    holidays = f"the public holidays of {' and '.join(countries)}" if countries else "no public holidays"
    return (
        f"warning: {len(unknown)} checkpoint id(s) not in the registry ({shown}): judged in time zone "
        f"{tz} with {holidays}; set --tz and --country (or --registry) if that is wrong"
    )


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def day_range(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
