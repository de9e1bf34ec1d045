"""How much a day's shape and its mix of nationalities stray from the usual (issue 17).

The baseline's two learned spreads, beside its level (``baseline.py``): ``share_spread``
(the share of the day done by each local hour) and ``group_spread`` (each nationality's
ratio to the rest of the post). Both read the shapes of a month of completed days, which
a detector keeps (``ShapeCache``) so each day is summed once, not at every baseline; and
each day's own figures (its shares done by hour, its nationalities' odds) are worked out
with its shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from itertools import chain
from operator import add
from typing import TYPE_CHECKING, Any

from streams.domain.counts import HOURS, split_group
from streams.domain.detect.robust import median

if TYPE_CHECKING:
    from streams.domain.detect.baseline import BaselineConfig, _Day


@dataclass(frozen=True)
class DayShape:
    """What the spreads need of one completed day: the share of it done by each local hour
    (index k: hours up to and including k, for k < 23) and its crossings per nationality.
    Worked out once per day and total (``ShapeCache``), not at every baseline."""

    total: int
    done_by_hour: tuple[float, ...]
    nationalities: dict[str, int] = field(hash=False)
    #: Each local hour's share of the day (``count / total``, the baseline's mean shape
    #: sums them); one tuple per content, as ``done_by_hour``.
    hourly: tuple[float, ...] = field(default=(), compare=False)
    #: ``group_spread``'s figures of each nationality of the day: its ratio to the rest of
    #: the day and that ratio's Poisson part, or None where the rest is empty; ``absent``:
    #: the same of a nationality with no crossings that day. Worked out with the shape.
    odds: dict[str, tuple[float, float] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    absent: tuple[float, float] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.odds.update((name, _odds(own, self.total - own)) for name, own in self.nationalities.items())
        object.__setattr__(self, "absent", _odds(0, self.total))


def _odds(own: int, rest: int) -> tuple[float, float] | None:
    """One nationality's ratio to the rest of its day and the ratio's Poisson part
    (``1/own + 1/rest``), as ``group_spread`` reads them; None with no rest."""
    return (own / rest, 1.0 / max(own, 1) + 1.0 / rest) if rest > 0 else None


@dataclass(frozen=True)
class _WeekdayShapes:
    """What ``share_spread`` draws from the days of one weekday (two or more), in their
    order: each day's shares done by hour (``done``, one tuple per day) and, per hour
    ``k``, the days' deviations from the other days' mean (``deviations[k]``). Holds the
    ``done`` tuples whose ids key it (``ShapeCache.weekdays``), so those ids stay theirs."""

    done: tuple[tuple[float, ...], ...]
    deviations: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class _Hours:
    """What ``share_spread`` draws from a window's weekdays together (``_WeekdayShapes``, in
    order): per hour, the days' shares summed in order (``done``), how many deviations
    there are and their median (None: none). Holds the weekdays whose ids key it."""

    weekdays: tuple[_WeekdayShapes, ...]
    done: tuple[float, ...]
    counts: tuple[int, ...]
    medians: tuple[float | None, ...]
    #: Per hour, the share of the days done (``done`` over the number of days).
    shares: tuple[float, ...] = field(default=(), compare=False)
    #: The number of days.
    days: int = 0
    #: ``share_spread``'s results by its other inputs (the inflation and the config's
    #: figures), where no hour's Poisson part depends on the days' typical total (each
    #: share 0 or 1: a daily file's days); None where one does.
    spreads: dict[tuple[float, int, float, float], tuple[float, ...]] | None = field(
        default=None, compare=False
    )


#: ``_hours``' key: the ids of the window's days' shares in order, and of its weekdays sorted.
_HoursKey = tuple[tuple[int, ...], tuple[int, ...]]


class ShapeCache(dict[tuple[date, int], DayShape]):
    """(day, total) -> its shape; a detector keeps one so each day is summed once, not daily.

    Also what ``share_spread`` drew from each weekday's days (``weekdays``, by the ids of
    their shares done by hour) and from a window's weekdays together (``hours``, by the
    ids of those): from one day to the next, one weekday's days change and six do not. A
    day's shares done by hour are one tuple per content (``done``), so days of the same
    shape (a daily file: every day's count in its first hour) share their figures."""

    #: The newest ``WEEKDAYS_KEPT`` sets of days are kept: a baseline uses seven, and the
    #: next day's six of them and one new (a few kB each, per detector); as many windows.
    WEEKDAYS_KEPT = 16
    #: Distinct shapes kept (a month of days' shares done and shares by hour, with room): a
    #: shape forgotten while still in use only costs a recomputation, never a wrong figure
    #: (its ids are held where used).
    DONE_KEPT = 128
    #: Mean shapes kept (``means``): a daily file's days all have one shape.
    MEANS_KEPT = 16

    #: Windows kept (``windows``): a daily file's come back every week, one per weekday
    #: first and per holiday left out.
    WINDOWS_KEPT = 64

    def __init__(self) -> None:
        super().__init__()
        self.weekdays: dict[tuple[int, ...], _WeekdayShapes] = {}
        self.hours: dict[_HoursKey, _Hours] = {}
        self.done: dict[tuple[float, ...], tuple[float, ...]] = {}
        #: A window's days (each one's weekday and the id of its shares done by hour, in
        #: order) -> its ``_Hours``, and the shares whose ids key it (held, so they stay theirs).
        self.windows: dict[tuple[tuple[int, int], ...], tuple[_Hours, tuple[tuple[float, ...], ...]]] = {}
        #: The ids of days' shares by hour (``DayShape.hourly``, in order) -> their mean
        #: shape (``mean_shape``), and the shares whose ids key it.
        self.means: dict[tuple[int, ...], tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]] = {}

    def shared(self, done: tuple[float, ...]) -> tuple[float, ...]:
        """The one tuple kept for this content (``done``)."""
        found = self.done.setdefault(done, done)
        _bound(self.done, self.DONE_KEPT)
        return found


