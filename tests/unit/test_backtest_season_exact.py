"""Issue 17, item 9: last year's lasting drops found on one slice, and skipped where none can
be, give exactly what the day-by-day walk gave.

``DayHistory.before_expected`` against ``expected_on`` day by day; ``_lasting_drop`` against
the walk it replaced (``_oracle``, one ``get`` and ``expected_on`` a day); ``_may_fall``
never says no where that walk puts a day of last year's week in a lasting drop; and a memo
dropped on ``record`` by looking at its values is dropped as by looking at its days.
Last year's level of a day is kept while the history forgets the older days of its span
(where none of last year's week can have fallen), and is still what it would be afresh."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.detect.baseline import (
    _YEAR_AGO,
    _around,
    _fell,
    _lasting_drop,
    _may_fall,
    _year_ago_level,
    _year_ago_level_of,
)
from streams.domain.detect.history import ALARM, CLOSED, KEEP_DAYS, NORMAL, DayHistory

START = date(2023, 1, 2)


def _oracle(history: DayHistory, day: date, fell_ratio: float, lasting: int) -> set[int]:
    """``_lasting_drop`` as it was: each day of the span read on its own, oldest first."""
    span = _around(lasting)
    anchor: dict[int, int] = {}
    fallen = []
    for shift in reversed(span):
        earlier = day - timedelta(days=shift)
        got, expected = history.get(earlier), history.expected_on(earlier)
        weekday = earlier.weekday()
        reference = anchor.get(weekday, expected)
        fell = got is not None and (
            got[1] == CLOSED
            or _fell(got, expected, fell_ratio)
            or (reference is not None and got[0] <= fell_ratio * reference)
        )
        if not fell and expected is not None:
            anchor[weekday] = expected
        fallen.append((shift, fell))
    gone: set[int] = set()
    run: list[int] = []
    for shift, fell in [*fallen, (0, False)]:
        if fell:
            run.append(shift)
            continue
        if len(run) >= lasting:
            gone.update(run)
        run = []
    return gone


#: Days of a series: mostly ordinary around 1,000 (expected about that), with drops (some
#: lasting weeks), closures, alarms, days never judged and days never recorded.
days = st.lists(
    st.tuples(
        st.sampled_from(("ordinary", "ordinary", "ordinary", "drop", "closed", "alarm", "gap")),
        st.integers(0, 1_500),
        st.one_of(st.none(), st.integers(600, 1_400)),
        st.integers(1, 30),
    ),
    min_size=1,
    max_size=40,
)


def _recorded(history: DayHistory, script: list[tuple[str, int, int | None, int]]) -> Iterator[date]:
    """Record ``script``'s days one by one into ``history``, yielding the day after each."""
    day = START
    for kind, total, expected, length in script:
        for _ in range(length):
            if kind != "gap":
                value = total // 4 if kind == "drop" else (0 if kind == "closed" else total)
                flag = {"closed": CLOSED, "alarm": ALARM}.get(kind, NORMAL)
                history.record(day, value, flag)
                history.expect(day, expected)
            day += timedelta(days=1)
            yield day


def _history(script: list[tuple[str, int, int | None, int]]) -> DayHistory:
    history = DayHistory()
    for _ in _recorded(history, script):
        pass
    return history


@settings(max_examples=150, deadline=None)
@given(days, st.integers(0, 900), st.sampled_from((0.65, 0.3, 0.9)), st.sampled_from((14, 7, 3)))
def test_lasting_drop_on_one_slice_is_the_day_by_day_walk(script, offset, fell_ratio, lasting):
    history = _history(script)
    day = START + timedelta(days=offset)
    expected = _oracle(history, day, fell_ratio, lasting)
    assert _lasting_drop(history, day, fell_ratio, lasting) == expected
    if not _may_fall(history, day, fell_ratio, lasting):
        assert not expected & set(_YEAR_AGO)


def _may_fall_on_a_slice(history: DayHistory, day: date, fell_ratio: float, lasting: int) -> bool:
    """``_may_fall`` as it was: the span read as one slice (``before_expected``)."""
    span = _around(lasting)
    count = len(span)
    totals, flags, expected = history.before_expected(day - timedelta(days=span.start - 1), count)
    oldest = span[-1]
    for shift in _YEAR_AGO:
        i = oldest - shift
        total = totals[i]
        if total is None:
            continue
        if flags[i] == CLOSED:
            return True
        own = expected[i]
        if own is not None and (total <= fell_ratio * own or (flags[i] == ALARM and total < own)):
            return True
        earlier = [e for e in expected[i % 7 : i : 7] if e is not None]
        if earlier and total <= fell_ratio * max(earlier):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(days, st.integers(-30, 900), st.sampled_from((0.65, 0.3, 0.9)), st.sampled_from((14, 7, 3)))
def test_may_fall_read_in_place_is_may_fall_on_a_slice(script, offset, fell_ratio, lasting):
    history = _history(script)
    day = START + timedelta(days=offset)
    assert _may_fall(history, day, fell_ratio, lasting) == _may_fall_on_a_slice(
        history, day, fell_ratio, lasting
    )
    assert not _may_fall(DayHistory(), day, fell_ratio, lasting)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(300, 700), st.floats(0.05, 0.95))
