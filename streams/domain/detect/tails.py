"""The series' own tail: how far its days stray from their expectation on its worst days.

The baseline's spread is a robust (MAD) spread of the recent ordinary days, and alarm days
are left out of it, so it describes a typical day and never learns a heavy tail: a
pedestrian street on a day of heavy rain (x0.2-0.5), a waterfront on a festival day
(x1.5-2.3), bike rentals on a snowy day. Each such day is "unlikely" under the count model
and opened an episode (load_tests/DETECTOR_RESULTS.md, 2026-12-07: most of the ordinary-day
alarms left on the real sets). Only the series' own history says how often it does that.

So each completed day's expectation is kept with its total (``DayHistory.expected``), and
before an episode opens, the day's ratio to its expectation must also lie beyond what
this series did on more than about two days a year (``TailBand``), unless it is a drop
and the day before dropped too (``persist``: rain passes in a day, a lockdown does not). The
band is read off the last ``days`` (a year) of the series' own day ratios, in log terms:

- every open day counts, alarm days included (the weather that alarmed is the weather the
  series has), except a closure's days (its zeros are the closure, not the tail) and
  days whose expectation was itself a guess (the wide band of a holiday never seen, of
  the weeks after a reopening: the detector records no expectation for them);
- a run of consecutive days on one side (beyond ``run_ratio``, or flagged as one alarm)
  counts once, as its most extreme day: a lockdown of seven weeks is one occasion, not 13 %
  of the year, so one lockdown in the history does not blind the band to the next;
- the ``quantile`` (5 %: some 18 occasions a year, so a handful of past events do not set
  it) on each side, taken from the median, reached as far as an exponential (Laplace)
  tail puts the share of ``days_a_year`` (``reach``: 1.96 times as far for two days a year).

A running-day verdict (the day so far, hourly data) is the day times its shape: the share
of the day done by this hour strays too, and on some days far more than a month of robust
spreads says (the first hour of the nights after the holidays: NAB's taxis at x0.56-0.60
at 01:00 on days that ended at x0.90-0.98). So for it the band is widened, in quadrature,
by the shape's own tail (``shape_reach``: the share done by this hour on each of the last
28 days against its weekday's other days, the same quantile and reach). It narrows as the
day goes on, so a day that really falls is found within hours.

A series with fewer than ``min_samples`` such days (a new series, the first two months of
a file) has no band: it is judged as before. Read only from the saved history, so a
restarted worker judges the same as the backtest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from streams.domain.counts import DayProfile
from streams.domain.detect.history import ALARM, CLOSED, DayHistory


@dataclass(frozen=True)
class TailConfig:
    #: Off: every verdict opens an episode as it did before the band existed.
    enabled: bool = True
    #: Days of the series' own history the band is read off.
    days: int = 365
    #: The share of occasions beyond the band's base on each side (a quantile, not the
    #: extremes: a few past events of the year must not set the band)...
    quantile: float = 0.05
    #: ...and how many days a year (on each side) the band leaves beyond it, if the tail
    #: beyond that quantile is exponential (``reach``).
    days_a_year: float = 2.0
    #: Occasions needed before the band is trusted.
    min_samples: int = 56
    #: A day beyond this ratio (or its inverse) on the same side as the day before belongs
    #: to the same occasion.
    run_ratio: float = 1.25
    #: Below this many expected crossings a day's ratio is noise, not tail.
    min_expected: float = 8.0
    #: A drop on the day after a completed day that dropped too (its ratio to its
    #: expectation at or below the detector's ``drop_ratio``) opens an episode within the
    #: band too: rain passes in a day, a lockdown or a closure does not. Not a surge: a
    #: busy spell of days within the series' own tail (a festival, a holiday season) is
    #: its weather still (with surges too, Auckland's alarms rose by a tenth, 256 -> 284,
    #: and no label of the real sets was found more: load_tests/DETECTOR_RESULTS.md).
    persist: tuple[str, ...] = ("drop",)

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile < 0.5:
            raise ValueError(
                f"TailConfig: quantile ({self.quantile}) is a share of days on one side: above 0 "
                "and below 0.5"
            )
        if not 0.0 < self.days_a_year < 365 * self.quantile:
            raise ValueError(
                f"TailConfig: days_a_year ({self.days_a_year}) must be above 0 and below the "
                f"quantile's own {365 * self.quantile:g} days a year"
            )
        if self.run_ratio <= 1.0:
            raise ValueError(f"TailConfig: run_ratio ({self.run_ratio}) must be above 1")


@dataclass(frozen=True)
class TailBand:
    """The ratios (observed / expected) beyond which a day is in the series' own tail."""

    low: float
    high: float
    #: Occasions it was read off.
    samples: int

    def beyond(self, kind: str, ratio: float) -> bool:
        """A drop below ``low`` or a surge above ``high``."""
        return ratio <= self.low if kind == "drop" else ratio >= self.high


