"""Baseline and spike/drop detection on simulated days, without Kafka or Faust."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.counts import DayProfile, count_event
from streams.domain.detect.baseline import Baseline, build_baseline
from streams.domain.detect.detector import (
    CheckpointDetector,
    DetectorConfig,
    assess_running_day,
    departure_score,
    running_day_band,
    verdict_bounds,
)
from streams.domain.registry import load_registry

JJ = load_registry()["zhibek-zholy"]
START = date(2024, 2, 5)  # a Monday
# Day-time heavy shape: nobody crosses 0-5h, most between 8 and 20h.
SHAPE = [0, 0, 0, 0, 0, 1, 2, 4, 8, 9, 9, 8, 8, 8, 8, 8, 7, 6, 5, 4, 2, 1, 1, 0]
WEEKDAY_FACTOR = [1.1, 1.0, 1.0, 1.0, 1.15, 0.9, 0.75]


class World:
    """Profiles for one checkpoint-direction, and a detector reading them."""

    def __init__(self, seed: int = 1) -> None:
        self.profiles: dict[date, DayProfile] = {}
        self.rng = random.Random(seed)
        self.detector = CheckpointDetector(JJ, "entry", self.profiles.get)
        self.alerts: list = []

    def normal_level(self, day: date) -> float:
        return 1500 * WEEKDAY_FACTOR[day.weekday()]

    def run_day(self, day: date, groups: dict[tuple[str, str], float], checks_per_hour: int = 4) -> None:
        """Add the day's crossings hour by hour, evaluating as the stream clock advances."""
        total_weight = sum(SHAPE)
        for hour in range(24):
            for step in range(checks_per_hour):
                for (nationality, purpose), daily in groups.items():
                    mean = daily * SHAPE[hour] / total_weight / checks_per_hour
                    for _ in range(_poisson(self.rng, mean)):
                        self.profiles[day] = count_event(self.profiles.get(day), hour, nationality, purpose)
                minute = (step + 1) * 60 // checks_per_hour - 1
                as_of = datetime.combine(day, time(hour, minute, 30), tzinfo=JJ.tz)
                self.alerts += self.detector.evaluate(as_of)

    def run_normal_days(self, first: int, last: int, checks_per_hour: int = 4) -> None:
        """Normal traffic on days START+first .. START+last-1."""
        for offset in range(first, last):
            day = START + timedelta(days=offset)
            self.run_day(day, self.normal_groups(day), checks_per_hour)

    def normal_groups(self, day: date) -> dict[tuple[str, str], float]:
        level = self.normal_level(day)
        return {
            ("UZB", "labour"): level * 0.85,
            ("KAZ", "private"): level * 0.1,
            ("TJK", "labour"): level * 0.05,
        }


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth for small means, normal approximation above; plenty for tests.
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def test_no_alerts_while_learning_and_none_on_normal_weeks():
    world = World()
    world.run_normal_days(0, 42)
    assert world.alerts == []
    assert build_baseline(START + timedelta(days=42), world.profiles.get) is not None


def test_surge_raises_one_episode_with_drivers_and_daily_updates():
    world = World(seed=2)
    world.run_normal_days(0, 28)
    assert world.alerts == []
    surge_days = [START + timedelta(days=28 + i) for i in range(5)]
    for i, day in enumerate(surge_days):
        groups = world.normal_groups(day)
        groups[("UZB", "labour")] = [2200, 3200, 4000, 4000, 4000][i]
        world.run_day(day, groups)

    opened = [t for t in world.alerts if t.opened]
    assert len(opened) == 1, [t.assessment for t in opened]
    first = opened[0]
    assert first.episode.kind == "surge"
    assert first.assessment.local_day == surge_days[0]
    assert first.assessment.drivers[0].nationality == "UZB"
    assert first.assessment.drivers[0].purpose == "labour"
    # Raised during the first surge day, not at its end.
    assert first.as_of < datetime.combine(surge_days[0], time(18), tzinfo=JJ.tz)

    updates = [t for t in world.alerts if t.assessment.window == "full_day"]
    assert [u.assessment.local_day for u in updates] == surge_days[:4]  # 5th day still open
    plateau = updates[-1].assessment
    assert plateau.observed == world.profiles[surge_days[3]]["total"]
    assert 4000 < plateau.observed < 4600
    assert plateau.expected == pytest.approx(world.normal_level(surge_days[3]), rel=0.12)
    assert all(t.status == "firing" for t in world.alerts)
    assert all(t.episode.episode_id == first.episode.episode_id for t in world.alerts)

    # Back to normal: the episode resolves once, and nothing new opens.
    world.run_normal_days(33, 36)
    resolved = [t for t in world.alerts if t.status == "resolved"]
    assert len(resolved) == 1
    assert len([t for t in world.alerts if t.opened]) == 1
    assert resolved[0].episode.peak_observed > 4000


def test_closure_is_a_drop_seen_from_the_stream_clock_alone():
    world = World(seed=3)
    world.run_normal_days(0, 28)
    closed = START + timedelta(days=28)
    world.run_day(closed, {})  # no crossings at all: only the clock moves
    opened = [t for t in world.alerts if t.opened]
    assert len(opened) == 1
    assert opened[0].episode.kind == "drop"
    assert opened[0].assessment.observed == 0
    assert opened[0].as_of < datetime.combine(closed, time(12), tzinfo=JJ.tz)


