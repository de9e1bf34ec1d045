"""Detector v2's counting against brute-force oracles: the group-vs-rest binomial tail, the
learned share-of-day spread, the holiday and season factors, the shape cache, and the
behaviour they exist for (a ramp that alarmed last year is expected this year; a
crackdown on one nationality is seen against the others of the same day)."""

from __future__ import annotations

import math
import random
import statistics
from datetime import date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.counts import HOURS, DayProfile, count_event
from streams.domain.detect import CheckpointDetector
from streams.domain.detect.baseline import (
    Baseline,
    BaselineConfig,
    _Day,
    day_shape,
    holiday_effect,
    season_factor,
    share_spread,
)
from streams.domain.detect.countmodel import share_tail_score
from streams.domain.detect.history import ALARM, CLOSED, NORMAL, DayHistory
from streams.domain.registry import load_registry

JJ = load_registry()["zhibek-zholy"]
KAZYGURT = load_registry()["kazygurt"]


def _binomial_tail(k: int, n: int, p: float, upper: bool) -> float:
    """P(X >= k) (upper) or P(X <= k), X ~ Binomial(n, p), by summing the probabilities."""
    terms = range(k, n + 1) if upper else range(0, k + 1)
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in terms)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 120), st.floats(0.05, 0.95), st.data())
def test_group_tail_is_the_binomial_tail_without_extra_spread(total, share, data):
    own = data.draw(st.integers(0, total))
    score = share_tail_score(own, total, share, 0.0)
    mean = total * share
    if own > mean:
        expected = -math.log10(_binomial_tail(own, total, share, upper=True))
        assert math.isclose(score, min(expected, 99.0), rel_tol=1e-6, abs_tol=1e-6)
    elif own < mean:
        expected = -math.log10(_binomial_tail(own, total, share, upper=False))
        assert math.isclose(score, -min(expected, 99.0), rel_tol=1e-6, abs_tol=1e-6)
    else:
        assert score == 0.0


@settings(max_examples=200, deadline=None)
@given(st.integers(20, 2000), st.floats(0.1, 0.9), st.floats(0.01, 0.5), st.data())
def test_group_tail_extra_spread_only_makes_it_less_surprising(total, share, extra, data):
    own = data.draw(st.integers(0, total))
    plain = share_tail_score(own, total, share, 0.0)
    wider = share_tail_score(own, total, share, extra)
    assert abs(wider) <= abs(plain) + 1e-9
    assert wider == 0.0 or math.copysign(1.0, wider) == math.copysign(1.0, plain)


def _profile(hourly: list[int], groups: dict[str, int] | None = None) -> DayProfile:
    total = sum(hourly)
    return {"total": total, "hourly": list(hourly), "groups": groups or {"UZB|labour": total}}


