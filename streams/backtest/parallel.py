"""A backtest's units (a post, or a series alone) in several processes (issue 17, item 9).

Each unit is independent (its own detectors, its own series), so the units are shared out
over ``jobs`` processes and their episodes put back in the units' order: the result is
the one-process result, row for row (the final sort is stable, and ties keep that order).

The children are forked when this process runs one thread (no start-up: they read the
series from the parent's memory); otherwise spawned, each unit's series pickled to them,
as ``streams/replay`` decides (a fork of a process holding threads is not safe).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from streams.backtest.run import EpisodeRow, Unit, run_series_of, run_unit
from streams.backtest.series import Series, SeriesSet
from streams.domain.detect import DetectorConfig
from streams.replay.prefetch import _may_fork

#: The series set a forked child reads (set in the parent before the fork).
_FORKED: SeriesSet | None = None


def run_units(
    data: SeriesSet,
    todo: list[Unit],
    config: DetectorConfig,
    progress: Callable[[int], None] | None,
    jobs: int,
) -> list[EpisodeRow]:
    """The episodes of ``todo``, in its order, from up to ``jobs`` processes."""
    global _FORKED
    fork = _may_fork()
    context = multiprocessing.get_context("fork" if fork else "spawn")
    # The costliest units first, so no process is left with a long one at the end.
    order = sorted(range(len(todo)), key=lambda i: -_cost(data, todo[i]))
    found: dict[int, list[EpisodeRow]] = {}
    _FORKED = data if fork else None
    try:
        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context) as pool:
            futures = {
                i: pool.submit(_run, None if fork else _sent(data, todo[i]), todo[i], config) for i in order
            }
            for i in order:
                rows, steps = futures[i].result()
                found[i] = rows
                if progress is not None:
                    progress(steps)
    finally:
        _FORKED = None
    return [row for i in range(len(todo)) for row in found[i]]


def _cost(data: SeriesSet, unit: Unit) -> int:
    return sum(len(data.series[key].cells) for key in unit)


def _run(
    sent: tuple[tuple[Series, ...], str, datetime, datetime] | None, unit: Unit, config: DetectorConfig
) -> tuple[list[EpisodeRow], int]:
    """In a child: one unit, from the forked parent's set or from what was ``sent``."""
    steps = [0]

    def count(n: int) -> None:
        steps[0] += n

    if sent is None:
        assert _FORKED is not None
        return run_unit(_FORKED, unit, config, count), steps[0]
    return run_series_of(*sent, config, count), steps[0]


def _sent(data: SeriesSet, unit: Unit) -> tuple[tuple[Series, ...], str, datetime, datetime]:
    """What a spawned child needs for one unit: its series and the set's first and last hour."""
    return tuple(data.series[key] for key in unit), data.granularity, data.first, data.last