def reach(config: TailConfig) -> float:
    """How many times as far from the median as the ``quantile`` the band reaches: for an
    exponential (Laplace) tail, where the share ``2 * days_a_year / 365`` of days lies (two
    sides), ln(2 * days / 365) / ln(2 * quantile); 1.96 for two days a year beyond a 5 %
    quantile (2.26 for one; for a Gaussian tail two days would be about 1.55)."""
    return math.log(2 * config.days_a_year / 365) / math.log(2 * config.quantile)


def log_ratio(observed: float, expected: float) -> float:
    """The day's log ratio, with half a crossing on each side (a silent day is finite)."""
    return math.log((observed + 0.5) / (expected + 0.5))


def occasions(history: DayHistory, day: date, config: TailConfig) -> list[float]:
    """The log ratios of the ``config.days`` before ``day``, each run of days on one side
    as one occasion (its most extreme), closures and days without an expectation left out."""
    found: list[float] = []
    run: float | None = None
    run_flagged = False
    mild = math.log(config.run_ratio)
    for back in range(config.days, 0, -1):
        earlier = day - timedelta(days=back)
        got = history.get(earlier)
        expected = history.expected_on(earlier)
        if got is None or got[1] == CLOSED or expected is None or expected < config.min_expected:
            if run is not None:
                found.append(run)
                run = None
            continue
        value = log_ratio(got[0], expected)
        alarm = got[1] == ALARM
        if run is not None and (value > 0) == (run > 0) and (abs(value) > mild or (alarm and run_flagged)):
            run = max(run, value) if value > 0 else min(run, value)
            continue
        if run is not None:
            found.append(run)
            run = None
        if abs(value) > mild or alarm:
            run, run_flagged = value, alarm
        else:
            found.append(value)
    if run is not None:
        found.append(run)
    return found


def tail_band(history: DayHistory, day: date, config: TailConfig) -> TailBand | None:
    """The band for ``day`` (see the module), or None with too little history."""
    values = occasions(history, day, config)
    if len(values) < config.min_samples:
        return None
    values.sort()
    n = len(values)
    centre = values[n // 2]
    k = int(config.quantile * n)
    far = reach(config)
    low = centre + far * min(values[k] - centre, 0.0)
    high = centre + far * max(values[n - 1 - k] - centre, 0.0)
    return TailBand(math.exp(low), math.exp(high), n)


#: Days of profiles the shape's tail is read off (the worker keeps 35).
SHAPE_DAYS = 28


def shape_reach(
    lookup: Callable[[date], DayProfile | None], day: date, hour: int, fraction: float, config: TailConfig
) -> float:
    """How far (log terms) the share of a day done by ``hour:fraction`` (local) strays on
    the series' own worst days of the last ``SHAPE_DAYS``:
    each day's share done by then against the mean of its weekday's other days, the
    ``quantile`` of those deviations reached as far as the day's band. The day so far is
    the day times its shape: early in a night after the holidays, the first hour's share
    is not what a month of ordinary nights said, however regular most nights were. 0.0 with
    too few days."""
    shares: dict[int, list[float]] = {}
    for back in range(1, SHAPE_DAYS + 1):
        earlier = day - timedelta(days=back)
        profile = lookup(earlier)
        if profile is None or profile["total"] <= 0:
            continue
        counted = sum(profile["hourly"][:hour]) + profile["hourly"][hour] * fraction
        shares.setdefault(earlier.weekday(), []).append(counted / profile["total"])
    deviations = []
    for values in shares.values():
        if len(values) < 2:
            continue
        whole = sum(values)
        for own in values:
            others = (whole - own) / (len(values) - 1)
            if others > 0 and own > 0:
                deviations.append(abs(math.log(own / others)))
    if len(deviations) < 7:
        return 0.0
    deviations.sort(reverse=True)
    return reach(config) * deviations[int(config.quantile * len(deviations))]


def widened(band: TailBand, far: float) -> TailBand:
    """The day's band with the shape's uncertainty ``far`` (log terms) added in quadrature."""
    low = -math.hypot(math.log(min(band.low, 1.0)), far)
    high = math.hypot(math.log(max(band.high, 1.0)), far)
    return TailBand(math.exp(low), math.exp(high), band.samples)