def _oracle_share_spread(days: list[_Day], config: BaselineConfig, averaged: int) -> list[float] | None:
    """share_spread written the slow, obvious way."""
    rows = [d for d in days if d.profile is not None and d.total > 0]
    by_weekday: dict[int, list[_Day]] = {}
    for d in rows:
        by_weekday.setdefault(d.day.weekday(), []).append(d)
    compared = [d for group in by_weekday.values() if len(group) >= 2 for d in group]
    if len(compared) < config.min_shape_days:
        return None

    def done(d: _Day, k: int) -> float:
        assert d.profile is not None
        return sum(d.profile["hourly"][: k + 1]) / d.total

    out = [0.0] * (HOURS + 1)
    for k in range(HOURS - 1):
        deviations = []
        for group in by_weekday.values():
            n = len(group)
            if n < 2:
                continue
            for d in group:
                reference = statistics.mean(done(o, k) for o in group if o is not d)
                if reference > 0:
                    deviations.append(abs(done(d, k) / reference - 1) * math.sqrt((n - 1) / n))
        if len(deviations) < config.min_shape_days:
            out[k + 1] = config.unknown_share_dispersion
            continue
        share = statistics.mean(done(d, k) for d in compared)
        typical = statistics.median(d.total for d in compared)
        poisson = (1 - share) / (share * typical) if share > 0 else 0.0
        excess = ((1.4826 * statistics.median(deviations)) ** 2 - poisson) * (1 + 1 / averaged)
        out[k + 1] = min(max(math.sqrt(max(excess, 0.0)), config.min_share_dispersion), 1.0)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(0, 60), min_size=HOURS, max_size=HOURS).filter(lambda h: sum(h) > 0),
        min_size=0,
        max_size=21,
    ),
    st.integers(1, 4),
)
def test_share_spread_matches_the_obvious_computation(days_hourly, averaged):
    config = BaselineConfig()
    start = date(2024, 5, 6)
    days = [
        _Day(start - timedelta(days=i + 1), sum(h), _profile(h), NORMAL) for i, h in enumerate(days_hourly)
    ]
    cache: dict = {}
    got = share_spread(days, config, averaged, cache)
    again = share_spread(days, config, averaged, cache)  # from the cache: the same
    assert got == again
    oracle = _oracle_share_spread(days, config, averaged)
    if oracle is None:
        assert got == ()
    else:
        assert len(got) == HOURS + 1 and got[0] == 0.0 and got[HOURS] == 0.0
        for a, b in zip(got, oracle, strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=HOURS, max_size=HOURS).filter(lambda h: sum(h) > 0))
def test_day_shape_is_the_cumulative_share(hourly):
    d = _Day(
        date(2024, 1, 3), sum(hourly), _profile(hourly, {"UZB|labour": 3, "UZB|private": 2, "KAZ|x": 1}), "."
    )
    shape = day_shape(d, None)
    assert shape is not None
    for k in range(HOURS - 1):
        assert math.isclose(shape.done_by_hour[k], sum(hourly[: k + 1]) / sum(hourly))
    assert shape.nationalities == {"UZB": 5, "KAZ": 1}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0).map(lambda x: round(x, 3)), min_size=HOURS, max_size=HOURS).filter(
        lambda s: sum(s) > 0
    ),
    st.floats(1.0, 5000.0),
    st.integers(0, 23),
    st.floats(0.0, 0.99),
)
def test_expected_through_is_the_sum_of_the_shares_so_far(raw, expected_day, hour, fraction):
    shares = tuple(x / sum(raw) for x in raw)
    baseline = Baseline(date(2024, 3, 4), expected_day, shares, {}, 0.1, 28)
    brute = expected_day * (sum(shares[:hour]) + shares[hour] * fraction)
    assert math.isclose(baseline.expected_through(hour, fraction), brute, rel_tol=1e-9, abs_tol=1e-9)


def _history(values: dict[date, tuple[int, str]]) -> DayHistory:
    history = DayHistory()
    for day in sorted(values):
        history.record(day, *values[day])
    return history


@settings(max_examples=80, deadline=None)
@given(st.floats(0.3, 3.0), st.floats(0.5, 2.0), st.sampled_from([NORMAL, ALARM]))
def test_season_factor_is_last_years_move_alarm_days_included(ramp, level, flag):
    """Last year: ``level`` until 1 September, ``level * ramp`` from then on (flagged as
    alarms or not: what happened is what happened). This year on 15 September, judged
    from four Mondays of August, the factor is ``ramp``."""
    base = 1000 * level
    values = {}
    for offset in range(-60, 40):
        day = date(2023, 9, 1) + timedelta(days=offset)
        values[day] = (round(base * (ramp if offset >= 0 else 1.0)), flag if offset >= 0 else NORMAL)
    history = _history(values)
    day = date(2024, 9, 16)  # a Monday, 364 days after 2023-09-18
    reference = [day - timedelta(days=7 * k) for k in range(3, 7)]  # Mondays 19 Aug .. 26 Aug
    factor = season_factor(history, day, reference, ())
    assert factor is not None
    assert math.isclose(factor, round(base * ramp) / round(base), rel_tol=1e-9)


