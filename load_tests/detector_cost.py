"""What one detector evaluation costs: the synthetic set (12 series, two years, hourly),
every evaluation the worker's clock would make, with the day profiles built beforehand
(the worker keeps them as it counts, so building them is not the detector's cost).

    .venv/bin/python -m load_tests.detector_cost            # microseconds per evaluation
    .venv/bin/python -m load_tests.detector_cost --repeat 3

``crossings backtest`` costs more per evaluation: it also rebuilds each hour's partial
profile from the file's cells (``streams/backtest/run.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import date, datetime

from load_tests.evaluate_detector import synthetic_data
from streams.backtest.run import evaluation_times, series_start
from streams.domain.counts import DayProfile
from streams.domain.detect import CheckpointDetector


def measure() -> tuple[int, float]:
    """(evaluations, seconds spent in ``CheckpointDetector.evaluate``)."""
    data, _ = synthetic_data()
    evaluations, seconds = 0, 0.0
    for series in data.series.values():
        full = {day: series.profile(day) for day in series.cells}
        partial = {(day, hour): series.profile(day, hour) for day in series.cells for hour in range(24)}
        clock: list[datetime] = [series_start(series, data)]
        zone = series.checkpoint.tz

        def lookup(day: date, clock=clock, full=full, partial=partial, zone=zone) -> DayProfile | None:
            local = clock[0].astimezone(zone)
            if day > local.date():
                return None
            return full.get(day) if day < local.date() else partial.get((day, local.hour))

        detector = CheckpointDetector(series.checkpoint, series.direction, lookup)
        moments = list(evaluation_times(series, data.granularity, clock[0], data.last))
        started = time.perf_counter()
        for moment in moments:
            clock[0] = moment
            detector.evaluate(moment)
        seconds += time.perf_counter() - started
        evaluations += len(moments)
    return evaluations, seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        evaluations, seconds = measure()
        per = seconds / evaluations * 1e6
        print(f"{evaluations:,} evaluations, {seconds:.1f} s: {per:.1f} us per evaluation")


if __name__ == "__main__":
    main()
