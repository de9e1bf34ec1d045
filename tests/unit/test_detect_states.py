"""Count model against brute force, the closed/reopened states, holidays, persisted state."""

from __future__ import annotations

import json
import math
import random
from datetime import date, datetime, time, timedelta

import pytest
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
            state = json.loads(json.dumps(detector.state().to_dict()))  # a restart every hour
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
    assert len(json.dumps(detector.state().to_dict())) < 4000


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


#: A night-quiet day (per local hour); each direction carries ``POST_LEVEL`` a day.
POST_SHAPE = (3, 3, 2, 2, 3, 5, 8, 12, 14, 14, 14, 14, 14, 14, 14, 14, 12, 10, 8, 7, 6, 5, 4, 3)
POST_LEVEL = 240


def _run_post(silent, days: int = 47, paired: bool = True, restart_at: tuple[int, int] | None = None, **kw):
    return _post_run(silent, days, paired, restart_at, **kw)[0]


def _post_run(
    silent,
    days: int = 47,
    paired: bool = True,
    restart_at: tuple[int, int] | None = None,
    levels: tuple[int, int] = (POST_LEVEL, POST_LEVEL),
    seed: int = 5,
    stop_after: tuple[int, int] | None = None,
    scale=None,
):
    """Korday's two directions hour by hour as the worker runs them (entry, exit, then the
    post view); ``silent(offset, direction, hour)`` says an hour has no crossings at all.
    Returns (direction spoken for, transition) pairs and the detectors at the end."""
    rng = random.Random(seed)
    profiles: dict[str, dict] = {"entry": {}, "exit": {}}

    def make(states: dict | None = None) -> dict[str, CheckpointDetector]:
        made = {
            d: CheckpointDetector(KORDAY, d, profiles[d].get, state=(states or {}).get(d))
            for d in ("entry", "exit")
        }
        if paired:
            made["entry"].pair(made["exit"])
        return made

    detectors = make()
    transitions = []
    for offset in range(days):
        day = START + timedelta(days=offset)
        for hour in range(24):
            as_of = datetime.combine(day, time(hour), tzinfo=KORDAY.tz)
            for direction in ("entry", "exit"):
                transitions += [(t.direction or direction, t) for t in detectors[direction].evaluate(as_of)]
            transitions += [(t.direction or "entry", t) for t in detectors["entry"].evaluate_post(as_of)]
            if (offset, hour) == stop_after:
                return transitions, detectors
            if (offset, hour) == restart_at:
                saved = {d: x.state().to_dict() for d, x in detectors.items()}
                detectors = make(json.loads(json.dumps(saved)))
            for k, direction in enumerate(("entry", "exit")):
                if silent(offset, direction, hour):
                    continue
                mean = levels[k] * POST_SHAPE[hour] / sum(POST_SHAPE)
                if scale is not None:
                    mean *= scale(offset, direction, hour)
                n, p, limit = 0, rng.random(), math.exp(-mean)
                while p > limit:
                    n, p = n + 1, p * rng.random()
                if n:
                    profiles[direction][day] = count_event(
                        profiles[direction].get(day), hour, "KGZ", "labour", n
                    )
    return transitions, detectors


def _open_hours(transitions, direction: str | None = None) -> set[datetime]:
    """The evaluation instants at which some episode (of ``direction``, or any) was open."""
    spans, opened = [], {}
    for spoken, t in transitions:
        if direction is not None and spoken != direction:
            continue
        if t.opened:
            opened[t.episode.episode_id] = t.as_of
        elif t.status == "resolved" and t.episode.episode_id in opened:
            spans.append((opened.pop(t.episode.episode_id), t.as_of))
    spans += [(start, datetime.max.replace(tzinfo=KORDAY.tz)) for start in opened.values()]
    found = set()
    for start, end in spans:
        moment = start
        while moment < end and moment.year < 2100:
            found.add(moment)
            moment += timedelta(hours=1)
            if len(found) > 10**6:
                break
    return found