def test_season_factor_skips_closed_days_and_needs_a_year():
    values = {date(2023, 9, 1) + timedelta(days=k): (100, CLOSED) for k in range(-40, 40)}
    assert season_factor(_history(values), date(2024, 9, 16), [date(2024, 8, 26)], ()) is None


@settings(max_examples=80, deadline=None)
@given(st.floats(0.3, 3.0), st.lists(st.integers(500, 1500), min_size=6, max_size=6))
def test_holiday_effect_against_the_weeks_around_it(effect, around):
    holiday = date(2023, 3, 21)
    values = {holiday: (round(1000 * effect), ALARM)}
    for weeks, total in zip((-3, -2, -1, 1, 2, 3), around, strict=True):
        values[holiday + timedelta(days=7 * weeks)] = (total, NORMAL)
    got = holiday_effect(_history(values), holiday, ())
    assert got is not None
    assert math.isclose(got[0], round(1000 * effect) / statistics.median(around))
    assert got[1] == round(1000 * effect)


# -- behaviour -------------------------------------------------------------------------

SHAPE = [1, 1, 1, 1, 2, 3, 6, 9, 11, 11, 10, 9, 8, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2, 2]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _run(
    checkpoint, days: int, level, mix, start: date = date(2023, 1, 2), seed: int = 3
) -> tuple[CheckpointDetector, list]:
    """``level(day)`` crossings a day, split by ``mix(day)`` (nationality -> share), evaluated
    at every hour; returns the detector and the transitions."""
    rng = random.Random(seed)
    profiles: dict[date, DayProfile] = {}
    detector = CheckpointDetector(checkpoint, "entry", profiles.get)
    transitions = []
    weight = sum(SHAPE)
    for offset in range(days):
        day = start + timedelta(days=offset)
        noise = rng.gammavariate(150, 1 / 150)
        for hour in range(24):
            transitions += detector.evaluate(datetime.combine(day, time(hour), tzinfo=checkpoint.tz))
            for nationality, share in mix(day).items():
                n = _poisson(rng, level(day) * noise * share * SHAPE[hour] / weight)
                if n:
                    profiles[day] = count_event(profiles.get(day), hour, nationality, "labour", n)
    return detector, transitions


def test_a_ramp_that_alarmed_last_year_is_expected_this_year():
    """Labour traffic ramps x2 through September every year. The first year has no memory
    and alarms; the second year expects it (last year's days count though they alarmed)."""

    def level(day: date) -> float:
        peak = date(day.year, 10, 1)
        return 1500 * (1 + max(0.0, 1 - abs((day - peak).days) / 30))

    _, transitions = _run(KAZYGURT, 365 + 330, level, lambda d: {"UZB": 0.7, "KAZ": 0.3})
    opened = [t for t in transitions if t.opened]
    first = [
        t for t in opened if t.assessment.local_day.year == 2023 and t.assessment.local_day.month in (9, 10)
    ]
    second = [
        t for t in opened if t.assessment.local_day.year == 2024 and t.assessment.local_day.month in (9, 10)
    ]
    assert first, "without a year of memory the ramp is a surprise"
    assert second == []


def test_a_crackdown_on_one_nationality_is_a_group_drop_within_hours():
    """TJK (40% of the post) falls to 40% of its level from day 40: a group drop against the
    other nationalities the same day, before noon, and no post-level alarm before it."""
    crackdown = date(2023, 1, 2) + timedelta(days=40)

    def mix(day: date) -> dict[str, float]:
        return {"UZB": 0.6, "TJK": 0.4 * (0.4 if day >= crackdown else 1.0)}

    _, transitions = _run(KAZYGURT, 45, lambda d: 3000, mix)
    opened = [t for t in transitions if t.opened]
    assert opened, "the crackdown is seen"
    first = opened[0]
    assert (first.episode.kind, first.assessment.cause, first.assessment.scope) == ("drop", "group", "TJK")
    assert first.assessment.local_day == crackdown
    assert first.as_of.astimezone(KAZYGURT.tz).hour < 12
