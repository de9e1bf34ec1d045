"""Level shifts and trends: a change that persists is a new normal.

The baseline leaves alarm days out while enough ordinary days remain (Farrington's
down-weighting of past outbreaks), so a month-long surge does not become "normal" in two
weeks. Alone, that rule cannot tell a surge from a new level: a post whose traffic steps
to x1.5 for good kept one episode open for seven weeks, until the last ordinary day left
its eight-week memory. A longer or shorter window only moves that date.

So each completed day also feeds a two-sided CUSUM (Page 1954) on the log-ratio of the day
to its expectation, standardised by the baseline's own spread and clipped (one
extraordinary day cannot make a shift, however large). While an episode is open, its side
crossing the threshold after at least ``min_days`` days out means the level has moved: the
shift's factor is the median log-ratio of the days since the CUSUM last stood at zero (its
change-point estimate), the days before that first day are rescaled by it in the weekly
level (``LevelShifts.scale``; last year's season is read as it was: a ramp that
re-anchored last year is the season), and the days of the run become ordinary days of
the new level. The open episode resolves at the next evaluation, judged against the
re-anchored expectation, and nothing further follows. Without an open episode the weekly
level takes in a change by itself; a ramp must not be followed until it is never a surge.

A trend is part of the expectation (``trend_estimate``): the weekly level is a median of
days two to four weeks old, so traffic growing 3 % a week is expected ~8 % low. A robust
slope (Theil-Sen) of the recent days' log levels, once Mann-Kendall says it is a trend and
not noise, carries the level forward by the age of the days it was taken from, up to 3 %
a week (a faster ramp is a surge, not a trend). Where a
year of history gives a season factor, the slope is of this year against last year's
same days, so a ramp that last year also had is not counted twice.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.domain.detect.robust import median


@dataclass(frozen=True)
class ShiftConfig:
    #: CUSUM allowance (k), in standard deviations of a day's log-ratio: departures smaller
    #: than this are the baseline's to absorb (it does so in a few weeks of ordinary days).
    allowance: float = 1.0
    #: CUSUM decision threshold (h), in the same units.
    threshold: float = 5.0
    #: A day contributes at most this many standard deviations: a one-day event is not a shift.
    clip: float = 3.0
    #: Completed days on one side before a shift is declared: "persists" means two weeks
    #: (every weekday seen twice, so a mis-estimated weekday cannot make one). A disruption
    #: that ends within a fortnight (a lockdown of days and the slow week after it, a
    #: year-end lull) stays one episode; with 7, both were re-anchored and their end became a
    #: surge against them (load_tests/DETECTOR_RESULTS.md).
    min_days: int = 14
    #: Days kept of a run (the estimate's window; the state stays small).
    max_run: int = 56
    #: Floor of a day's standard deviation (log units): an exact-looking baseline does not
    #: make a 5 % move a shift.
    min_sigma: float = 0.05

    def __post_init__(self) -> None:
        if self.min_days < 2 or self.max_run < self.min_days:
            raise ValueError(
                f"ShiftConfig: min_days ({self.min_days}) must be at least 2 and at most max_run "
                f"({self.max_run})"
            )
        if self.allowance < 0 or self.threshold <= 0 or self.clip <= self.allowance:
            raise ValueError(
                f"ShiftConfig: need allowance >= 0, threshold > 0 and clip > allowance "
                f"(got {self.allowance}, {self.threshold}, {self.clip})"
            )


@dataclass(frozen=True)
class Shift:
    """The level moved by ``factor`` (new over old) from ``start`` on; ``run``: the days the
    CUSUM counted in it (a holiday or a closure in between is not one of them)."""

    start: date
    factor: float
    run: tuple[date, ...]


@dataclass
class LevelShifts:
    """The shifts found so far and the CUSUM's running state; part of ``DayHistory``'s
    saved state (a state saved before this existed loads with none)."""

    shifts: list[tuple[date, float]] = field(default_factory=list)
    up: float = 0.0
    down: float = 0.0
    #: (day, log-ratio) of each side's current excursion, oldest first.
    up_run: list[tuple[date, float]] = field(default_factory=list)
    down_run: list[tuple[date, float]] = field(default_factory=list)
    #: The day the last shift was declared: the days up to it were judged against the old
    #: level, so no run of days together reaches back over it (``onset.find_onset``).
    declared: date | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> LevelShifts:
        if not state:
            return cls()

        def run(values: list[list[Any]]) -> list[tuple[date, float]]:
            return [(date.fromisoformat(d), float(x)) for d, x in values]

        return cls(
            [(date.fromisoformat(d), float(f)) for d, f in state.get("shifts", [])],
            float(state.get("up", 0.0)),
            float(state.get("down", 0.0)),
            run(state.get("up_run", [])),
            run(state.get("down_run", [])),
            date.fromisoformat(state["declared"]) if state.get("declared") else None,
        )

    def state(self) -> dict[str, Any]:
        def run(values: list[tuple[date, float]]) -> list[list[Any]]:
            return [[d.isoformat(), round(x, 6)] for d, x in values]

        state: dict[str, Any] = {
            "shifts": [[d.isoformat(), f] for d, f in self.shifts],
            "up": self.up,
            "down": self.down,
            "up_run": run(self.up_run),
            "down_run": run(self.down_run),
        }
        if self.declared is not None:  # absent until a shift: older states load the same
            state["declared"] = self.declared.isoformat()
        return state

    def scale(self, day: date, as_of: date) -> float:
        """What ``day``'s level is multiplied by to be read at ``as_of``'s level: the product
        of the shifts that started after ``day`` and by ``as_of``."""
        factor = 1.0
        for start, shift in self.shifts:
            if day < start <= as_of:
                factor *= shift
        return factor

    def forget_before(self, first: date) -> None:
        """Shifts before the first remembered day rescale nothing any more."""
        self.shifts = [(d, f) for d, f in self.shifts if d > first]

    def reset(self) -> None:
        """The CUSUM starts again (after a shift, or where a day is not a level: a closure)."""
        self.up = self.down = 0.0
        self.up_run, self.down_run = [], []

    def update(
        self, day: date, log_ratio: float, sigma: float, config: ShiftConfig, allowed: int = 0
    ) -> Shift | None:
        """Add one completed day (its total's log-ratio to the expectation, and that
        ratio's standard deviation); a ``Shift`` when the level has moved. ``allowed``: the
        side a shift may be declared on now (+1 up, -1 down, 0 either); the other side keeps
        counting."""
        z = max(min(log_ratio / max(sigma, config.min_sigma), config.clip), -config.clip)
        self.up = max(0.0, self.up + z - config.allowance)
        self.down = max(0.0, self.down - z - config.allowance)
        for side, run in ((self.up, self.up_run), (self.down, self.down_run)):
            if side > 0.0:
                run.append((day, log_ratio))
                del run[: -config.max_run]
            else:
                run.clear()
        for side, run, sign in ((self.up, self.up_run, 1.0), (self.down, self.down_run, -1.0)):
            if side <= config.threshold or len(run) < config.min_days or allowed not in (0, sign):
                continue
            moved = statistics.median(x for _, x in run)
            if sign * moved <= 0.0:
                continue
            shift = Shift(run[0][0], math.exp(moved), tuple(d for d, _ in run))
            self.shifts.append((shift.start, shift.factor))
            self.declared = day
            self.reset()
            return shift
        return None


@dataclass(frozen=True)
class Trend:
    """The level's drift: ``slope`` in log units per day, and how sure (Mann-Kendall z)."""

    slope: float
    z: float
    points: int


def trend_estimate(groups: dict[int, list[tuple[float, float]]], min_points: int) -> Trend | None:
    """Seasonal Theil-Sen slope and seasonal Mann-Kendall z (Hirsch, Slack and Smith 1982)
    of ``groups`` (per weekday: (day number, log level)): only pairs within a weekday are
    compared, so the weekly profile needs no estimate and cannot tilt the slope. None with
    fewer than ``min_points`` points. Medians and ranks: a surge day or a holiday among the
    points does not tilt them."""
    slopes: list[float] = []
    s = 0
    variance = 0.0
    n_all = 0
    for points in groups.values():
        n = len(points)
        n_all += n
        if n < 2:
            continue
        variance += n * (n - 1) * (2 * n + 5) / 18
        for (ti, vi), (tj, vj) in itertools.combinations(points, 2):  # i < j, in order
            if tj == ti:
                continue
            slope = (vj - vi) / (tj - ti)
            slopes.append(slope)
            s += (slope > 0) - (slope < 0)
    if n_all < min_points or not slopes or variance <= 0:
        return None
    z = (abs(s) - 1) / math.sqrt(variance) if s else 0.0
    return Trend(median(slopes), max(z, 0.0), n_all)
