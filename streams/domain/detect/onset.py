"""Several days' evidence together: a lasting change too small for any one day to prove.

A day opens an episode when its count is unlikely on its own (a tail probability under
10^-min_score, ``assess.py``). At a post of a few hundred crossings a day that is not
reached by a lasting x1.5 or x0.6 step: each day's Poisson noise alone is 5-8 %, so a day
at x1.5 scores 3-4.4 against the 4.5 it needs, and a week later the trend has taken the
step in without an episode. The days together are far beyond chance: a week at x1.5 of
300 a day is ~1,050 crossings more than ~2,100 expected, ~20 Poisson standard deviations.

So after each completed day without an open episode, the run of the last completed days
(two to ``max_days``, newest first) that all departed the same way (each beyond the narrow
band an episode must return inside to end, ``clear_*_ratio``: a coherent departure, not one
large day pooled with ordinary ones) is judged as one count: the days' totals summed
against their expectations summed, by the very conditions one day needs (at least
``surge_ratio`` or at most ``drop_ratio`` of expected, ``min_excess`` crossings off, a
tail score of ``min_score``; the days' Poisson noise independent, their day-level error
not: a week of weather is one weather, so the pooled count keeps the day's spread beyond
Poisson (``pooled``), and days together gain only where Poisson noise is what hides a
change, at a quiet post).
The shortest run that passes opens the episode: a scan of the last week, the sequential
form of the same test a day gets, with the same thresholds, so it adds nothing where a day
alone already decides (a busy post's step opens on its first day, as before) and nothing
keyed to a data set. The episode then lives as any other: the level-shift CUSUM
(``changepoint.py``) re-anchors it after two weeks, and its end is judged on pooled days
too (``pooled_back_inside``), so a quiet post's noise does not end it a day at a time.

A pure function of the history (the days' totals, flags and recorded expectations: the
saved state), so a restarted worker judges the same, and the worker and the backtest share
it (``CheckpointDetector._close_day``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

from streams.domain.detect.assess import Kind
from streams.domain.detect.countmodel import tail_score
from streams.domain.detect.history import ALARM, CLOSED, NORMAL, DayHistory
from streams.domain.detect.tails import TailBand, TailConfig, tail_band

#: The median's error on a day's Poisson noise, as ``build_baseline`` widens the spread for
#: a median of four days (pi / (2 * 4)), and the Poisson share of its spread with it.
MEDIAN_ERROR = math.pi / 8
POISSON_IN_CV = 1.0 + MEDIAN_ERROR
#: The least day-level spread a run of days keeps (``BaselineConfig.min_dispersion``).
MIN_DAY_CV = 0.08

#: An episode's end is judged on one day where that day expects at least this many: the
#: clear band (x0.85-1.15) is then over two Poisson standard deviations (1/sqrt(200) = 7 %)
#: from the expectation. Where a day expects fewer, on the days together that do
#: (``pooled_back_inside``): at 100 a day a x0.6 step's days reach 0.85 by chance once a
#: fortnight, and the episode ended before the baseline re-anchored, so a second one opened.
CLEAR_MIN_EXPECTED = 200.0

#: The longest run of days judged together: a week (every weekday once, so a mis-estimated
#: weekday cannot make a run on its own).
MAX_DAYS = 7


@dataclass(frozen=True)
class Onset:
    """A run of ``days`` completed days (oldest first) that together departed as ``kind``."""

    kind: Kind
    days: tuple[date, ...]
    observed: int
    expected: float
    score: float

    #: The pooled count's coefficient of variation beyond Poisson.
    cv: float

    @property
    def ratio(self) -> float:
        return self.observed / self.expected


def _run(
    history: DayHistory,
    last: date,
    low: float,
    high: float,
    max_days: int,
    excluded: Callable[[date], bool],
) -> tuple[Kind, list[tuple[date, int, float]]] | None:
    """The days from ``last`` back (at most ``max_days``) that were judged (a recorded
    expectation), ordinary or weather (not a closure, not ``excluded``: a holiday's level is
    the holiday's), and departed the same way as ``last``: beyond ``high`` (a surge) or
    below ``low`` (a drop) of expected."""
    kind: Kind | None = None
    days: list[tuple[date, int, float]] = []
    for k in range(max_days):
        day = last - timedelta(days=k)
        got, expected = history.get(day), history.expected_on(day)
        if got is None or not expected or got[1] not in (NORMAL, ALARM) or excluded(day):
            break
        ratio = got[0] / expected
        side: Kind | None = "surge" if ratio >= high else "drop" if ratio <= low else None
        if side is None or (kind is not None and side != kind):
            break
        kind = side
        days.append((day, got[0], float(expected)))
    if kind is None:
        return None
    return kind, days[::-1]


def pooled(
    days: list[tuple[date, int, float]], cv: float, floor: float = MIN_DAY_CV
) -> tuple[int, float, float]:
    """(observed, expected, coefficient of variation beyond Poisson) of the days summed.

    ``cv`` is the baseline's day spread: the robust spread of recent days around their
    weekday's median, widened for the median's own error (``build_baseline``), so it holds
    the days' Poisson noise too, about ``POISSON_IN_CV / mu`` of its square. That part is
    independent from day to day and the sum sheds it (its count model adds the sum's own
    Poisson noise, and the medians' share of it is ``MEDIAN_ERROR / sum mu``); the rest, the
    day-level error, is taken as the same on every day of the run (fully correlated: a wet
    week is one weather, not seven independent days), never below ``floor``. At a busy post
    the rest is all of ``cv``, and days together gain nothing a day alone has not."""
    observed = sum(n for _, n, _ in days)
    expected = sum(mu for _, _, mu in days)
    mean = expected / len(days)
    beyond = max(cv * cv - POISSON_IN_CV / mean, floor * floor)
    return observed, expected, math.sqrt(beyond + MEDIAN_ERROR / expected)


def find_onset(
    history: DayHistory,
    last: date,
    cv: float,
    *,
    surge_ratio: float,
    drop_ratio: float,
    clear_surge_ratio: float,
    clear_drop_ratio: float,
    min_excess: float,
    min_score: float,
    max_days: int = MAX_DAYS,
    excluded: Callable[[date], bool] = lambda day: False,
    accept: Callable[[Onset], bool] = lambda onset: True,
) -> Onset | None:
    """The shortest run (at least two days) ending on ``last`` whose days together pass a
    day's conditions (module docstring), none of whose days passes them alone (that day
    was its own verdict's: opened, or called the series' weather), and ``accept`` (the
    series' own tail of as many days together, ``pooled_tail_band``), or None. ``cv``: a
    day's coefficient of variation beyond Poisson (the baseline's dispersion)."""
    found = _run(history, last, clear_drop_ratio, clear_surge_ratio, max_days, excluded)
    if found is None:
        return None
    kind, days = found

    def passes(observed: int, expected: float, spread: float) -> float | None:
        """The score of a count that passes a day's conditions, else None."""
        ratio = observed / expected
        if kind == "surge" and (ratio < surge_ratio or observed - expected < min_excess):
            return None
        if kind == "drop" and (ratio > drop_ratio or expected - observed < min_excess):
            return None
        score = tail_score(observed, expected, spread)
        return score if abs(score) >= min_score else None

    for n in range(1, len(days) + 1):
        _, total, mu = days[-n]
        if passes(total, mu, cv) is not None:
            # A day that alone passes was its own verdict's to make: if it opened nothing,
            # the series' tail called it weather (``tails.py``), and days with it are too.
            return None
        if n == 1:
            continue
        observed, expected, spread = pooled(days[-n:], cv)
        score = passes(observed, expected, spread)
        if score is None:
            continue
        onset = Onset(kind, tuple(d for d, _, _ in days[-n:]), observed, expected, score, spread)
        if accept(onset):
            return onset
    return None


class _Spans:
    """A history read as sums of ``n`` consecutive days (the span ending on each day), as
    ``tails.occasions`` reads a history: total and flag (closed if any day is, an alarm if
    any is), and the expectations summed (None unless every day has one)."""

    def __init__(self, history: DayHistory, n: int) -> None:
        self.history, self.n = history, n

    def get(self, day: date) -> tuple[int, str] | None:
        total, flag = 0, NORMAL
        for k in range(self.n):
            got = self.history.get(day - timedelta(days=k))
            if got is None:
                return None
            total += got[0]
            if got[1] == CLOSED or flag == CLOSED:
                flag = CLOSED
            elif got[1] == ALARM:
                flag = ALARM
        return total, flag

    def expected_on(self, day: date) -> int | None:
        expected = 0
        for k in range(self.n):
            mu = self.history.expected_on(day - timedelta(days=k))
            if mu is None:
                return None
            expected += mu
        return expected


def pooled_tail_band(history: DayHistory, first: date, n: int, config: TailConfig) -> TailBand | None:
    """The series' own tail (``tails.tail_band``) of ``n`` days together before ``first``
    (the spans that end before it): how far its spans of ``n`` consecutive days strayed
    from their expectation on about ``days_a_year`` occasions a year. A quiet post's days
    stray by Poisson noise that ``n`` days together shed; a street's rainy week does not
    shed its weather, and stays in the band."""
    return tail_band(cast(DayHistory, _Spans(history, n)), first, config)


def pooled_back_inside(
    history: DayHistory,
    last: date,
    kind: Kind,
    low: float,
    high: float,
    since: date,
    min_expected: float = CLEAR_MIN_EXPECTED,
    max_days: int = MAX_DAYS,
    min_days: int = 2,
) -> bool | None:
    """The completed days up to ``last`` and from ``since`` (the episode's first day) on,
    those judged, newest first until together they expect ``min_expected`` and are at
    least ``min_days``, summed, are back inside (``low``, ``high``) of their expectation:
    an episode ends on a return its days can show, not on one day's noise (a day of a
    moved level at x1.11, four standard deviations low, ended a step's episode and the
    next day opened a second). False while its days are fewer than that, unless
    ``max_days`` of them are in (then they say what they can); None
    where none of them was judged (they cannot say: the views judge it, as any episode)."""
    observed = expected = 0.0
    counted = judged = 0
    for k in range(max_days):
        day = last - timedelta(days=k)
        if day < since:
            break
        counted += 1
        got, mu = history.get(day), history.expected_on(day)
        if got is None or not mu:
            continue
        observed += got[0]
        expected += mu
        judged += 1
        if expected >= min_expected and judged >= min_days:
            break
    if expected <= 0:
        return None
    if (expected < min_expected or judged < min_days) and counted < max_days:
        return False
    ratio = observed / expected
    return ratio < high if kind == "surge" else ratio > low
