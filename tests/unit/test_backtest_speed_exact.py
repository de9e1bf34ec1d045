"""Issue 17, item 9: the faster baseline's shortcuts give exactly what the long way gives.

``DayHistory.before`` against ``get`` day by day, ``robust.median`` against
``statistics.median`` (to the last bit), and ``share_spread`` on a daily file's shapes
(every day's count in its first hour: one shape) with its kept figures against none."""

from __future__ import annotations

import math
import statistics
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.detect.baseline import BaselineConfig, ShapeCache, _Day, share_spread
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
