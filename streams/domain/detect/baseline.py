"""What a checkpoint's day normally looks like, learned from its earlier days.

The level comes from the same weekday in recent weeks (a Monday at a border is not a
Sunday), falling back to the recent days when there are too few of those. Zero days
count: a post that is usually open and reports nothing is information, not a gap.
Days that were part of an alarm (or of a closure) are left out while enough ordinary
days remain, as Farrington down-weights past outbreaks, so a month-long surge does not
become "normal" in two weeks; a closure's zeros never do.

Then the calendar: with a year of history the detector's own daily totals say how this
week compared with the four weeks before it *last year* (a harvest ramp that happens
every autumn), and on a public holiday of either country how that holiday compared with
its ordinary weeks last year (Nauryz at a road post). A holiday with no history widens
the band instead. The shape of the day (share per local hour, same weekday where
possible) and the mix of groups are averaged over the chosen days. Medians everywhere.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from streams.domain.counts import HOURS, DayProfile, split_group
from streams.domain.detect.calendar import holiday_names, same_holiday_last_year
from streams.domain.detect.history import CLOSED, NORMAL, DayHistory

ProfileLookup = Callable[[date], DayProfile | None]


@dataclass(frozen=True)
class BaselineConfig:
    weeks: int = 4
    #: Same-weekday days needed before the weekday level is trusted.
    min_same_weekday: int = 2
    #: Any-weekday days needed for the fallback level; fewer means "still learning".
    min_recent_days: int = 5
    min_dispersion: float = 0.08
    #: Without same-weekday history the weekday effect is unknown: widen the band.
    fallback_min_dispersion: float = 0.25
    max_dispersion: float = 0.6
    #: A holiday never seen before, or the first weeks after a reopening: a wide band.
    unknown_day_dispersion: float = 0.5
    #: How far back (in the detector's own history) ordinary days are looked for.
    max_weeks: int = 8
    #: Bounds of the last-year factors (a broken last year must not explode expectations).
    min_factor: float = 0.3
    max_factor: float = 3.0


@dataclass(frozen=True)
class Baseline:
    day: date
    expected_day: float
    hourly_share: tuple[float, ...]
    group_share: dict[str, float] = field(hash=False)
    #: Robust coefficient of variation of daily totals around their weekday level.
    dispersion: float
    history_days: int
    #: Why the expectation is not just the recent level, in words ("Nauryz: x1.70 last year").
    notes: tuple[str, ...] = ()

    def expected_through(self, hour: int, fraction_of_hour: float) -> float:
        """Expected count from local midnight up to ``hour:fraction`` of this day."""
        done = sum(self.hourly_share[:hour])
        return self.expected_day * (done + self.hourly_share[hour] * fraction_of_hour)

    def expected_hour(self, hour: int) -> float:
        return self.expected_day * self.hourly_share[hour]

    def nationality_share(self) -> dict[str, float]:
        shares: dict[str, float] = {}
        for group, share in self.group_share.items():
            nationality = split_group(group)[0]
            shares[nationality] = shares.get(nationality, 0.0) + share
        return shares


def _mad_cv(ratios: list[float]) -> float:
    if len(ratios) < 2:
        return 0.0
    centre = statistics.median(ratios)
    return 1.4826 * statistics.median(abs(r - centre) for r in ratios)


@dataclass
class _Day:
    day: date
    total: int
    profile: DayProfile | None
    flag: str


def _past_days(
    day: date, lookup: ProfileLookup, history: DayHistory | None, weeks: int, profile_weeks: int
) -> list[_Day]:
    """Earlier days, newest first: from profiles (recent) or the detector's history.

    Without a history (a detector just started, or a caller passing none) a day with no
    profile is unknown; with one, a day recorded as zero is a zero."""
    found = []
    for back in range(1, 7 * weeks + 1):
        earlier = day - timedelta(days=back)
        recorded = history.get(earlier) if history is not None else None
        profile = lookup(earlier) if back <= 7 * profile_weeks else None
        if profile is not None and profile["total"] > 0:
            found.append(_Day(earlier, profile["total"], profile, recorded[1] if recorded else NORMAL))
        elif recorded is not None:
            found.append(_Day(earlier, recorded[0], profile, recorded[1]))
    return found


def _level_ratio(history: DayHistory, centre: date, countries: tuple[str, ...]) -> float | None:
    """Last year's (this week) / (the four weeks before it), ordinary days only."""

    def mean(first: int, last: int) -> tuple[float, int]:
        values = []
        for back in range(first, last + 1):
            d = centre - timedelta(days=back)
            got = history.get(d)
            if got is not None and got[1] == NORMAL and not holiday_names(countries, d):
                values.append(got[0])
        return (sum(values) / len(values) if values else 0.0), len(values)

    now, n_now = mean(-3, 3)
    before, n_before = mean(4, 31)
    if n_now < 4 or n_before < 14 or before <= 0:
        return None
    return now / before


