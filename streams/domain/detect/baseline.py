"""What a checkpoint's day normally looks like, learned from its earlier days.

The level comes from the same weekday in recent weeks (a Monday at a border is not a
Sunday), falling back to the recent days when there are too few of those. Zero days
count: a post that is usually open and reports nothing is information, not a gap.
Days that were part of an alarm (any evaluation of the day with a post episode open) or
of a closure are left out while enough ordinary days remain, as Farrington down-weights
past outbreaks, so a month-long surge does not become "normal" in two weeks; a
closure's zeros never do. A change that persists is a new level instead: once the
change-point rule (``changepoint.py``) has found a shift, the days before it are read at the
new level (``_Day.level``), and a steady trend of the recent days is carried forward.

Then the calendar, from the detector's own year of daily totals (``history.py``):
- the season: last year's level around this date over last year's level around the days
  the weekly level was taken from (``season_factor``), so a harvest ramp that happened
  last year is expected this year. Last year's alarm days count here: a ramp that
  alarmed last year (it could not be known then) is what last year did; but not a drop
  that lasted two weeks or more (``_lasting_drop``: a lockdown is not a season);
- a public holiday of either country: last year's same holiday (the day that carried the
  same set of holidays, else the holiday with the largest effect) against the same
  weekday in the three weeks before and after it (``holiday_effect``), so a holiday surge
  that happens every year is expected and one twice last year's is not; that factor's
  own uncertainty (one day's counts) widens the band. A holiday with no history widens
  the band instead.

How uncertain is the day so far? The day's level by the weekday ratios' robust spread
(widened for the error of a median of a few days: a prediction interval), and the share
of the day done by each local hour by how much the recent days' own shapes strayed from
their weekday's (``spread.share_spread``, beyond Poisson), so a surge is judged within hours
where the days are regular and cautiously where they are not. The mix of nationalities
gets the same treatment (``spread.group_spread``). The shape of the day (mean share per local
hour, same weekday where possible) and the mix are averaged over the chosen days.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from streams.domain.counts import HOURS, DayProfile, split_group
from streams.domain.detect.calendar import (
    beside_holiday_last_year,
    holiday_days_of_years,
    holiday_names,
    same_holiday_last_year,
)
from streams.domain.detect.changepoint import Trend, trend_estimate
from streams.domain.detect.history import ALARM, CLOSED, NORMAL, DayHistory
from streams.domain.detect.robust import median
from streams.domain.detect.spread import (  # noqa: F401 (re-exported: the spreads were here)
    DayShape,
    ShapeCache,
    _group_spread,
    _shapes_of,
    _share_spread,
    day_shape,
    group_spread,
    mean_shape,
    share_spread,
)

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
    #: Days (of the last four weeks, with a same-weekday partner) needed to learn how much
    #: the shape of a day, or the mix of nationalities, strays from the usual.
    min_shape_days: int = 7
    #: Floor of those learned spreads (a month of days does not prove a shape exact).
    min_share_dispersion: float = 0.03
    #: Extra uncertainty of the share of the day done when it cannot be learned, scaled by
    #: the share still to come.
    unknown_share_dispersion: float = 0.1
    #: The trend (``changepoint.trend_estimate``): ordinary days of the last ``trend_days``,
    #: at least ``trend_min_points`` of them, a Mann-Kendall z of at least ``trend_min_z``.
    #: Only steady growth (or decline) is expected: at most ``max_weekly_trend`` a week is
    #: carried forward; a ramp faster than that (a harvest doubling in a month) is a surge.
    trend_days: int = 28
    trend_min_points: int = 14
    trend_min_z: float = 3.0
    max_weekly_trend: float = 0.03
    #: Last year's days at this share of their own expectation or below (and alarm days
    #: below it) are left out of the season (``_fell``): a lockdown, not a season. The
    #: detector's ``drop_ratio``.
    season_fell_ratio: float = 0.65
    #: ...when they are part of a drop (or closure) that lasted this many days or more.
    season_lasting_days: int = 14


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
    #: How uncertain the share of the day done by local hour ``k`` is (index k = the hours
    #: before k; 25 entries), beyond Poisson noise: learned from the recent days' own
    #: shapes (``share_spread``). Empty: the fallback ``unknown_share_dispersion * (1 - done)``.
    share_dispersion: tuple[float, ...] = ()
    #: Per nationality: how much its ratio to the rest of the post moves from day to day,
    #: beyond Poisson noise (``group_spread``); a nationality not in it is judged with a floor.
    group_dispersion: dict[str, float] = field(default_factory=dict, hash=False)
    #: The season factor ``expected_day`` carries (last year's move to this date), 1.0 for
    #: none: ``expected_day / season`` is the recent weekly level without it.
    season: float = 1.0
    #: The factor of today's holiday (or its eve, the day after) ``expected_day`` carries:
    #: last year's one day against the weeks around it; 1.0 for none.
    holiday: float = 1.0
    _cumulative: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)
    _nationalities: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cumulative = [0.0]
        for share in self.hourly_share:
            cumulative.append(cumulative[-1] + share)
        object.__setattr__(self, "_cumulative", tuple(cumulative))
        shares: dict[str, float] = {}
        for group, share in self.group_share.items():
            nationality = split_group(group)[0]
            shares[nationality] = shares.get(nationality, 0.0) + share
        object.__setattr__(self, "_nationalities", shares)

    def expected_through(self, hour: int, fraction_of_hour: float) -> float:
        """Expected count from local midnight up to ``hour:fraction`` of this day."""
        return self.expected_day * (self._cumulative[hour] + self.hourly_share[hour] * fraction_of_hour)

    def share_done(self, hour: int, fraction_of_hour: float) -> float:
        """The share of a normal day done by ``hour:fraction``."""
        return self._cumulative[hour] + self.hourly_share[hour] * fraction_of_hour

    def running_dispersion(self, hour: int, fraction_of_hour: float, fallback: float) -> float:
        """Coefficient of variation of the day so far: the day's level (``dispersion``) and
        the uncertain share of the day done by now, independent, so in quadrature."""
        if self.share_dispersion:
            index = min(hour + (1 if fraction_of_hour > 0 else 0), HOURS)
            extra = self.share_dispersion[index]
        else:
            extra = fallback * (1.0 - self.share_done(hour, fraction_of_hour))
        return math.sqrt(self.dispersion * self.dispersion + extra * extra)

    def expected_hour(self, hour: int) -> float:
        return self.expected_day * self.hourly_share[hour]

    def nationality_share(self) -> dict[str, float]:
        return self._nationalities


def _mad_cv(ratios: list[float]) -> float:
    if len(ratios) < 2:
        return 0.0
    centre = median(ratios)
    return 1.4826 * median(abs(r - centre) for r in ratios)


@dataclass(init=False, slots=True)
class _Day:
    day: date
    total: int
    profile: DayProfile | None
    flag: str
    #: Reads the total at the level of the day judged (a level shift since: ``changepoint.py``).
    scale: float
    #: ``total * scale`` and ``day.weekday()``: read many times per baseline, worked out once.
    level: float = field(repr=False, compare=False)
    weekday: int = field(repr=False, compare=False)

    def __init__(
        self, day: date, total: int, profile: DayProfile | None, flag: str, scale: float = 1.0
    ) -> None:
        """Written out (slots, no ``__post_init__``): some 3 million are made per benchmark run."""
        self.day = day
        self.total = total
        self.profile = profile
        self.flag = flag
        self.scale = scale
        self.level = total * scale
        self.weekday = day.weekday()


def _past_days(
    day: date, lookup: ProfileLookup, history: DayHistory | None, weeks: int, profile_weeks: int
) -> list[_Day]:
    """Earlier days, newest first: from profiles (recent) or the detector's history.

    Without a history (a detector just started, or a caller passing none) a day with no
    profile is unknown; with one, a day recorded as zero is a zero."""
    found = []
    earlier, one_day, profile_days, count = day, timedelta(days=1), 7 * profile_weeks, 7 * weeks
    # The recorded days in one slice (``DayHistory.before``, oldest first), not a look-up each.
    totals, flags = history.before(day, count) if history is not None else ([None] * count, NORMAL * count)
    shifted = history is not None and bool(history.shifts.shifts)
    # Newest first: the days with profiles (``profile_days``), then the history's alone.
    for back, total, flag in zip(range(1, count + 1), reversed(totals), reversed(flags), strict=True):
        earlier -= one_day
        scale = history.scale(earlier, day) if shifted else 1.0  # type: ignore[union-attr]
        if back <= profile_days:
            profile = lookup(earlier)
            if profile is not None and profile["total"] > 0:
                own = flag if total is not None else NORMAL
                found.append(_Day(earlier, profile["total"], profile, own, scale))
                continue
            if total is not None:
                found.append(_Day(earlier, total, profile, flag, scale))
        elif total is not None:
            found.append(_Day(earlier, total, None, flag, scale))
    return found


def _year_ago_days(history: DayHistory, day: date, countries: tuple[str, ...]) -> list[int]:
    """Last year's days around ``day``: the totals of the open, non-holiday days within
    three days of ``day - 364`` (the same weekday a year back, so a week centred on it).
    Days that raised an alarm count: a ramp that alarmed last year is still what last year
    did, and this year it is expected; only a closure's zeros are left out. Read as they
    were, not rescaled by the level shifts found since (``changepoint.py``): last year's
    harvest ramp re-anchored the level too, and it is the season, not a one-off. The eve of
    a holiday and the day after it are left out as the holiday is (each has a factor of
    its own, ``beside_holiday_last_year``: counted here too, it would count twice).

    Worked out once per day and history (``DayHistory.memo``): a baseline reads it for each
    of a month of days, and the next day's baseline for the same days again."""
    return history.memo(
        ("year_ago", countries), day, _YEAR_AGO, lambda: _year_ago_values(history, day, countries)
    )