def _bound(kept: dict[Any, Any], most: int) -> None:
    """Forget the oldest entries of ``kept`` beyond ``most``."""
    while len(kept) > most:
        del kept[next(iter(kept))]


def day_shape(d: _Day, cache: ShapeCache | None) -> DayShape | None:
    if d.profile is None or d.total <= 0:
        return None
    key = (d.day, d.total)
    if cache is not None and key in cache:
        return cache[key]
    done, running, total = [], 0, d.total
    for count in d.profile["hourly"][: HOURS - 1]:
        running += count
        done.append(running / total)
    nationalities: dict[str, int] = {}
    for group, count in d.profile["groups"].items():
        nationality = split_group(group)[0]
        nationalities[nationality] = nationalities.get(nationality, 0) + count
    shares = tuple(done)
    hourly = tuple(count / total for count in d.profile["hourly"])
    if isinstance(cache, ShapeCache):
        shares, hourly = cache.shared(shares), cache.shared(hourly)
    shape = DayShape(total, shares, nationalities, hourly)
    if cache is not None:
        cache[key] = shape
    return shape


def mean_shape(days: list[_Day], cache: ShapeCache | None) -> tuple[float, ...]:
    """Per local hour, the mean of the days' shares of their day (days with a profile and
    crossings; uniform without days): each hour's shares summed in the days' order, then
    over their number. Kept by the days' shares (a daily file's days share one), so a
    month's days are not summed hour by hour every day."""
    n = len(days)
    if not n:
        return tuple(1 / HOURS for _ in range(HOURS))
    if isinstance(cache, ShapeCache):
        hourly_of = [shape.hourly for shape in _cached_shapes(days, cache) if len(shape.hourly) == HOURS]
        if len(hourly_of) == n:
            key = tuple(map(id, hourly_of))
            known = cache.means.get(key)
            if known is None:
                sums = [0.0] * HOURS
                for shares in hourly_of:
                    sums = [a + b for a, b in zip(sums, shares, strict=True)]
                known = cache.means[key] = (tuple(h / n for h in sums), tuple(hourly_of))
                _bound(cache.means, ShapeCache.MEANS_KEPT)
            return known[0]
    sums = [0.0] * HOURS
    for d in days:
        assert d.profile is not None
        for hour, count in enumerate(d.profile["hourly"]):
            sums[hour] += count / d.total
    return tuple(h / n for h in sums)