def _holiday_ratio(history: DayHistory, last_year: date, countries: tuple[str, ...]) -> float | None:
    """Last year's holiday total against the same weekday of the four weeks before it."""
    got = history.get(last_year)
    if got is None or got[1] != NORMAL:
        return None
    ordinary = []
    for k in range(1, 5):
        d = last_year - timedelta(days=7 * k)
        before = history.get(d)
        if before is not None and before[1] == NORMAL and not holiday_names(countries, d):
            ordinary.append(before[0])
    if len(ordinary) < 2 or statistics.median(ordinary) <= 0:
        return None
    return got[0] / statistics.median(ordinary)


def build_baseline(
    day: date,
    lookup: ProfileLookup,
    config: BaselineConfig = BaselineConfig(),
    history: DayHistory | None = None,
    countries: tuple[str, ...] = (),
) -> Baseline | None:
    """Baseline for ``day``, or None while learning (or while nothing ordinary is known)."""
    past = _past_days(day, lookup, history, config.max_weeks if history else config.weeks, config.weeks)
    recent = [d for d in past if d.day >= day - timedelta(days=7 * config.weeks)]
    open_days = [d for d in past if d.flag != CLOSED]
    if not open_days:
        return None
    floor = config.min_dispersion
    notes: list[str] = []
    # Ordinary days first; alarm days only if too few ordinary ones (a lasting new level).
    ordinary = [d for d in open_days if d.flag == NORMAL and not holiday_names(countries, d.day)]
    pool = ordinary if len([d for d in ordinary if d.day.weekday() == day.weekday()][:4]) >= 2 else None
    if pool is None:
        pool = [d for d in recent if d.flag != CLOSED] or open_days
    same = [d for d in pool if d.day.weekday() == day.weekday()][:4]
    if len(same) >= config.min_same_weekday:
        chosen = same
        expected_day = float(statistics.median(d.total for d in same))
    elif len(pool) >= config.min_recent_days:
        chosen = pool[:7]
        expected_day = float(statistics.median(d.total for d in chosen))
        floor = config.fallback_min_dispersion
    else:
        return None
    if any(d.flag == CLOSED for d in recent):
        # Just reopened: the level is from before the closure and may not hold.
        floor = max(floor, config.unknown_day_dispersion)
        notes.append("reopened recently: judged against the level before the closure, wide band")

    by_weekday: dict[int, list[int]] = {}
    for d in pool[:28]:
        by_weekday.setdefault(d.day.weekday(), []).append(d.total)
    weekday_level = {wd: statistics.median(t) for wd, t in by_weekday.items()}
    ratios = [
        d.total / weekday_level[d.day.weekday()]
        for d in pool[:28]
        if len(by_weekday[d.day.weekday()]) >= 2 and weekday_level[d.day.weekday()] > 0
    ]
    dispersion = min(max(_mad_cv(ratios), floor), config.max_dispersion)

    if history is not None:
        last_year = day - timedelta(days=364)
        season = _level_ratio(history, last_year, countries)
        if season is not None:
            season = min(max(season, config.min_factor), config.max_factor)
            if abs(math.log(season)) > 0.05:
                notes.append(f"same weeks last year: x{season:.2f}")
            expected_day *= season
    names = holiday_names(countries, day)
    if names:
        known = []
        for name in names:
            then = same_holiday_last_year(countries, name, day)
            ratio = _holiday_ratio(history, then, countries) if history is not None and then else None
            if ratio is not None:
                known.append((abs(math.log(max(ratio, 1e-3))), ratio, name))
        if known:
            _, ratio, name = max(known)
            ratio = min(max(ratio, config.min_factor), config.max_factor)
            notes.append(f"holiday {name}: x{ratio:.2f} last year")
            expected_day *= ratio
        else:
            dispersion = max(dispersion, config.unknown_day_dispersion)
            notes.append(f"holiday {', '.join(names)}: no history, wide band")

    with_profiles = [d for d in chosen if d.profile is not None and d.total > 0]
    if len(with_profiles) < 2:
        with_profiles = [d for d in recent if d.profile is not None and d.total > 0 and d.flag != CLOSED]
    hourly = [0.0] * HOURS
    group_totals: dict[str, float] = {}
    for d in with_profiles:
        assert d.profile is not None
        for hour, count in enumerate(d.profile["hourly"]):
            hourly[hour] += count / d.total
        for group, count in d.profile["groups"].items():
            group_totals[group] = group_totals.get(group, 0.0) + count / d.total
    n = len(with_profiles)
    hourly_share = tuple(h / n for h in hourly) if n else tuple(1 / HOURS for _ in range(HOURS))
    group_share = {g: c / n for g, c in group_totals.items()} if n else {}

    return Baseline(
        day=day,
        expected_day=expected_day,
        hourly_share=hourly_share,
        group_share=group_share,
        dispersion=dispersion,
        history_days=len(past),
        notes=tuple(notes),
    )
