"""Several days' evidence together (``onset.py``): the scan against a brute-force oracle, and
the pooled end of an episode."""

from __future__ import annotations

import math
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.detect.countmodel import tail_score
from streams.domain.detect.history import ALARM, CLOSED, NORMAL, DayHistory
from streams.domain.detect.onset import MAX_DAYS, find_onset, pooled_back_inside

START = date(2024, 1, 1)
RULES = {
    "surge_ratio": 1.4,
    "drop_ratio": 0.65,
    "clear_surge_ratio": 1.15,
    "clear_drop_ratio": 0.85,
    "min_excess": 25.0,
    "min_score": 4.5,
}

day_st = st.tuples(
    st.integers(0, 600),  # total
    st.one_of(st.none(), st.integers(1, 400)),  # expectation (None: not judged)
    st.sampled_from([NORMAL, NORMAL, NORMAL, ALARM, CLOSED]),
)


def _history(days: list[tuple[int, int | None, str]]) -> DayHistory:
    history = DayHistory()
    for k, (total, expected, flag) in enumerate(days):
        history.record(START + timedelta(days=k), total, flag)
        history.expect(START + timedelta(days=k), expected)
    return history


def _oracle(days: list[tuple[int, int | None, str]], cv: float):
    """Every window of 2..MAX_DAYS days ending on the last, shortest first: all judged, open,
    on one side beyond the clear band, none past the day's conditions alone, and together
    past them."""

    def alone(total: int, mu: int, kind: str) -> bool:
        ratio = total / mu
        if kind == "surge" and (ratio < RULES["surge_ratio"] or total - mu < RULES["min_excess"]):
            return False
        if kind == "drop" and (ratio > RULES["drop_ratio"] or mu - total < RULES["min_excess"]):
            return False
        return abs(tail_score(total, float(mu), cv)) >= RULES["min_score"]

    for n in range(2, MAX_DAYS + 1):
        if n > len(days):
            return None
        window = days[-n:]
        if any(mu is None or flag == CLOSED for _, mu, flag in window):
            return None
        sides = {
            "surge"
            if t / mu >= RULES["clear_surge_ratio"]
            else "drop"
            if t / mu <= RULES["clear_drop_ratio"]
            else None
            for t, mu, _ in window
        }
        if len(sides) != 1 or None in sides:
            return None
        (kind,) = sides
        if any(alone(t, mu, kind) for t, mu, _ in window):
            return None
        observed = sum(t for t, _, _ in window)
        expected = float(sum(mu for _, mu, _ in window))
        # The day-level error (cv less its Poisson part, at least 0.08) the same on every
        # day, the medians' Poisson error independent.
        mean = expected / n
        spread = math.sqrt(max(cv * cv - (1 + math.pi / 8) / mean, 0.08**2) + (math.pi / 8) / expected)
        ratio = observed / expected
        if kind == "surge":
            passes = ratio >= RULES["surge_ratio"] and observed - expected >= RULES["min_excess"]
        else:
            passes = ratio <= RULES["drop_ratio"] and expected - observed >= RULES["min_excess"]
        if passes and abs(tail_score(observed, expected, spread)) >= RULES["min_score"]:
            return kind, n
    return None


@settings(max_examples=400, deadline=None)
@given(days=st.lists(day_st, min_size=1, max_size=12), cv=st.sampled_from([0.0, 0.05, 0.2]))
def test_the_scan_is_the_shortest_window_that_passes_a_days_conditions(days, cv):
    history = _history(days)
    last = START + timedelta(days=len(days) - 1)
    found = find_onset(history, last, cv, **RULES)
    expected = _oracle(days, cv)
    got = None if found is None else (found.kind, len(found.days))
    assert got == expected
    if found is not None:
        assert found.days[-1] == last and len(set(found.days)) == len(found.days)


def test_one_large_day_among_ordinary_ones_is_no_onset():
    """A day beyond the band pooled with ordinary days does not make a run: the run needs
    every day of it departed (a single day is the single-day view's)."""
    days = [(100, 100, NORMAL)] * 5 + [(400, 100, NORMAL), (100, 100, NORMAL)]
    assert find_onset(_history(days), START + timedelta(days=6), 0.05, **RULES) is None


def test_a_low_volume_week_at_x15_is_found_by_the_days_together():
    """At ~150 a day each day at x1.5 scores under 4.5 alone; three days together pass."""
    days = [(150, 150, NORMAL)] * 7 + [(225, 150, NORMAL)] * 3
    for k, (total, mu, _) in enumerate(days[7:]):
        assert abs(tail_score(total, float(mu), 0.1)) < RULES["min_score"], k
    found = find_onset(_history(days), START + timedelta(days=9), 0.1, **RULES)
    assert found is not None and found.kind == "surge"
    assert 2 <= len(found.days) <= 3


def test_an_episode_the_days_opened_ends_on_the_days_together():
    """Back inside the band on one quiet day is not the end: the days since the episode
    opened, until together they expect 200, must be."""
    days = [(60, 100, ALARM), (95, 100, ALARM)]  # opened on day 0; day 1 alone is inside
    history = _history(days)
    last = START + timedelta(days=1)
    assert not pooled_back_inside(history, last, "drop", 0.85, 1.15, START)
    history = _history([*days, (60, 100, ALARM)])  # the last two: 155 of 200, x0.78
    assert not pooled_back_inside(history, last + timedelta(days=1), "drop", 0.85, 1.15, START)
    history = _history([*days, (60, 100, ALARM), (110, 100, ALARM), (100, 100, ALARM)])
    assert pooled_back_inside(history, last + timedelta(days=3), "drop", 0.85, 1.15, START)
    # Opened on the last day: one day's 100 expected say nothing yet, whatever it counted.
    assert not pooled_back_inside(
        history, last + timedelta(days=3), "drop", 0.85, 1.15, last + timedelta(days=3)
    )