def _weekday_shapes(
    done: list[tuple[float, ...]], kept: dict[tuple[int, ...], _WeekdayShapes] | None
) -> _WeekdayShapes:
    """``share_spread``'s figures of one weekday's days (their shares done by hour): each
    day's shares against the mean of the other days' (leave one out), worked out once per
    set of shapes."""
    key = tuple(map(id, done))
    if kept is not None and key in kept:
        return kept[key]
    n = len(done)
    scale = math.sqrt((n - 1) / n)
    others = 1.0 / (n - 1)
    # Per hour, each day's share against the others' mean (``reference``), days in order.
    deviations = tuple(
        tuple(
            abs(own / reference - 1.0) * scale
            for own in column
            if (reference := (whole - own) * others) > 0.0
        )
        for column, whole in zip(
            zip(*done, strict=True), [sum(column) for column in zip(*done, strict=True)], strict=True
        )
    )
    found = _WeekdayShapes(tuple(done), deviations)
    if kept is not None:
        kept[key] = found
        _bound(kept, ShapeCache.WEEKDAYS_KEPT)
    return found


def _hours(weekdays: list[_WeekdayShapes], kept: dict[_HoursKey, _Hours] | None) -> _Hours:
    """The figures per hour of a window's weekdays together: the days' shares summed in the
    days' order (as one running sum would), and the deviations of every weekday's days
    together counted and their median. Worked out once per set of weekdays: kept by the
    days' shares in order (their ids: the sums' operands, in the sums' order) and the
    weekdays as a set (a count and a median do not depend on the order), so a window whose
    weekdays of unequal sizes come in the next day's order finds them again."""
    key = (tuple(id(done) for w in weekdays for done in w.done), tuple(sorted(map(id, weekdays))))
    if kept is not None and key in kept:
        return kept[key]
    done = tuple(
        reduce(add, hour, 0.0) for hour in zip(*(done for w in weekdays for done in w.done), strict=True)
    )
    deviations = [
        list(chain.from_iterable(hour)) for hour in zip(*(w.deviations for w in weekdays), strict=True)
    ]
    days = sum(len(w.done) for w in weekdays)
    shares = tuple(hour / days for hour in done)
    found = _Hours(
        tuple(weekdays),
        done,
        tuple(len(hour) for hour in deviations),
        tuple(median(hour) if hour else None for hour in deviations),
        shares,
        days,
        {} if all(share <= 0 or 1.0 - share == 0.0 for share in shares) else None,
    )
    if kept is not None:
        kept[key] = found
        _bound(kept, ShapeCache.WEEKDAYS_KEPT)
    return found


def share_spread(
    days: list[_Day], config: BaselineConfig, averaged: int = 0, cache: ShapeCache | None = None
) -> tuple[float, ...]:
    """How far a day's share done by each local hour strays from the usual, beyond Poisson.

    Each day's cumulative share by hour k is compared with the mean of the other days of
    the same weekday (leave one out, so a day is not part of its own yardstick); the
    robust spread of those ratios, less the Poisson part expected from the counts
    (``(1 - share) / (share * total)``), is the extra relative uncertainty of "the share
    of the day done by now". Index k: the hours before k (0 and 24 carry none). Empty if
    fewer than ``min_shape_days`` days compare. ``averaged``: how many days the expected
    shape is the mean of (its own error adds ``spread^2 / averaged``, as for a prediction
    interval)."""
    return _share_spread(_shapes_of(days, cache), config, averaged, cache)


def _shapes_of(days: list[_Day], cache: ShapeCache | None) -> list[tuple[int, DayShape]]:
    """The days with a shape (``day_shape``), each with its weekday, in order. A shape the
    cache holds is read from it here (a month of days, every day)."""
    if cache is None:
        return [(d.weekday, shape) for d in days if (shape := day_shape(d, cache)) is not None]
    weekdays = [d.weekday for d in days if d.profile is not None and d.total > 0]
    return list(zip(weekdays, _cached_shapes(days, cache), strict=True))


def _cached_shapes(days: list[_Day], cache: dict[tuple[date, int], DayShape]) -> list[DayShape]:
    """``day_shape`` of the days that have one, in order, the cache read here (a month of
    days, every day) and ``day_shape`` asked only for a day it does not hold."""
    found = []
    for d in days:
        if d.profile is None or d.total <= 0:
            continue
        shape = cache.get((d.day, d.total))
        if shape is None:
            shape = day_shape(d, cache)
            assert shape is not None  # a profile and crossings: a shape
        found.append(shape)
    return found


