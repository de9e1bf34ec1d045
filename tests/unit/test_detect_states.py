"""Count model against brute force, the closed/reopened states, holidays, persisted state."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.counts import count_event
from streams.domain.detect import CheckpointDetector
from streams.domain.detect.calendar import holiday_names, same_holiday_last_year
from streams.domain.detect.countmodel import log_cdf, log_sf
from streams.domain.registry import load_registry

KORDAY = load_registry()["korday"]
START = date(2024, 1, 1)


def _pmf(k: int, mu: float, cv: float) -> float:
    r = 1.0 / (cv * cv)
    p = r / (r + mu)
    return math.exp(
        math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1) + r * math.log(p) + k * math.log1p(-p)
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.floats(0.5, 40.0), st.floats(0.05, 1.0))
def test_negative_binomial_tails_match_summed_probabilities(k, mu, cv):
    below = sum(_pmf(i, mu, cv) for i in range(k + 1))
    assert math.isclose(math.exp(log_cdf(k, mu, cv)), below, rel_tol=1e-6, abs_tol=1e-12)
    at_least = 1.0 - sum(_pmf(i, mu, cv) for i in range(k))
    assert math.isclose(math.exp(log_sf(k, mu, cv)), at_least, rel_tol=1e-5, abs_tol=1e-9)


def test_a_closure_is_one_drop_episode_and_the_reopening_one_surge():
    profiles: dict = {}
    detector = CheckpointDetector(KORDAY, "entry", profiles.get)
    transitions = []
    for offset in range(120):
        day = START + timedelta(days=offset)
        closed = 40 <= offset < 100
        for hour in range(24):
            state = json.loads(json.dumps(detector.state()))  # a restart every hour
            detector = CheckpointDetector(KORDAY, "entry", profiles.get, state=state)
            transitions += detector.evaluate(datetime.combine(day, time(hour), tzinfo=KORDAY.tz))
            if not closed:  # the hour's crossings arrive after the hour's evaluation
                profiles[day] = count_event(profiles.get(day), hour, "KGZ", "labour", 100)
    opened = [t for t in transitions if t.opened]
    assert [(t.episode.kind, t.assessment.cause) for t in opened] == [
        ("drop", "no_data"),
        ("surge", "reopened"),
    ]
    assert opened[0].assessment.local_day == START + timedelta(days=40)
    assert opened[1].assessment.local_day == START + timedelta(days=100)
    # No daily alarm during the closure: one "closed" update, then silence.
    during = [
        t
        for t in transitions
        if START + timedelta(days=43) < t.assessment.local_day < opened[1].assessment.local_day
    ]
    assert during == []
    assert len(json.dumps(detector.state())) < 4000


def test_an_old_state_without_history_loads():
    old = {
        "episode": {
            "episode_id": "x",
            "kind": "drop",
            "opened_by": "running_day",
            "opened_as_of": "2024-01-01T00:00:00+00:00",
            "peak_observed": 0,
            "peak_expected": 10.0,
            "peak_day": None,
        },
        "last_day": "2024-01-01",
        "last_hour": 3,
    }
    detector = CheckpointDetector(KORDAY, "entry", {}.get, state=old)
    assert detector.episode is not None and detector.episode.cause == "level"
    assert detector.evaluate(datetime(2024, 1, 1, 5, tzinfo=KORDAY.tz)) == []


def test_holidays_of_both_countries_and_moving_ones_matched_by_name():
    assert holiday_names(("KAZ", "KGZ"), date(2024, 3, 21))
    eid = [
        d
        for d in (date(2024, 4, 1) + timedelta(days=i) for i in range(30))
        if any("Eid" in n or "Oraza" in n for n in holiday_names(("UZB",), d))
    ]
    assert eid
    name = next(n for n in holiday_names(("UZB",), eid[0]) if "Eid" in n)
    last = same_holiday_last_year(("UZB",), name, eid[0])
    assert last is not None and last.year == 2023 and abs((eid[0].replace(year=2023) - last).days) > 5