def test_a_post_that_stops_reporting_is_one_post_episode_within_two_hours():
    """Both directions silent from midnight for two days: each expects ~7 crossings by 02:00
    (silence alone: p ~ 10^-3 to 10^-4, not enough); together ~13 (p ~ 10^-5.5). Paired, the post
    view opens one post-level episode at 02:00 (neither direction opens its own), which
    survives a restart and resolves once traffic is back; unpaired, nothing by 02:00."""
    outage = START + timedelta(days=42)

    def silent(offset: int, direction: str, hour: int) -> bool:
        return offset in (42, 43)

    paired = _run_post(silent, restart_at=(42, 5))
    opened = [(d, t) for d, t in paired if t.opened and t.assessment.local_day >= outage]
    assert len(opened) == 1
    _, first = opened[0]
    assert first.assessment.post and first.assessment.cause == "no_data" and first.episode.kind == "drop"
    assert first.as_of == datetime.combine(outage, time(2), tzinfo=KORDAY.tz)
    assert first.assessment.observed == 0 and 10 < first.assessment.expected < 18
    resolved = [
        t for _, t in paired if t.status == "resolved" and t.episode.episode_id == first.episode.episode_id
    ]
    assert len(resolved) == 1 and resolved[0].assessment.local_day == outage + timedelta(days=2)
    assert [t.assessment.local_day for _, t in paired if not t.opened and t.status == "firing"] == [
        outage,
        outage + timedelta(days=1),
    ]  # one update per completed day

    unpaired = _run_post(silent, paired=False)
    early = [
        t
        for _, t in unpaired
        if t.opened and outage <= t.assessment.local_day and t.as_of.astimezone(KORDAY.tz).hour <= 2
    ]
    assert early == [] and any(t.opened for _, t in unpaired if t.assessment.local_day == outage)


def test_one_direction_quiet_at_night_is_not_a_post_that_stopped_reporting():
    """Entries silent for the first two hours of a day while exits carry on: no post episode,
    and nothing at all (each direction's own silence is not significant by then)."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        return offset == 42 and direction == "entry" and hour < 2

    transitions = _run_post(silent)
    assert not any(t.assessment.post for _, t in transitions)
    assert [
        t for _, t in transitions if t.opened and t.assessment.local_day == START + timedelta(days=42)
    ] == []


def test_a_direction_still_closed_when_the_rest_of_the_post_is_back_keeps_its_own_alert():
    """Both directions silent from day 42; exits come back on day 52, entries on day 60.
    The post's episode speaks for both while both are down and says "closed"; it waits for
    the end of the day exits came back, then hands entries their own closure, which stays
    open until entries reopen: at no hour of the outage is entry left without an open alert."""
    outage, exits_back, entries_back = 42, 52, 60

    def silent(offset: int, direction: str, hour: int) -> bool:
        return outage <= offset < (exits_back if direction == "exit" else entries_back)

    transitions = _run_post(silent, days=63)
    post = [t for d, t in transitions if d == "both"]
    assert post[0].opened and post[0].assessment.cause == "no_data"
    assert any(t.assessment.cause == "closed" for t in post)
    assert post[-1].status == "resolved"
    assert post[-1].as_of == datetime.combine(
        START + timedelta(days=exits_back + 1), time(0), tzinfo=KORDAY.tz
    )
    own = [t for d, t in transitions if d == "entry" and t.episode.kind == "drop"]
    assert own[0].opened and own[0].as_of == post[-1].as_of and own[0].assessment.cause == "closed"
    assert own[-1].status == "resolved" and own[-1].assessment.local_day == START + timedelta(
        days=entries_back
    )
    start = post[0].as_of
    end = own[-1].as_of
    covering = _open_hours(transitions, "both") | _open_hours(transitions, "entry")
    hour = start
    while hour < end:
        assert hour in covering, hour
        hour += timedelta(hours=1)


def test_directions_reopening_hours_apart_raise_no_closure_of_their_own():
    """Both closed; exits come back at 02:00 and entries at 05:00 of the same day: the post's
    episode ends once both are back, and neither direction gets a closure of its own."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        back = (50, 2) if direction == "exit" else (50, 5)
        return offset >= 42 and (offset, hour) < back

    transitions = _run_post(silent, days=52)
    assert not [t for d, t in transitions if d in ("entry", "exit") and t.opened and t.episode.kind == "drop"]
    post = [t for d, t in transitions if d == "both"]
    assert post[-1].status == "resolved"
    assert post[-1].as_of.astimezone(KORDAY.tz).date() == START + timedelta(days=50)