#: The days (back from a day) ``_year_ago_days`` reads: a week around the same weekday a year back.
_YEAR_AGO = range(361, 368)
#: The same as timedeltas, made once.
_YEAR_AGO_BACK = tuple(timedelta(days=shift) for shift in _YEAR_AGO)


def _year_ago_values(history: DayHistory, day: date, countries: tuple[str, ...]) -> list[int]:
    values = []
    for back in _YEAR_AGO_BACK:
        earlier = day - back
        got = history.get(earlier)
        if got is not None and got[1] != CLOSED and not _near_holiday(countries, earlier):
            values.append(got[0])
    return values


def _year_ago_log(history: DayHistory, day: date, countries: tuple[str, ...]) -> float | None:
    """The log of the mean of ``_year_ago_days``' days, None with fewer than four or no
    crossings (``_trend`` reads it for each of a month of days): worked out once, as they are."""

    def compute() -> float | None:
        last_year = _year_ago_days(history, day, countries)
        if len(last_year) < 4 or sum(last_year) <= 0:
            return None
        return math.log(sum(last_year) / len(last_year))

    return history.memo(("year_ago_log", countries), day, _YEAR_AGO, compute)


def _year_ago_level(
    history: DayHistory,
    day: date,
    countries: tuple[str, ...],
    fell_ratio: float = 0.65,
    lasting: int = 14,
) -> tuple[float, int] | None:
    """Last year's level around ``day`` (the mean of ``_year_ago_days``' days) and how many
    days it was read off; None with fewer than four. One or two alarm days among them are
    a one-off (a storm, a closure that alarmed) and are left out, so this year's same week
    is not expected low (or high) for it; more are a ramp or a step that lasted, which is
    what last year did, and count; but not a drop that lasted ``lasting`` days or more
    (``_lasting_drop``). Worked out once per day and history, as ``_year_ago_days``
    (``DayHistory.memo``: again after one of the days it read is recorded).

    Where none of last year's week can have fallen (``_may_fall``) the level is read off
    that week alone and stays what it is while the history forgets the older days of the
    span (``_may_fall``'s bound only shrinks when one goes): so the reference days' levels
    are worked out once, not again every day as the kept year moves past their spans."""
    span = _around(lasting)
    quiet = history.memo(
        _quiet_name(countries, fell_ratio, lasting),
        day,
        span,
        lambda: _year_ago_level_of(history, day, countries, fell_ratio, lasting, quiet_only=True),
        forget=_YEAR_AGO,
    )
    if quiet is not _MAY_FALL:
        return quiet  # type: ignore[return-value]
    return history.memo(
        ("year_ago_level", countries, fell_ratio, lasting),
        day,
        span,
        lambda: _year_ago_level_of(history, day, countries, fell_ratio, lasting),
    )


