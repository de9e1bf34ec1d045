"""Issue 17, item 9: the faster baseline's shortcuts give exactly what the long way gives.

``DayHistory.before`` against ``get`` day by day, ``robust.median`` against
``statistics.median`` (to the last bit), and ``share_spread`` on a daily file's shapes
(every day's count in its first hour: one shape) with its kept figures against none, and
with its kept windows day after day against the plain computation."""

from __future__ import annotations

import math
import random
import statistics
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.detect.baseline import BaselineConfig, ShapeCache, _Day, mean_shape, share_spread
from streams.domain.detect.history import ALARM, CLOSED, KEEP_DAYS, NORMAL, DayHistory
from streams.domain.detect.robust import median

START = date(2024, 1, 1)

records = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 9000), st.sampled_from((NORMAL, ALARM, CLOSED))),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(records, st.integers(-20, 560), st.integers(0, 200))
def test_before_reads_what_get_reads_day_by_day(script, offset, count):
    history = DayHistory()
    for k, total, flag in script:  # gaps, days recorded again, a window moved past KEEP_DAYS
        history.record(START + timedelta(days=k), total, flag)
    day = START + timedelta(days=offset)
    totals, flags = history.before(day, count)
    expected = [history.get(day - timedelta(days=back)) for back in range(count, 0, -1)]
    assert totals == [got[0] if got else None for got in expected]
    assert len(flags) == count
    assert [flag for flag, got in zip(flags, expected, strict=True) if got] == [
        got[1] for got in expected if got
    ]
    assert len(history.totals) <= KEEP_DAYS


@settings(max_examples=200, deadline=None)
@given(records, st.integers(-20, 560), st.integers(0, 200))
def test_recorded_before_is_before_without_the_days_not_recorded(script, offset, count):
    history = DayHistory()
    for k, total, flag in script:
        history.record(START + timedelta(days=k), total, flag)
    day = START + timedelta(days=offset)
    totals, _ = history.before(day, count)
    assert history.recorded_before(day, count) == [total for total in totals if total is not None]


def test_before_of_an_empty_history_is_all_unknown():
    assert DayHistory().before(START, 3) == ([None, None, None], NORMAL * 3)


numbers = st.lists(
    st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=60
) | st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(numbers)
def test_median_is_statistics_median_to_the_last_bit(values):
    ours, theirs = median(values), statistics.median(values)
    assert type(ours) is type(theirs)
    assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))
    assert math.copysign(1.0, ours) == math.copysign(1.0, theirs)


def _daily_days(totals: list[int]) -> list[_Day]:
    """Days as a daily file gives them: the whole count in the first hour."""
    days = []
    for k, total in enumerate(totals):
        hourly = [total] + [0] * 23
        profile = {"total": total, "hourly": hourly, "groups": {"FIN|work": total}}
        days.append(_Day(START + timedelta(days=k), total, profile, NORMAL))
    return days


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 50_000), min_size=90, max_size=90), st.integers(0, 28))
def test_share_spread_of_daily_shapes_kept_is_share_spread_afresh(totals, averaged):
    config = BaselineConfig()
    every = _daily_days(totals)
    cache = ShapeCache()
    worked_out = []
    for end in range(7, len(every)):  # a month's window sliding a day at a time
        window = every[max(0, end - 28) : end][::-1]
        assert share_spread(window, config, averaged, cache) == share_spread(window, config, averaged)
        worked_out.append(set(map(id, cache.hours.values())))
    # One shape for every day; once the window holds four weeks, its figures are found
    # again each day, not worked out anew.
    assert len({id(shape.done_by_hour) for shape in cache.values()}) == 1
    assert all(later == worked_out[28] for later in worked_out[28:])


# -- share_spread, kept by its window, against the plain computation ----------------------