def test_weekday_matters_a_normal_sunday_is_not_a_drop():
    world = World(seed=4)
    world.run_normal_days(0, 35)
    sunday = START + timedelta(days=34)
    assert sunday.weekday() == 6
    baseline = build_baseline(sunday, world.profiles.get)
    assert baseline is not None
    assert baseline.expected_day == pytest.approx(1500 * 0.75, rel=0.1)
    assert world.alerts == []


def test_restart_restores_an_open_episode_without_raising_it_again():
    world = World(seed=5)
    world.run_normal_days(0, 28)
    surge = START + timedelta(days=28)
    groups = world.normal_groups(surge)
    groups[("UZB", "labour")] = 4000
    world.run_day(surge, groups)
    assert len([t for t in world.alerts if t.opened]) == 1

    restarted = CheckpointDetector(JJ, "entry", world.profiles.get, state=world.detector.state())
    world.detector = restarted
    next_day = surge + timedelta(days=1)
    world.run_day(next_day, groups)
    assert len([t for t in world.alerts if t.opened]) == 1


@given(
    st.floats(min_value=1, max_value=1e5),
    st.floats(min_value=1, max_value=1e5),
    st.floats(min_value=0.05, max_value=0.6),
)
def test_score_sign_and_monotonicity(observed, expected, dispersion):
    score = departure_score(observed, expected, dispersion)
    assert (score > 0) == (observed > expected) or observed == expected
    assert departure_score(observed + 10, expected, dispersion) > score


def test_expected_through_accumulates_to_the_whole_day():
    world = World(seed=6)
    world.run_normal_days(0, 14, checks_per_hour=1)
    baseline = build_baseline(START + timedelta(days=14), world.profiles.get)
    assert baseline is not None
    points = [baseline.expected_through(h, f) for h in range(24) for f in (0.0, 0.5)]
    assert points == sorted(points)
    assert baseline.expected_through(23, 1.0) == pytest.approx(baseline.expected_day)


@given(
    expected=st.integers(0, 6_000),
    below=st.integers(1, 6_001),
    above=st.integers(1, 6_000),
)
def test_verdict_bounds_equal_a_brute_force_search(expected, below, above):
    """The bisection both bands use finds what scanning every total finds: the highest
    drop (0 if none) and the lowest surge, for any boundaries around the expected total
    (which is neither a drop nor a surge, as it is for the detector)."""
    drop_at, surge_at = expected - below, expected + above  # drop_at < 0: no total is a drop

    def kind(total: int):
        return "drop" if total <= drop_at else "surge" if total >= surge_at else None

    totals = range(surge_at + 1)
    drops = [t for t in totals if kind(t) == "drop"]
    oracle = (max(drops) if drops else 0, min(t for t in totals if kind(t) == "surge"))
    assert verdict_bounds(kind, expected) == oracle


@given(
    expected_day=st.floats(min_value=50, max_value=50_000),
    dispersion=st.floats(min_value=0.08, max_value=0.6),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    share=st.floats(min_value=0.0, max_value=3.0),
)
def test_band_bounds_are_where_the_running_day_verdict_changes(expected_day, dispersion, hour, minute, share):
    """Outside [lower, upper] the running-day view says drop or surge, inside it says
    nothing: the band a dashboard draws is the detector's own decision boundary."""
    config = DetectorConfig()
    baseline = Baseline(date(2024, 3, 4), expected_day, tuple([1 / 24] * 24), {}, dispersion, 28)
    local = datetime(2024, 3, 4, hour, minute, tzinfo=JJ.tz)
    expected = baseline.expected_through(hour, minute / 60)
    observed = round(expected * share)
    profile = {"total": observed, "hourly": [0] * 24, "groups": {}}
    band = running_day_band(profile, baseline, local, config)
    verdict = assess_running_day(profile, baseline, local, config)
    if band is None:  # nothing expected yet today
        assert expected <= 0
        return
    assert (band.observed, band.as_of) == (observed, local.timestamp())
    assert band.expected == pytest.approx(expected)
    assert 0 <= band.lower <= band.expected <= band.upper
    if verdict is None:  # fewer than min_expected expected: the detector holds its verdict
        assert expected < config.min_expected
        return
    if observed == 0 and band.lower == 0 and verdict.kind is None:
        return  # a low end of 0: no total is low enough to be a drop
    assert verdict.kind == ("surge" if observed >= band.upper else "drop" if observed <= band.lower else None)


def test_band_follows_the_evaluations_and_survives_a_restart():
    world = World(seed=7)
    world.run_normal_days(0, 7)
    assert world.detector.band is None  # still warming up: no baseline, no band
    world.run_normal_days(7, 28)
    band = world.detector.band
    last = START + timedelta(days=27)
    assert band.as_of == datetime.combine(last, time(23, 59, 30), tzinfo=JJ.tz).timestamp()
    assert band.observed == world.profiles[last]["total"]
    assert band.lower < band.observed < band.upper  # a normal day ends inside its band
    surge = START + timedelta(days=28)
    groups = world.normal_groups(surge)
    groups[("UZB", "labour")] = 4000
    world.run_day(surge, groups)
    opened = next(t for t in world.alerts if t.opened)
    assert world.detector.band.observed > world.detector.band.upper
    assert opened.assessment.observed >= opened.assessment.expected * DetectorConfig().surge_ratio
    restarted = CheckpointDetector(JJ, "entry", world.profiles.get, state=world.detector.state())
    assert restarted.band == world.detector.band