def _quiet_name(countries: tuple[str, ...], fell_ratio: float, lasting: int) -> tuple[object, ...]:
    """The memo's name of ``_year_ago_level``'s values where none of last year's week fell."""
    return ("year_ago_level_quiet", countries, fell_ratio, lasting)


#: ``_year_ago_level_of(quiet_only=True)`` where a day of last year's week may have fallen.
_MAY_FALL = object()


#: How far before last year's week a lasting drop through it is traced back to its start.
_ANCHOR_DAYS = 91


@lru_cache(maxsize=8)
def _around(lasting: int) -> range:
    """The days (back from a day) ``_year_ago_level`` reads: last year's week, as far after
    it as a drop through one of its days must run to be a lasting one, and ``_ANCHOR_DAYS``
    before it (where a drop through it began, and the days before that:
    ``_lasting_drop``'s reference)."""
    return range(_YEAR_AGO.start - lasting + 1, _YEAR_AGO.stop + _ANCHOR_DAYS)


def _year_ago_level_of(
    history: DayHistory,
    day: date,
    countries: tuple[str, ...],
    fell_ratio: float,
    lasting: int,
    quiet_only: bool = False,
) -> tuple[float, int] | object | None:
    """``_year_ago_level`` worked out; ``quiet_only``: ``_MAY_FALL`` where a day of last
    year's week may have fallen (``_may_fall``), instead of walking the span."""
    may_fall = _may_fall(history, day, fell_ratio, lasting)
    if may_fall and quiet_only:
        return _MAY_FALL
    gone = _lasting_drop(history, day, fell_ratio, lasting) if may_fall else set()
    days, holidays = [], 0
    for shift, back in zip(_YEAR_AGO, _YEAR_AGO_BACK, strict=True):
        earlier = day - back
        got = history.get(earlier)
        if got is None or got[1] == CLOSED or shift in gone:
            continue
        if _near_holiday(countries, earlier):
            holidays += 1
            continue
        days.append(got)
    # Between holidays (the days from Christmas to New Year) the week holds few ordinary
    # days; the two or three it has are that season, which the weeks around it are not.
    # Only between them (a holiday within a week on both sides of last year's same
    # weekday: the few ordinary days left beside one holiday block, the days before Hong
    # Kong's Mid-Autumn, say, are no season) and not for a day by a holiday itself: its
    # own factor says what last year's did.
    then = day - timedelta(days=364)
    between = (
        holidays >= 3
        and _holiday_within(countries, then, -1)
        and _holiday_within(countries, then, 1)
        and not _near_holiday(countries, day)
    )
    if len(days) < (2 if between else 4):
        return None
    kept = [total for total, flag in days if flag != ALARM]
    if len(days) - len(kept) > 2 or len(kept) < 2:
        kept = [total for total, _ in days]
    return sum(kept) / len(kept), len(days)


