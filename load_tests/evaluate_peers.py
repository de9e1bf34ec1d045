"""Ours beside the textbook peers (EARS C1, C2, C3; weekday median/MAD) on every data set of
:mod:`load_tests.evaluate_detector` (issue 17, item 5). Usage::

    .venv/bin/python -m load_tests.evaluate_peers                 # every data set
    .venv/bin/python -m load_tests.evaluate_peers --only bts --json results.json

Each data set is read once, the same way ``evaluate_detector`` reads it; ours is
``streams.backtest.backtest`` (the worker's detector, so its row is the one
``evaluate_detector`` prints), each peer is :mod:`load_tests.peers` on the same series
summed per local day, and all are scored by one function per data set:

- **recall**: labels (synthetic), NAB windows (nyc_taxi), ports with the April 2020 drop
  (BTS) found;
- **median delay**: hours from a label's start to the first episode that finds it
  (synthetic), from a window's start (NAB), from 2020-03-01 (BTS, whose March already
  holds the 21 March restrictions: see DETECTOR_RESULTS.md);
- **alarms per series per 90 days** in ordinary operation: unlabelled episodes of 2024
  (synthetic), false positives after NAB's probation (NAB), episodes of 2017-01 .. 2020-02
  (BTS); for ours also how many of them are group (nationality|purpose) alarms.

The real sets of ``load_tests/data`` (Hong Kong control points, Auckland pedestrians) are
scored by :func:`load_tests.real_data.scorer`, one rule for all of them (its docstring);
their tables also say how many of each event's labels each detector found.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from load_tests import detector_synthetic as synthetic
from load_tests import evaluate_detector as ev
from load_tests import real_data
from load_tests.nab_score import load_windows, score_file
from load_tests.peers import PEERS, peer_episodes
from streams.backtest import Columns, EpisodeRow, SeriesSet, backtest, build_series, score
from streams.backtest.series import local_midnight
from streams.domain.registry import load_registry

Scorer = Callable[[list[EpisodeRow]], dict[str, Any]]


def _detectors(data: SeriesSet) -> dict[str, list[EpisodeRow]]:
    found = {"ours": backtest(data)}
    for name, rule in PEERS.items():
        found[name] = peer_episodes(data, rule)
    return found


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def synthetic_part() -> tuple[SeriesSet, Scorer]:
    data, labels = ev.synthetic_data()
    scored_from = local_midnight(synthetic.SCORED_FROM, load_registry()["korday"].tz).astimezone(UTC)

    def scorer(rows: list[EpisodeRow]) -> dict[str, Any]:
        result = score(rows, labels, data, scored_from=scored_from)
        scored = [r for r in rows if r.opened_at >= scored_from]
        unlabelled = [
            r
            for r in scored
            if not any(label.covers(r, timedelta(0), timedelta(days=2)) for label in labels)
            and not any(label.during(r, timedelta(days=2)) for label in labels)
        ]
        return {
            "recall": f"{result.found}/{result.labels}",
            "median_delay_h": _median(result.delays_h),
            "alarms_per_series_90d": round(result.false_alarms_per_series_90d, 2),
            "alarms": result.false_alarms,
            "group_alarms": sum(r.cause == "group" for r in unlabelled),
            "holiday_alarms": ev._false_alarms_on(scored, labels, ev._holiday_days(data), "holiday"),
            "missed": ", ".join(m.name for m in result.missed),
        }

    return data, scorer


def nab_part() -> tuple[SeriesSet, Scorer] | str:
    root = ev.shared_data() / "nab"
    path = root / "data" / "realKnownCause" / "nyc_taxi.csv"
    if not path.exists():
        return f"skipped: {path} not found"
    with path.open() as handle:
        raw = list(csv.DictReader(handle))
    timestamps = [datetime.fromisoformat(r["timestamp"]) for r in raw]
    data = build_series(  # as evaluate_detector.evaluate_nab builds it
        ({"time": r["timestamp"], "count": r["value"]} for r in raw),
        "time",
        Columns(),
        {},
        default_checkpoint="nyc_taxi",
        countries=("US",),
    )
    step = timestamps[1] - timestamps[0]
    windows = load_windows(root, "realKnownCause/nyc_taxi.csv")
    probation = timestamps[min(int(0.15 * len(timestamps)), 750)]
    days = (timestamps[-1] - probation).total_seconds() / 86400

    def scorer(rows: list[EpisodeRow]) -> dict[str, Any]:
        # An alert at hour H has seen the rows before H: it flags the last of them.
        detections = [r.opened_at.replace(tzinfo=None) - step for r in rows]
        result = score_file(timestamps, detections, windows)
        delays = sorted(result.delays_h)
        return {
            "recall": f"{result.detected}/{result.windows}",
            # the upper median, as evaluate_detector's median_delay_into_window_h
            "median_delay_h": round(delays[len(delays) // 2], 1) if delays else None,
            "alarms_per_series_90d": round(result.false_positives / days * 90, 2),
            "alarms": result.false_positives,
            "group_alarms": 0,
            "nab_standard_score": round(result.normalised, 1),
        }

    return data, scorer


def bts_part() -> tuple[SeriesSet, Scorer] | str:
    path = ev.shared_data() / "bts" / "Border_Crossing_Entry_Data_full_1996-01_to_2025-02.csv.gz"
    if not path.exists():
        return f"skipped: {path} not found"
    rows, ports = ev.bts_rows(path)
    data = build_series(rows, "date", Columns(), {})
    days = (date(2020, 3, 1) - date(2017, 1, 1)).days
    origin = datetime(2020, 3, 1, tzinfo=UTC)

    def scorer(found: list[EpisodeRow]) -> dict[str, Any]:
        delays = []
        for port in ports:
            hits = [
                r
                for r in found
                if r.checkpoint == port and r.kind == "drop" and "2020-03-01" <= r.start[:10] <= "2020-04-30"
            ]
            if hits:
                delays.append((min(r.opened_at for r in hits) - origin).total_seconds() / 3600)
        quiet = [r for r in found if "2017-01-01" <= r.start[:10] < "2020-03-01"]
        return {
            "recall": f"{len(delays)}/{len(ports)}",
            "median_delay_h": _median(delays),
            "alarms_per_series_90d": round(len(quiet) / len(ports) / days * 90, 2),
            "alarms": len(quiet),
            "group_alarms": sum(r.cause == "group" for r in quiet),
        }

    return data, scorer


def real_part(name: str) -> tuple[SeriesSet, Scorer]:
    data, labels, spec = real_data.load(name)
    return data, real_data.scorer(data, labels, spec)


PARTS: dict[str, Callable[[], tuple[SeriesSet, Scorer] | str]] = {
    "synthetic": synthetic_part,
    "nab": nab_part,
    "bts": bts_part,
    **{name: (lambda name=name: real_part(name)) for name in real_data.SETS},
}


def evaluate(part: str) -> dict[str, Any] | str:
    started = time.perf_counter()
    built = PARTS[part]()
    if isinstance(built, str):
        return built
    data, scorer = built
    results = {name: scorer(rows) for name, rows in _detectors(data).items()}
    results["_seconds"] = round(time.perf_counter() - started, 1)
    results["_series"] = len(data.series)
    return results


def table(part: str, results: dict[str, Any]) -> str:
    names = [n for n in results if not n.startswith("_")]
    shown = ("recall", "median_delay_h", "alarms_per_series_90d", "by_event")
    extra = [k for k in results["ours"] if k not in shown]
    head = ["detector", "recall", "median delay (h)", "alarms / series / 90 d", *extra]
    lines = [f"{part} ({results['_series']} series)", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for name in names:
        r = results[name]
        cells = [name, r["recall"], str(r["median_delay_h"]), str(r["alarms_per_series_90d"])]
        cells += [str(r.get(k, "")) for k in extra]
        lines.append("| " + " | ".join(cells) + " |")
    if "by_event" in results["ours"]:
        lines += ["", "| event (labels found) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for event in results["ours"]["by_event"]:
            lines.append(f"| {event} | " + " | ".join(results[n]["by_event"][event] for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    everything = {}
    for part in args.only.split(","):
        print(f"== {part}", file=sys.stderr)
        everything[part] = evaluate(part)
        if isinstance(everything[part], str):
            print(everything[part])
        else:
            print(table(part, everything[part]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(everything, handle, indent=1)


if __name__ == "__main__":
    main()