def _weekday_groups(shapes: list[tuple[int, DayShape]]) -> list[list[DayShape]]:
    """The days' shapes by weekday (weekdays as first seen, days in order), of the
    weekdays with two days or more: those ``share_spread`` compares."""
    by_weekday: dict[int, list[DayShape]] = {}
    for weekday, shape in shapes:
        by_weekday.setdefault(weekday, []).append(shape)
    return [found for found in by_weekday.values() if len(found) >= 2]


def _share_spread(
    shapes: list[tuple[int, DayShape]], config: BaselineConfig, averaged: int, cache: ShapeCache | None
) -> tuple[float, ...]:
    """``share_spread`` of the days' shapes (``_shapes_of``). A window seen before (the
    same weekdays and shares in the same order: a daily file's, every week) finds its
    ``_Hours`` at once, without grouping its days again."""
    kept = cache if isinstance(cache, ShapeCache) else None
    window = tuple((weekday, id(shape.done_by_hour)) for weekday, shape in shapes) if kept else ()
    known = kept.windows.get(window) if kept else None
    totals: list[int] | None = None
    if known is not None:
        hours = known[0]
        if hours.days < config.min_shape_days:
            return ()
    else:
        groups = _weekday_groups(shapes)
        totals = [shape.total for group in groups for shape in group]
        if len(totals) < config.min_shape_days:
            return ()
        weekdays = [
            _weekday_shapes([shape.done_by_hour for shape in group], kept.weekdays if kept else None)
            for group in groups
        ]
        hours = _hours(weekdays, kept.hours if kept else None)
        if kept is not None:
            kept.windows[window] = (hours, tuple(shape.done_by_hour for _, shape in shapes))
            _bound(kept.windows, ShapeCache.WINDOWS_KEPT)
    inflate = 1.0 + 1.0 / averaged if averaged else 1.0
    key = (inflate, config.min_shape_days, config.unknown_share_dispersion, config.min_share_dispersion)
    if hours.spreads is not None and (found := hours.spreads.get(key)) is not None:
        return found
    # The days' totals are all positive (``day_shape``): a share of 1 has a Poisson part of
    # exactly 0.0 whatever their typical total, so where every share is 0 or 1 the result
    # is kept by ``key`` alone.
    if totals is None:
        totals = [shape.total for group in _weekday_groups(shapes) for shape in group]
    typical_total = median(totals)
    spread = [0.0] * (HOURS + 1)
    for k, (count, middle) in enumerate(zip(hours.counts, hours.medians, strict=True)):
        if count < config.min_shape_days or middle is None:
            spread[k + 1] = config.unknown_share_dispersion
            continue
        share = hours.shares[k]
        poisson = (1.0 - share) / (share * typical_total) if share > 0 else 0.0
        excess = ((1.4826 * middle) ** 2 - poisson) * inflate
        spread[k + 1] = min(max(math.sqrt(max(excess, 0.0)), config.min_share_dispersion), 1.0)
    result = tuple(spread)
    if hours.spreads is not None:
        hours.spreads[key] = result
    return result


def group_spread(
    days: list[_Day], config: BaselineConfig, cache: ShapeCache | None = None
) -> dict[str, float]:
    """Per nationality: the robust day-to-day spread of its ratio to the rest of the post,
    beyond Poisson (``1/own + 1/rest``). A crackdown on one nationality is judged against
    the other nationalities of the same day, so the day's level and shape cancel."""
    return _group_spread([shape for _, shape in _shapes_of(days, cache)], config)


def _group_spread(shapes: list[DayShape], config: BaselineConfig) -> dict[str, float]:
    """``group_spread`` of the days' shapes."""
    if len(shapes) < config.min_shape_days:
        return {}
    names = sorted({n for shape in shapes for n in shape.nationalities})
    spreads = {}
    for nationality in names:
        known = [odds for shape in shapes if (odds := shape.odds.get(nationality, shape.absent)) is not None]
        if len(known) < config.min_shape_days:
            continue
        ratios = [odds[0] for odds in known]
        centre = median(ratios)
        if centre <= 0:
            continue
        # 1.4826 * the median absolute deviation from the centre: a standard deviation
        # robust to outliers.
        spread = 1.4826 * median([abs(r / centre - 1.0) for r in ratios])
        excess = spread**2 - median([odds[1] for odds in known])
        spreads[nationality] = min(max(math.sqrt(max(excess, 0.0)), config.min_share_dispersion), 1.0)
    return spreads