def _plain_share_spread(days: list[_Day], config: BaselineConfig, averaged: int) -> tuple[float, ...]:
    """``share_spread`` worked out the long way (no shapes, weekdays or hours kept): each
    day's shares done by hour, per weekday the leave-one-out deviations, the days' shares
    summed in the days' order (weekday by weekday, as first seen), statistics.median."""
    by_weekday: dict[int, list[tuple[int, list[float]]]] = {}
    for d in days:
        if d.profile is None or d.total <= 0:
            continue
        done, running = [], 0
        for count in d.profile["hourly"][:23]:
            running += count
            done.append(running / d.total)
        by_weekday.setdefault(d.day.weekday(), []).append((d.total, done))
    groups = [group for group in by_weekday.values() if len(group) >= 2]
    totals = [total for group in groups for total, _ in group]
    if len(totals) < config.min_shape_days:
        return ()
    deviations: list[list[float]] = [[] for _ in range(23)]
    sums = [0.0] * 23
    for group in groups:
        n = len(group)
        for k in range(23):
            column = [done[k] for _, done in group]
            whole = sum(column)
            for own in column:
                reference = (whole - own) * (1.0 / (n - 1))
                if reference > 0.0:
                    deviations[k].append(abs(own / reference - 1.0) * math.sqrt((n - 1) / n))
    for group in groups:
        for _, done in group:
            for k in range(23):
                sums[k] += done[k]
    typical = statistics.median(totals)
    inflate = 1.0 + 1.0 / averaged if averaged else 1.0
    spread = [0.0] * 25
    for k in range(23):
        if len(deviations[k]) < config.min_shape_days:
            spread[k + 1] = config.unknown_share_dispersion
            continue
        middle = statistics.median(deviations[k])
        share = sums[k] / len(totals)
        poisson = (1.0 - share) / (share * typical) if share > 0 else 0.0
        excess = ((1.4826 * middle) ** 2 - poisson) * inflate
        spread[k + 1] = min(max(math.sqrt(max(excess, 0.0)), config.min_share_dispersion), 1.0)
    return tuple(spread)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 6), st.floats(0.0, 0.5))
def test_share_spread_kept_day_after_day_is_the_plain_computation(seed, averaged, left_out):
    """Windows of a month sliding a day at a time, with one cache throughout, over daily
    shapes (all in the first hour, or two shapes with part in the last hour, each at any
    total), hourly ones, and days left out (a holiday: weekdays of unequal sizes)."""
    rng = random.Random(seed)
    config = BaselineConfig()
    every = []
    # A file's days are mostly of one kind (so windows of the same shapes recur).
    usual = rng.choice(("first hour", "two shapes"))
    for k in range(120):
        total = rng.randint(1, 5_000)
        if rng.random() < left_out:
            continue
        kind = "hourly" if rng.random() < 0.02 else usual
        if kind == "hourly":
            counts = [rng.randint(0, 400) for _ in range(24)]
        elif kind == "two shapes":
            counts = [(1 + k % 2) * total, *([0] * 22), total]
        else:
            counts = [total] + [0] * 23
        if sum(counts) == 0:
            continue
        profile = {"total": sum(counts), "hourly": counts, "groups": {"FIN|work": sum(counts)}}
        every.append(_Day(START + timedelta(days=k), sum(counts), profile, NORMAL))
    cache = ShapeCache()
    for end in range(len(every)):
        window = [d for d in every[:end] if (every[end].day - d.day).days <= 28][::-1]
        assert share_spread(window, config, averaged, cache) == _plain_share_spread(window, config, averaged)


def test_a_window_of_the_same_shapes_on_other_weekdays_is_not_found_again():
    """Two windows with the same shares in the same order but a day left out in one (so its
    days fall on other weekdays and group otherwise): each its own figures."""
    config = BaselineConfig()
    cache = ShapeCache()
    totals = [1_000 + 37 * k for k in range(24)]
    for gap_at in (None, 10, 3):
        window = []
        for k, total in enumerate(totals):
            day = START + timedelta(days=k + (1 if gap_at is not None and k >= gap_at else 0))
            counts = [(1 + k % 3) * total, *([0] * 22), total]
            profile = {"total": sum(counts), "hourly": counts, "groups": {"FIN|work": sum(counts)}}
            window.append(_Day(day, sum(counts), profile, NORMAL))
        window.reverse()
        assert share_spread(window, config, 4, cache) == _plain_share_spread(window, config, 4)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.floats(0.0, 0.3))
def test_mean_shape_kept_day_after_day_is_the_hour_by_hour_sum(seed, hourly_share):
    """The baseline's mean shape, kept by its days' shares, against summing each hour's
    shares in the days' order and dividing, day after day with one cache."""
    rng = random.Random(seed)
    cache = ShapeCache()
    every = []
    for k in range(90):
        total = rng.randint(1, 5_000)
        if rng.random() < hourly_share:
            counts = [rng.randint(0, 400) for _ in range(24)]
        else:
            counts = [total] + [0] * 23 if k % 4 else [total, *([0] * 22), 2 * total]
        if sum(counts) == 0:
            continue
        profile = {"total": sum(counts), "hourly": counts, "groups": {}}
        every.append(_Day(START + timedelta(days=k), sum(counts), profile, NORMAL))
    for end in range(len(every)):
        days = every[max(0, end - rng.randint(0, 6)) : end][::-1]
        sums = [0.0] * 24
        for d in days:
            for hour, count in enumerate(d.profile["hourly"]):
                sums[hour] += count / d.total
        plain = tuple(h / len(days) for h in sums) if days else tuple(1 / 24 for _ in range(24))
        assert mean_shape(days, cache) == plain
        assert mean_shape(days, None) == plain