def _may_fall(history: DayHistory, day: date, fell_ratio: float, lasting: int) -> bool:
    """Whether one of last year's week (``_YEAR_AGO``) could have fallen in ``_lasting_drop``,
    so be in a lasting drop: a day falls only against its own expectation or an earlier one
    of its weekday in the span, so against the largest of those at most. False: none is in
    ``_lasting_drop``'s days (its walk of months, for each of a month of days, is spared)."""
    if fell_ratio < 0:
        return True  # the bound below needs ``fell_ratio * x`` to grow with x
    if history.start is None:
        return False
    # Read in place (indices into the history's lists), not as a slice of the span: each
    # day asks once, for seven days of it.
    totals, flags, expected = history.totals, history.flags, history.expected
    now = (day - history.start).days
    first = now - _around(lasting)[-1]  # the span's oldest day
    for shift in _YEAR_AGO:
        index = now - shift
        if not 0 <= index < len(totals):
            continue
        total = totals[index]
        if total is None:
            continue
        flag = flags[index]
        if flag == CLOSED:
            return True
        own = expected[index]
        if own is not None and (total <= fell_ratio * own or (flag == ALARM and total < own)):
            return True
        # The span's earlier days of its weekday that the history holds.
        oldest = first + (index - first) % 7
        if oldest < 0:
            oldest += 7 * ((6 - oldest) // 7)
        earlier = [e for e in expected[oldest:index:7] if e is not None]
        if earlier and total <= fell_ratio * max(earlier):
            return True
    return False


def _lasting_drop(history: DayHistory, day: date, fell_ratio: float, lasting: int) -> set[int]:
    """The days of last year's week around ``day`` (as days back) inside a drop that lasted
    ``lasting`` days or more: a run of days that fell away (``_fell``) or were closed. A
    lockdown of weeks, a sensor that undercounted for a month, a street dug up for a
    season: not the season. Counted, last August's lockdown made this August's same weeks
    expected at a third (Auckland 2021: a week of surges at every sensor, and the next
    lockdown's first days within the band). A shorter drop (the week between Christmas
    and New Year at a city street, which alarmed the first year) is what last year did,
    and counts; a surge that lasted (a harvest ramp) counts too.

    A day fell against the expectation of the last day of its weekday before it that did
    not: a level shift (``changepoint.py``) re-anchors the expectation within days of a
    drop's start, and against that the rest of the drop would look ordinary."""
    span = _around(lasting)
    count = len(span)
    # The span's days in one slice, oldest first (``day - span[-1]`` .. ``day - span.start``):
    # not a look-up each (this runs for each of a month of days, every day).
    totals, flags, expected = history.before_expected(day - timedelta(days=span.start - 1), count)
    # Index i is ``span[-1] - i`` days back: the same weekday as i + 7 (per weekday, by i % 7).
    anchor: list[int | None] = [None] * 7
    fallen = []
    for i in range(count):
        total, own = totals[i], expected[i]
        slot = i % 7
        reference = anchor[slot]
        if reference is None:
            reference = own
        fell = total is not None and (
            flags[i] == CLOSED
            or _fell((total, flags[i]), own, fell_ratio)
            or (reference is not None and total <= fell_ratio * reference)
        )
        if not fell and own is not None:
            anchor[slot] = own
        fallen.append(fell)
    gone: set[int] = set()
    run: list[int] = []
    oldest = span[-1]
    for i, fell in enumerate([*fallen, False]):
        if fell:
            run.append(oldest - i)
            continue
        if len(run) >= lasting:
            gone.update(run)
        run = []
    return gone


def _fell(got: tuple[int, str], expected: int | None, fell_ratio: float) -> bool:
    """A day that fell away from what it was expected to be (``DayHistory.expected``): an
    alarm day below its expectation, or any day at ``fell_ratio`` of it or below. Without
    a recorded expectation (a guess: the weeks after a reopening; a state saved before
    expectations were kept) it is not known to have fallen (``_lasting_drop`` still
    compares it with the days before the drop)."""
    total, flag = got
    if expected is None:
        return False
    return total <= fell_ratio * expected or (flag == ALARM and total < expected)


def _holiday_within(countries: tuple[str, ...], day: date, step: int, days: int = 7) -> bool:
    """A holiday (or its eve, the day after) within ``days`` after ``day`` (``step`` 1) or
    before it (``step`` -1)."""
    return any(_near_holiday(countries, day + timedelta(days=step * k)) for k in range(1, days + 1))


@lru_cache(maxsize=1 << 16)
def _near_holiday(countries: tuple[str, ...], day: date) -> bool:
    """A holiday on ``day``, its eve or the day after (remembered, as ``holiday_names``)."""
    return any(holiday_names(countries, day + timedelta(days=k)) for k in (-1, 0, 1))


@dataclass(frozen=True)
class Season:
    """Last year's move to this date (``factor``) and how many of last year's days it was
    read off: ``days_now`` around the date, ``days_before`` around the reference days."""

    factor: float
    days_now: int
    days_before: int

    def relative_variance(self, day_spread: float) -> float:
        """The factor's own relative variance when one day strays by ``day_spread``: a
        ratio of two means of last year's days, each as uncertain as a mean of that many."""
        return day_spread * day_spread * (1.0 / self.days_now + 1.0 / self.days_before)


def season_estimate(
    history: DayHistory,
    day: date,
    reference_days: list[date],
    countries: tuple[str, ...],
    fell_ratio: float = 0.65,
    lasting: int = 14,
) -> Season | None:
    """How last year moved from the days the weekly level was taken from to this date:
    last year's level around ``day`` over its mean level around ``reference_days`` (each a
    year back, ``_year_ago_level``). The weekly level lags a ramp by two or three weeks;
    last year's ramp over the same weeks says by how much. None without a year of history."""
    now = _year_ago_level(history, day, countries, fell_ratio, lasting)
    if now is None:
        return None
    # The reference days' levels were mostly worked out on earlier days: read them directly.
    quiet = history.memo_values(_quiet_name(countries, fell_ratio, lasting), _around(lasting), _YEAR_AGO)
    before: list[tuple[float, int]] = []
    for d in reference_days:
        level = quiet.get(d, _MAY_FALL)
        if level is _MAY_FALL:  # not kept, or kept as "may have fallen": the full look-up
            level = _year_ago_level(history, d, countries, fell_ratio, lasting)
        if level is not None:
            before.append(level)
    if len(before) < max(1, len(reference_days) // 2):
        return None
    levels = [level for level, _ in before]
    if sum(levels) <= 0:
        return None
    factor = now[0] / (sum(levels) / len(levels))
    return Season(factor, now[1], sum(days for _, days in before))


def season_factor(
    history: DayHistory, day: date, reference_days: list[date], countries: tuple[str, ...]
) -> float | None:
    """``season_estimate``'s factor alone."""
    found = season_estimate(history, day, reference_days, countries)
    return found.factor if found is not None else None


def holiday_effect(
    history: DayHistory, last_year: date, countries: tuple[str, ...]
) -> tuple[float, int] | None:
    """Last year's holiday against ordinary days: its total over the median of the same
    weekday one, two and three weeks before and after it (open, non-holiday days, so a
    season moving around it cancels). Returns (ratio, crossings that day), or None.

    An alarm that day last year does not discard it: a holiday surge that happens every
    year is what the holiday does; only a closure's zeros are left out."""
    got = history.get(last_year)
    if got is None or got[1] == CLOSED:
        return None
    around = []
    for weeks in (-3, -2, -1, 1, 2, 3):
        d = last_year + timedelta(days=7 * weeks)
        ordinary = history.get(d)
        if ordinary is not None and ordinary[1] != CLOSED and not holiday_names(countries, d):
            around.append(ordinary[0])
    if len(around) < 2 or median(around) <= 0:
        return None
    return got[0] / median(around), got[0]


def _trend(
    day: date,
    pool: list[_Day],
    history: DayHistory | None,
    countries: tuple[str, ...],
    config: BaselineConfig,
) -> Trend | None:
    """The recent ordinary days' drift (``trend_estimate``, each weekday against itself), if
    it is one. With ``history`` (there is a season factor) each day is over last year's same
    days, so only a move beyond last year's is a trend here (the season factor already
    carries last year's)."""
    groups: dict[int, list[tuple[float, float]]] = {}
    # The values kept of ``_year_ago_log``, read directly (a month of days, every day).
    known = history.memo_values(("year_ago_log", countries), _YEAR_AGO) if history is not None else {}
    for d in pool:
        age = (day - d.day).days
        if age > config.trend_days:
            break
        if d.level <= 0:
            continue
        value = math.log(d.level)
        if history is not None:
            last_year = known[d.day] if d.day in known else _year_ago_log(history, d.day, countries)
            if last_year is None:
                continue
            value -= last_year
        groups.setdefault(d.weekday, []).append((-float(age), value))
    trend = trend_estimate(groups, config.trend_min_points)
    return trend if trend is not None and trend.z >= config.trend_min_z else None


def build_baseline(
    day: date,
    lookup: ProfileLookup,
    config: BaselineConfig = BaselineConfig(),
    history: DayHistory | None = None,
    countries: tuple[str, ...] = (),
    shapes: ShapeCache | None = None,
) -> Baseline | None:
    """Baseline for ``day``, or None while learning (or while nothing ordinary is known).
    ``shapes``: a cache of the days' shapes the caller keeps between days (optional)."""
    past = _past_days(day, lookup, history, config.max_weeks if history else config.weeks, config.weeks)
    weekday = day.weekday()
    weeks_ago = day - timedelta(days=7 * config.weeks)
    recent = [d for d in past if d.day >= weeks_ago]
    open_days = [d for d in past if d.flag != CLOSED]
    if not open_days:
        return None
    floor = config.min_dispersion
    notes: list[str] = []
    # Ordinary days first; alarm days only if too few ordinary ones (a lasting new level).
    holidays = holiday_days_of_years(countries, past[-1].day.year, day.year)
    ordinary = [d for d in open_days if d.flag == NORMAL and d.day not in holidays]
    pool = ordinary if len([d for d in ordinary if d.weekday == weekday][:4]) >= 2 else None
    if pool is None:
        pool = [d for d in recent if d.flag != CLOSED] or open_days
    same = [d for d in pool if d.weekday == weekday][:4]
    if len(same) >= config.min_same_weekday:
        chosen = same
        expected_day = float(median(d.level for d in same))
    elif len(pool) >= config.min_recent_days:
        chosen = pool[:7]
        expected_day = float(median(d.level for d in chosen))
        floor = config.fallback_min_dispersion
    else:
        return None
    if any(d.flag == CLOSED for d in recent):
        # Just reopened: the level is from before the closure and may not hold.
        floor = max(floor, config.unknown_day_dispersion)
        notes.append("reopened recently: judged against the level before the closure, wide band")

    by_weekday: dict[int, list[float]] = {}
    for d in pool[:28]:
        by_weekday.setdefault(d.weekday, []).append(d.level)
    weekday_level = {wd: median(t) for wd, t in by_weekday.items()}
    ratios = [
        d.level / weekday_level[d.weekday]
        for d in pool[:28]
        if len(by_weekday[d.weekday]) >= 2 and weekday_level[d.weekday] > 0
    ]
    # A new day strays from a median of n days by its own spread and the median's error
    # (about pi/2 * spread^2 / n): a prediction interval, not a confidence interval. The
    # floor is a day's own spread, so the median's error comes on top of it too.
    own_spread = max(_mad_cv(ratios), floor)
    dispersion = min(own_spread * math.sqrt(1.0 + math.pi / (2 * len(chosen))), config.max_dispersion)

    found = (
        season_estimate(
            history,
            day,
            [d.day for d in chosen],
            countries,
            config.season_fell_ratio,
            config.season_lasting_days,
        )
        if history is not None
        else None
    )
    trend = _trend(day, pool, history if found is not None else None, countries, config)
    if trend is not None:
        lag = sum((day - d.day).days for d in chosen) / len(chosen)
        most = math.log1p(config.max_weekly_trend) / 7
        slope = min(max(trend.slope, -most), most)
        factor = math.exp(slope * lag)
        if abs(math.log(factor)) > 0.01:
            notes.append(f"trend {math.expm1(7 * slope):+.1%} a week: x{factor:.2f}")
            expected_day *= factor
    season = holiday = 1.0
    if found is not None:
        season = min(max(found.factor, config.min_factor), config.max_factor)
        if abs(math.log(season)) > 0.05:
            notes.append(f"same weeks last year: x{season:.2f}")
        expected_day *= season
        # The factor is read off last year's days, each as noisy as today's: a ratio of
        # two means of them, uncertain in its own right (on a harvest ramp, a week of
        # last year around today against four weeks around the reference days: about
        # a third of a day's spread), on top of the weekly level's.
        dispersion = min(
            math.sqrt(dispersion * dispersion + found.relative_variance(own_spread)),
            config.max_dispersion,
        )
    names = holiday_names(countries, day)
    if names:
        # Last year's day of each of today's holidays; one that carried exactly today's
        # holidays (2 January: "New Year's Day" and a "Day off") is the counterpart, else
        # the holiday whose effect was the largest.
        known = []
        for name in names:
            then = same_holiday_last_year(countries, name, day)
            effect = holiday_effect(history, then, countries) if history is not None and then else None
            if effect is not None:
                assert then is not None
                same_set = holiday_names(countries, then) == names
                label = ", ".join(names) if same_set else name
                known.append((same_set, abs(math.log(max(effect[0], 1e-3))), effect, label))
        if known:
            _, _, (ratio, crossings), name = max(known)
            ratio = min(max(ratio, config.min_factor), config.max_factor)
            notes.append(f"holiday {name}: x{ratio:.2f} last year")
            expected_day *= ratio
            holiday = ratio
            # A factor read off last year's holiday is itself uncertain: its Poisson part and
            # that day's own day-to-day noise, on top of today's.
            dispersion = min(
                math.sqrt(2 * dispersion * dispersion + 1.0 / max(crossings, 1)), config.max_dispersion
            )
        else:
            dispersion = max(dispersion, config.unknown_day_dispersion)
            notes.append(f"holiday {', '.join(names)}: no history, wide band")
    elif history is not None and (beside := beside_holiday_last_year(countries, day)) is not None:
        # The eve of a holiday (or the day after it) moves people too: last year's eve
        # against its ordinary days, as a holiday's own factor.
        words, then = beside
        effect = holiday_effect(history, then, countries)
        if effect is not None:
            ratio = min(max(effect[0], config.min_factor), config.max_factor)
            if abs(math.log(ratio)) > 0.05:
                notes.append(f"{words}: x{ratio:.2f} last year")
            expected_day *= ratio
            holiday = ratio
            dispersion = min(
                math.sqrt(2 * dispersion * dispersion + 1.0 / max(effect[1], 1)), config.max_dispersion
            )

    with_profiles = [d for d in chosen if d.profile is not None and d.total > 0]
    if len(with_profiles) < 2:
        with_profiles = [d for d in recent if d.profile is not None and d.total > 0 and d.flag != CLOSED]
    n = len(with_profiles)
    hourly_share = mean_shape(with_profiles, shapes)
    group_totals: dict[str, float] = {}
    for d in with_profiles:
        assert d.profile is not None
        for group, count in d.profile["groups"].items():
            group_totals[group] = group_totals.get(group, 0.0) + count / d.total
    group_share = {g: c / n for g, c in group_totals.items()} if n else {}
    shape_days = _shapes_of([d for d in pool[:28] if d.profile is not None], shapes)

    return Baseline(
        day=day,
        expected_day=expected_day,
        hourly_share=hourly_share,
        group_share=group_share,
        dispersion=dispersion,
        history_days=len(past),
        notes=tuple(notes),
        share_dispersion=_share_spread(shape_days, config, len(with_profiles), shapes),
        group_dispersion=_group_spread([shape for _, shape in shape_days], config),
        season=season,
        holiday=holiday,
    )