def test_an_outage_from_midday_is_one_alert_per_direction_not_three():
    """Both silent from noon of day 42 to the end of day 44: each direction opens its own
    drop that afternoon; the next days' silence of both adds no post-level episode."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        return (offset == 42 and hour >= 12) or offset in (43, 44)

    transitions = _run_post(silent, days=47)
    opened = [(d, t.episode.kind) for d, t in transitions if t.opened]
    assert sorted(opened) == [("entry", "drop"), ("exit", "drop")]


def test_a_one_way_post_is_judged_on_its_one_direction():
    """A post with entries only (its exit series is empty): the post view never engages,
    entries that stop raise their own drop, and it says "closed" after three days."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        return 42 <= offset < 50

    transitions = _run_post(silent, days=52, levels=(POST_LEVEL, 0))
    assert [d for d, _ in transitions] and {d for d, _ in transitions} == {"entry"}
    assert any(t.assessment.cause == "closed" for _, t in transitions)


@pytest.mark.parametrize(("levels", "seed"), [((10, 10), 8), ((11, 5), 10), ((12, 6), 10)])
def test_a_post_episode_opened_on_a_full_day_leaves_the_same_baselines_as_a_restart(levels, seed):
    """At a quiet post a silent day may only be significant once complete: the post episode
    opens at the next midnight, after both directions built that day's baselines with the
    silent day still ordinary, and marks it an alarm day. A worker restarted there builds
    them from its saved history: the live ones must be the same."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        return offset == 40

    _, detectors = _post_run(silent, days=42, levels=levels, seed=seed, stop_after=(41, 0))
    day = START + timedelta(days=41)
    for direction, detector in detectors.items():
        fresh = CheckpointDetector(
            KORDAY, direction, detector.lookup, state=json.loads(json.dumps(detector.state().to_dict()))
        )
        live, again = detector.baseline(day), fresh.baseline(day)
        assert (live is None) == (again is None)
        if live is not None and again is not None:
            assert (live.expected_day, live.dispersion) == (again.expected_day, again.dispersion)


def test_a_direction_falling_silent_after_the_other_reported_its_fall_raises_its_own():
    """Entries stop at noon of day 42 (their own drop opens that afternoon); exits stop too
    from day 43: no post episode opens (entries already said it), so exits must raise their
    own drop, not be held back for a post episode that never comes."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        if direction == "entry":
            return (offset == 42 and hour >= 12) or offset in (43, 44)
        return offset in (43, 44)

    transitions = _run_post(silent, days=47)
    opened = sorted((d, t.episode.kind) for d, t in transitions if t.opened)
    assert opened == [("entry", "drop"), ("exit", "drop")]


def test_a_busy_posts_trickle_is_a_drop_not_a_closure_that_reopens_at_once():
    """Entries of a busy post (1,000 a day) at 1.5% for eleven days: 15 a day is not "near
    zero" (a day with reopen_min crossings says the post is open), so no closure is declared
    and immediately reopened, day after day; the fall is a drop episode."""

    def trickle(offset: int, direction: str, hour: int) -> float:
        return 0.015 if direction == "entry" and 30 <= offset < 41 else 1.0

    transitions = _run_post(lambda *_: False, days=46, levels=(1000, 1000), scale=trickle)
    assert not [t for _, t in transitions if t.assessment.cause in ("closed", "reopened")]
    assert [(d, t.episode.kind) for d, t in transitions if t.opened][:1] == [("entry", "drop")]


def test_no_closure_is_handed_to_a_direction_too_quiet_to_reopen():
    """A post with exits of ~5 a day: after both were closed, the post's episode ends with
    entries; exits (below what a drop or a reopening can be judged on) get no closure alert
    of their own that could stay open for weeks."""

    def silent(offset: int, direction: str, hour: int) -> bool:
        return 30 <= offset < 36

    transitions = _run_post(silent, days=60, levels=(240, 5))
    assert [t for _, t in transitions if t.direction == "both"][-1].status == "resolved"
    assert not [t for d, t in transitions if d == "exit" and t.opened and t.episode.kind == "drop"]