def test_may_fall_in_place_against_the_slice_on_sparse_expectations(seed, length, unjudged):
    """Most days without an expectation, so the earlier days of a weekday decide, at every
    day of a history that starts late and one that has forgotten its oldest days."""
    rng = random.Random(seed)
    history = DayHistory()
    first = START + timedelta(days=rng.randrange(0, 7))
    for k in range(length):
        day = first + timedelta(days=k)
        if rng.random() < 0.05:
            continue  # never recorded
        flag = rng.choice((NORMAL,) * 8 + (ALARM, CLOSED))
        history.record(day, rng.randrange(0, 1_200), flag)
        history.expect(day, None if rng.random() < unjudged else rng.randrange(300, 1_500))
    for k in range(0, length + 480, 3):
        day = first + timedelta(days=k)
        for fell_ratio, lasting in ((0.65, 14), (0.3, 7)):
            assert _may_fall(history, day, fell_ratio, lasting) == _may_fall_on_a_slice(
                history, day, fell_ratio, lasting
            )


def test_may_fall_says_yes_for_a_lockdown_through_last_years_week():
    history = DayHistory()
    lockdown = START + timedelta(days=100)
    for k in range(400):
        day = START + timedelta(days=k)
        down = lockdown <= day < lockdown + timedelta(days=30)
        history.record(day, 200 if down else 1_000, NORMAL)
        history.expect(day, 1_000)
    day = lockdown + timedelta(days=364 + 10)
    assert _lasting_drop(history, day, 0.65, 14) & set(_YEAR_AGO)
    assert _may_fall(history, day, 0.65, 14)
    assert not _may_fall(history, day + timedelta(days=60), 0.65, 14)


@settings(max_examples=100, deadline=None)
@given(days, st.integers(-20, 900), st.integers(0, 200))
def test_before_expected_reads_what_expected_on_reads(script, offset, count):
    history = _history(script)
    day = START + timedelta(days=offset)
    totals, flags, expected = history.before_expected(day, count)
    assert (totals, flags) == history.before(day, count)
    assert expected == [history.expected_on(day - timedelta(days=back)) for back in range(count, 0, -1)]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 120), st.integers(0, 50)), min_size=1, max_size=60),
    st.sampled_from((range(1, 4), range(5, 40), range(361, 368))),
)
def test_memo_after_record_is_worked_out_afresh(script, back):
    """A value kept is one ``compute`` would give now: whichever way ``record`` drops them."""
    history = DayHistory()

    def fresh(day: date) -> tuple[int | None, ...]:
        return tuple(got[0] if (got := history.get(day - timedelta(days=k))) else None for k in back)

    for k, total in script:
        history.record(START + timedelta(days=k), total, NORMAL)
        for asked in range(0, 130, 3):
            day = START + timedelta(days=asked)
            assert history.memo("window", day, back, lambda day=day: fresh(day)) == fresh(day)


QUIET = ("year_ago_level_quiet", (), 0.65, 14)


def _steady(history: DayHistory, first: date, count: int) -> None:
    for k in range(count):
        day = first + timedelta(days=k)
        total = 1_000 + 37 * (k % 7)
        history.record(day, total, NORMAL)
        history.expect(day, total)


def test_last_years_level_of_the_reference_days_is_kept_as_the_year_moves_on():
    """The weekly level's days (a month back) are asked again each day: with the kept year
    full, each day forgets one more of their spans' days, and none of them is worked out
    again (once the new day's own)."""
    history = DayHistory()
    _steady(history, START, KEEP_DAYS + 50)  # full: each record now forgets a day
    today = START + timedelta(days=KEEP_DAYS + 50)
    for _ in range(10):
        references = [today - timedelta(days=7 * w) for w in range(1, 5)]
        for d in references:
            assert _year_ago_level(history, d, ()) == _year_ago_level_of(history, d, (), 0.65, 14)
        kept = dict(history._memos[QUIET][1])
        _steady(history, today, 1)
        today += timedelta(days=1)
        for d in references:
            assert history._memos[QUIET][1].get(d, "gone") is kept[d]  # not worked out again


#: Long enough to fill the kept year: some days, 200 ordinary ones, some days.
long_days = st.tuples(days, days).map(lambda two: [*two[0], ("ordinary", 1_000, 1_000, 200), *two[1]])


@settings(max_examples=60, deadline=None)
@given(long_days, st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_last_years_level_kept_is_last_years_level_afresh(script, asked):
    """Whatever the days (drops that lasted, closures, gaps), recorded one by one past the
    kept year: the level the memo gives is the one worked out afresh."""
    history = DayHistory()
    for day in _recorded(history, script):
        if (day - START).days > 360:
            for back in asked:
                d = day - timedelta(days=back)
                assert _year_ago_level(history, d, ()) == _year_ago_level_of(history, d, (), 0.65, 14)


def test_a_value_that_read_the_day_recorded_again_is_worked_out_afresh():
    """The newest value kept is the first that reads the day recorded again (``record``
    looks only where a value can have read it: at that edge too), and a day recorded past
    ``KEEP_DAYS`` forgets the values that read the oldest days."""
    for back in (range(1, 4), range(5, 40), range(361, 368), range(348, 458)):
        history = DayHistory()

        def fresh(day: date, back: range = back, history: DayHistory = history) -> tuple[int | None, ...]:
            return tuple(got[0] if (got := history.get(day - timedelta(days=k))) else None for k in back)

        for k in range(KEEP_DAYS + 30):
            history.record(START + timedelta(days=k), k, NORMAL)
        last = START + timedelta(days=KEEP_DAYS + 29)
        edge = last + timedelta(days=back.start)
        for day in (edge - timedelta(days=2), edge):
            assert history.memo("window", day, back, lambda day=day: fresh(day)) == fresh(day)
        history.record(last, 10**6, NORMAL)  # the newest day again
        assert history.memo("window", edge, back, lambda edge=edge: fresh(edge)) == fresh(edge)
        assert fresh(edge)[0] == 10**6
        history.record(last + timedelta(days=1), 0, NORMAL)  # forgets the oldest day
        for key, value in history.memo_values("window", back).items():
            assert value == fresh(key)
