"""Level shifts and trends (issue 17, item 2): a change that persists is a new normal, one
episode and then the baseline re-anchors (``changepoint.py``); a trend is part of the
expectation. Judged on daily files through the backtest (the worker's detector), and
hourly the way the worker runs it, restarted from its saved state."""

from __future__ import annotations

import json
import math
import random
from datetime import date, datetime, timedelta

import pytest
from hourly_detector import hourly_transitions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.backtest import Columns, backtest, build_series
from streams.domain.detect import CheckpointDetector
from streams.domain.detect.baseline import BaselineConfig, build_baseline
from streams.domain.detect.changepoint import LevelShifts, ShiftConfig
from streams.domain.detect.history import NORMAL, DayHistory
from streams.domain.registry import load_registry

START = date(2023, 1, 2)
#: Days from the step within which its episode must have ended (a shift is declared after
#: two weeks out; on main the episode stays open for seven).
RE_ANCHORED_WITHIN = 21


def _episodes(counts: list[int]):
    rows = [
        {
            "date": (START + timedelta(days=k)).isoformat(),
            "checkpoint": "post",
            "direction": "entry",
            "count": n,
        }
        for k, n in enumerate(counts)
    ]
    data = build_series(rows, "date", Columns(group=None), {}, tz="UTC")
    return backtest(data)


def _series(seed: int, level: float, noise: float, days: int, factor) -> list[int]:
    """A weekly profile (each weekday x0.5 .. x1.5), day-level noise of coefficient of
    variation ``noise`` and Poisson noise on top; ``factor(k)`` multiplies day k's mean."""
    rng = random.Random(seed)
    week = [rng.uniform(0.5, 1.5) for _ in range(7)]
    counts = []
    for k in range(days):
        mean = level * week[k % 7] * factor(k) * max(rng.gauss(1.0, noise), 0.1)
        counts.append(_poisson(rng, mean))
    return counts


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: by its normal approximation from a mean of 50 (the series of hundreds
    and more this test was written for draw as they did), exactly below it (a few a day,
    zeros included)."""
    if mean >= 50:
        return max(round(rng.gauss(mean, math.sqrt(mean))), 0)
    # Knuth: count uniform draws until their product falls below e^-mean.
    limit, product, k = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        k += 1
    return k


def _day(k: int) -> str:
    return (START + timedelta(days=k)).isoformat()


# Below which level can a step not be told, and from which must it be one episode?
#
# A step is judged against an expectation that is itself a median of recent days (of the
# same weekday two to four weeks back: about 3 weeks of days, a median's efficiency 0.64,
# so ~EXPECTATION_DAYS days' worth of counts), and a week of the step (7 days at a mean
# level L, weekdays x0.5-1.5 averaging 1) is Poisson: in log terms a week at the step's
# level f*L strays by sqrt(1/(7 f L)) and the expectation by sqrt(1/(EXPECTATION_DAYS L)).
#
# - No detector can tell a step from chance where a week of it is fewer than some 4
#   standard deviations (a one-sided 10^-4.5, the score a day needs) from the old level:
#   x0.6 over a week at L a day is 2.8 L fewer than 7 L expected, sqrt(7 L) Poisson, so
#   2.8 L / sqrt(7 L) >= 4 needs L >= ~15 a day (TELLABLE_LEVEL; x1.5: ~10).
# - A detector that calls a change only from x1.4 (or x0.65: ``DetectorConfig``) must also
#   tell the step from its threshold, not only from 1: x1.5 is ln(1.5/1.4) = 0.069 from it,
#   x0.6 ln(0.65/0.6) = 0.080. With N_SD = 3 standard deviations of the week-and-
#   expectation noise above between the step and the threshold, a step's week lies beyond
#   the threshold but about once in 700: from STEP_MIN_LEVEL (~440 a day, set by x0.6) a
#   step must be exactly one episode. Below it a step may be missed (its week can read as
#   x1.35 or x0.68 against a median that came out high or low) or found; a random series
#   at 150 a day was found 40 of 40 times, at 100 a day 35 of 40.
#
# At every level, down to a few crossings a day with zeros among them, a step is never
# more than one episode, and one it opens is of its kind and opens after it.
EXPECTATION_DAYS = 13.0
N_SD = 3.0


#: The series' day-level noise (coefficient of variation) averages over a week and over
#: the expectation's days, but no volume takes it away: with it the week strays by
#: noise * sqrt(1/7 + 1/EXPECTATION_DAYS) more (in quadrature), and from a noise of ~0.049
#: (x1.5) a step sits fewer than N_SD of those from the threshold at any level. The
#: exactly-one property draws its noise up to MAX_NOISE and its level from the bound that
#: noise gives (``_level_for``): seed 12 of CI's hypothesis seeds found a x1.5 step at 443 a
#: day with a noise of 0.047 (the bound there: ~4,000) with no episode.
MAX_NOISE = 0.04


def _week_sd(level: float, factor: float, noise: float = 0.0) -> float:
    """Standard deviation (log terms) of a week of the step against its expectation."""
    days = 1.0 / 7 + 1.0 / EXPECTATION_DAYS
    return math.sqrt(1.0 / (7 * factor * level) + 1.0 / (EXPECTATION_DAYS * level) + noise**2 * days)


def _level_for(margin: float, factor: float, n_sd: float, noise: float = 0.0) -> float:
    """The daily level at which a week of a step by ``factor`` is ``n_sd`` standard
    deviations (``_week_sd``) from ``margin`` (log terms) away; infinite where the day
    noise alone is more than that."""
    room = (margin / n_sd) ** 2 - noise**2 * (1.0 / 7 + 1.0 / EXPECTATION_DAYS)
    if room <= 0:
        return math.inf
    return (1.0 / (7 * factor) + 1.0 / EXPECTATION_DAYS) / room


def _step_min_level(step: float, noise: float) -> float:
    """From this level a step by ``step`` (x1.5 or x0.6) with day noise ``noise`` must be
    exactly one episode."""
    margin = math.log(1.5 / 1.4) if step > 1 else math.log(0.65 / 0.6)
    return _level_for(margin, step, N_SD, noise)


TELLABLE_LEVEL = (4.0 / (0.4 * math.sqrt(7))) ** 2  # x0.6: 2.8 L / sqrt(7 L) = 4
STEP_MIN_LEVEL = max(
    _level_for(math.log(1.5 / 1.4), 1.5, N_SD),
    _level_for(math.log(0.65 / 0.6), 0.6, N_SD),
)


def test_the_bounds_are_the_derivations():
    """The figures the comment above quotes are what its formulas give."""
    assert 14 <= TELLABLE_LEVEL <= 16
    assert 430 <= STEP_MIN_LEVEL <= 450
    assert math.isclose(math.log(0.65 / 0.6), N_SD * _week_sd(STEP_MIN_LEVEL, 0.6))
    assert max(_step_min_level(1.5, 0.0), _step_min_level(0.6, 0.0)) == STEP_MIN_LEVEL
    for step in (1.5, 0.6):
        bound = _step_min_level(step, MAX_NOISE)
        assert 800 <= bound <= 1_000
        margin = math.log(1.5 / 1.4) if step > 1 else math.log(0.65 / 0.6)
        assert math.isclose(margin, N_SD * _week_sd(bound, step, MAX_NOISE))
    assert _step_min_level(1.5, 0.05) == math.inf


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    height=st.floats(0.0, 1.0),
    noise=st.floats(0.0, MAX_NOISE),
    step=st.sampled_from([1.5, 0.6]),
    at=st.integers(120, 220),
)
def test_a_permanent_step_is_one_episode_then_the_new_normal(seed, height, noise, step, at):
    """From the level its noise allows (``_step_min_level``; ``height`` places the level
    between that bound and 30,000 a day) a step is exactly one episode."""
    bound = _step_min_level(step, noise)
    _one_episode_then_the_new_normal(seed, bound + height * (30_000.0 - bound), noise, step, at)


def _one_episode_then_the_new_normal(seed: int, level: float, noise: float, step: float, at: int) -> None:
    counts = _series(seed, level, noise, 300, lambda k: step if k >= at else 1.0)
    episodes = _episodes(counts)
    kind = "surge" if step > 1 else "drop"
    assert [e.kind for e in episodes] == [kind], [(e.kind, e.start, e.end, e.ratio) for e in episodes]
    (episode,) = episodes
    assert _day(at) <= episode.start <= _day(at + 7)
    # Re-anchored: it ends within three weeks, and nothing opens after (checked above).
    assert episode.end is not None and episode.end <= _day(at + RE_ANCHORED_WITHIN), episode


@pytest.mark.parametrize(
    ("seed", "level", "noise", "step", "at"),
    [(243, 300.0, 0.0, 1.5, 136), (113160, 300.0, 0.02, 0.6, 175)],
)
def test_a_low_volume_step_is_one_episode(seed, level, noise, step, at):
    """Steps no single day proves (at 300 a day, each day of these scores 3-4.4 against the
    4.5 a day needs; on ``main`` they opened nothing): several days together open the
    episode (``onset.py``)."""
    _one_episode_then_the_new_normal(seed, level, noise, step, at)


#: Levels from where a step can be told (TELLABLE_LEVEL, ~15 a day) to 30,000, evenly in
#: log terms. Below it a quiet series can still raise a surge of chance before any step:
#: ``test_a_chance_surge_at_a_few_crossings_a_day`` keeps one, found by hypothesis.
any_level = st.floats(math.log10(TELLABLE_LEVEL), 4.5).map(lambda x: 10.0**x)


@pytest.mark.xfail(strict=True, reason="a surge of chance at ~4.5 crossings a day, before any step")
def test_a_chance_surge_at_a_few_crossings_a_day():
    """At 4.5 a day (seed 47, no day noise) a surge opens on day 53 and is held for weeks,
    long before the step at day 120; main's detector (before several days together) raises
    it too. Strict: this passes (XPASS, a failure) the day the detector stops raising it."""
    counts = _series(47, 10.0**0.65625, 0.0, 300, lambda k: 0.6 if k >= 120 else 1.0)
    episodes = _episodes(counts)
    assert all(e.start >= _day(120) for e in episodes), [(e.kind, e.start, e.end) for e in episodes]


@pytest.mark.parametrize(
    ("seed", "level", "noise", "step", "at"),
    [
        (39, 100.0, 0.046875, 0.6, 164),  # found by hypothesis (session 23)
        (156688, 22.35941694748785, 0.019560398397660918, 1.5, 202),  # a 300-draw sweep of the space
    ],
)
def test_a_step_at_tens_a_day_is_not_ended_by_one_noisy_day(seed, level, noise, step, at):
    """At 100 a day a x0.6 step opened a drop on its second day (45 against 110), a day at
    x0.88 ended it, and days together opened a second drop four days later: the episode
    was held to days together only once the level-shift CUSUM had passed its threshold.
    Now it is held while the CUSUM's side is out at all on a day too small for one day
    to show a return (``_held_by_days``)."""
    episodes = _episodes(_series(seed, level, noise, 300, lambda k: step if k >= at else 1.0))
    assert len(episodes) == 1, [(e.kind, e.start, e.end) for e in episodes]
    assert episodes[0].kind == ("surge" if step > 1 else "drop") and episodes[0].start >= _day(at)


def test_the_days_a_shift_re_anchored_are_not_pooled_against_the_old_level():
    """At 70 a day a x0.6 step re-anchored on its 14th day (factor 0.555) and its episode
    ended; the next day three days together (two of them judged, the day before, against
    the old level) opened a second drop at x0.57 of that old level. No run of days together
    reaches back over the day a shift was declared (``LevelShifts.declared``). Found by a
    2,000-draw sweep of the at-any-level property (session 24)."""
    episodes = _episodes(
        _series(44935, 70.63789743280518, 0.008769154641963534, 300, lambda k: 0.6 if k >= 154 else 1.0)
    )
    assert [(e.kind, e.start >= _day(154)) for e in episodes] == [("drop", True)], [
        (e.kind, e.start, e.end, e.summary) for e in episodes
    ]


def test_the_day_a_shift_was_declared_is_kept_in_the_saved_state():
    shifts = LevelShifts()
    config = ShiftConfig()
    days = [START + timedelta(days=k) for k in range(30)]
    found = [shifts.update(day, math.log(0.5), 0.1, config) for day in days]
    declared = [day for day, shift in zip(days, found, strict=True) if shift is not None]
    assert declared and shifts.declared == declared[-1]
    saved = json.loads(json.dumps(shifts.state()))
    loaded = LevelShifts.from_state(saved)
    assert loaded.declared == shifts.declared and loaded.state() == saved
    assert "declared" not in LevelShifts().state()  # a state saved before it loads alike
    assert LevelShifts.from_state({"shifts": []}).declared is None


@pytest.mark.parametrize("factor", [3.0, 0.3])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_busy_posts_one_day_spike_ends_on_the_first_day_back(seed, factor):
    """What holding a step's episode must not cost: at 2,000 a day one day shows the
    return, so a one-day spike ends the day after it (its episode from the spike day's
    verdict to the next day's), not a day later as when any CUSUM excursion held it."""
    episodes = _episodes(_series(seed, 2000.0, 0.05, 200, lambda k: factor if k == 150 else 1.0))
    assert [(e.kind, e.start, e.end) for e in episodes] == [
        ("surge" if factor > 1 else "drop", _day(150), _day(152))
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    level=any_level,
    noise=st.floats(0.0, 0.06),
    step=st.sampled_from([1.5, 0.6]),
    at=st.integers(120, 220),
)
def test_a_permanent_step_at_any_level_is_at_most_one_episode_of_its_kind(seed, level, noise, step, at):
    counts = _series(seed, level, noise, 300, lambda k: step if k >= at else 1.0)
    episodes = _episodes(counts)
    found = [(e.kind, e.start, e.end, e.ratio) for e in episodes]
    assert len(episodes) <= 1, found
    for episode in episodes:
        assert episode.kind == ("surge" if step > 1 else "drop"), found
        assert episode.start >= _day(at), found


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    level=any_level,
    noise=st.floats(0.0, 0.06),
    start=st.integers(60, 120),
)
def test_growth_of_three_percent_a_week_for_six_months_is_at_most_one_episode(seed, level, noise, start):
    weeks = 26
    counts = _series(
        seed, level, noise, start + 7 * weeks + 28, lambda k: 1.03 ** (min(max(k - start, 0), 7 * weeks) / 7)
    )
    episodes = _episodes(counts)
    assert len(episodes) <= 1, [(e.kind, e.start, e.end, e.ratio) for e in episodes]


REGISTRY = load_registry()


def _hourly(levels: list[int], restart: bool) -> list[tuple]:
    """Korday entry evaluated every hour as the worker does (restarted from its JSON state
    before every evaluation if ``restart``): the transitions as comparable tuples."""
    # 2024-02-01: no holiday of Korday's countries in the step's weeks below.
    return [
        (t.status, t.opened, t.episode.episode_id, t.episode.kind, t.as_of.isoformat())
        for t in hourly_transitions("korday", levels, date(2024, 2, 1), restart=restart)
    ]


def test_the_worker_re_anchors_too_and_a_restart_changes_nothing():
    rng = random.Random(5)
    at = 50
    levels = [round(1600 * (1.5 if k >= at else 1.0) * rng.uniform(0.95, 1.05)) for k in range(at + 35)]
    calm = _hourly(levels, restart=False)
    assert calm == _hourly(levels, restart=True)
    opened = [t for t in calm if t[1]]
    assert [t[3] for t in opened] == ["surge"], opened
    resolved = [t for t in calm if t[0] == "resolved"]
    assert [t[2] for t in resolved] == [opened[0][2]], resolved
    ended = datetime.fromisoformat(resolved[0][4]).date()
    assert ended <= date(2024, 2, 1) + timedelta(days=at + RE_ANCHORED_WITHIN)


def test_a_low_volume_step_in_the_worker_is_one_episode_and_a_restart_changes_nothing():
    """96 a day, then 144: no day proves it alone (144 against 96 scores under 4.5, and on
    ``main`` nothing opened), three days together do (``onset.py``), in the worker as in
    the backtest; restarted from its JSON state before every evaluation, it judges the same."""
    at = 50
    levels = [144 if k >= at else 96 for k in range(at + 35)]
    calm = _hourly(levels, restart=False)
    assert calm == _hourly(levels, restart=True)
    opened = [t for t in calm if t[1]]
    assert [t[3] for t in opened] == ["surge"], opened
    started = datetime.fromisoformat(opened[0][4]).date()
    assert date(2024, 2, 1) + timedelta(days=at) <= started <= date(2024, 2, 1) + timedelta(days=at + 7)
    resolved = [t for t in calm if t[0] == "resolved"]
    assert [t[2] for t in resolved] == [opened[0][2]], resolved
    ended = datetime.fromisoformat(resolved[0][4]).date()
    assert ended <= date(2024, 2, 1) + timedelta(days=at + RE_ANCHORED_WITHIN)


def test_an_episode_saved_before_pooled_days_loads():
    """An open episode saved before ``pooled_days`` and ``re_anchored`` existed loads as one
    opened by a single view, not yet re-anchored."""
    korday = REGISTRY["korday"]
    old = {
        "episode": {
            "episode_id": "korday:entry:surge:2024-03-01T1000",
            "kind": "surge",
            "opened_by": "running_day",
            "opened_as_of": "2024-03-01T05:00:00+00:00",
        },
        "last_day": "2024-03-01",
        "last_hour": 10,
        "history": {"from": "2024-02-01", "totals": [1500] * 29, "flags": "." * 29},
    }
    detector = CheckpointDetector(korday, "entry", {}.get, state=old)
    assert detector.episode is not None
    assert (detector.episode.pooled_days, detector.episode.re_anchored) == (0, False)
    saved = detector.state().to_dict()
    assert not {"pooled_days", "re_anchored"} & set(saved["episode"])  # written as before
    detector.episode.pooled_days, detector.episode.re_anchored = 3, True
    saved = json.loads(json.dumps(detector.state().to_dict()))
    again = CheckpointDetector(korday, "entry", {}.get, state=saved)
    assert again.episode is not None and (again.episode.pooled_days, again.episode.re_anchored) == (3, True)


def test_a_state_saved_before_level_shifts_loads():
    """A detector state from before this change (its history without ``shifts``) loads and
    is judged as before; the state it saves again carries the shifts."""
    korday = REGISTRY["korday"]
    old = {
        "episode": None,
        "last_day": "2024-03-01",
        "last_hour": 5,
        "history": {"from": "2024-02-01", "totals": [1500] * 29, "flags": "." * 29},
    }
    detector = CheckpointDetector(korday, "entry", {}.get, state=old)
    assert detector.history.get(date(2024, 2, 10)) == (1500, ".")
    saved = detector.state().to_dict()
    assert saved["history"]["shifts"]["shifts"] == []
    again = CheckpointDetector(korday, "entry", {}.get, state=json.loads(json.dumps(saved)))
    assert again.state().to_dict() == saved


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.floats(-0.1, 0.1), max_size=30),
    spike=st.floats(-5.0, 5.0),
    after=st.lists(st.floats(-0.1, 0.1), max_size=30),
)
def test_one_day_however_extreme_is_not_a_shift(before, spike, after):
    """The CUSUM clips each day: one extraordinary day among ordinary ones (within one
    standard deviation) never re-anchors the level."""
    shifts, config = LevelShifts(), ShiftConfig()
    for k, x in enumerate([*before, spike, *after]):
        assert shifts.update(START + timedelta(days=k), x, 0.1, config) is None


@given(
    lead=st.lists(st.floats(-0.1, 0.1), max_size=30),
    moved=st.floats(0.3, 1.5),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_a_week_at_a_new_level_is_one_shift_from_its_first_day(lead, moved, sign):
    shifts, config = LevelShifts(), ShiftConfig()
    found = []
    values = [*lead, *[sign * moved] * config.min_days, *[0.0] * 20]
    for k, x in enumerate(values):
        got = shifts.update(START + timedelta(days=k), x, 0.1, config)
        if got is not None:
            found.append(got)
    assert len(found) == 1
    (shift,) = found
    # Ordinary days before the step can sit in the run (the CUSUM's last zero is an
    # estimate), never more than the step's own days: the median is the step's.
    assert START + timedelta(days=len(lead) - 3) <= shift.start <= START + timedelta(days=len(lead))
    assert math.isclose(math.log(shift.factor), sign * moved)
    assert (shift.start, shift.factor) in shifts.shifts
    assert shifts.scale(START - timedelta(days=1), START + timedelta(days=len(values))) == shift.factor


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), level=st.floats(500.0, 30_000.0), weekly=st.sampled_from([0.03, -0.03]))
def test_steady_growth_is_expected(seed, level, weekly):
    """Ten weeks of 3 % a week up (or down), a weekly profile, 1 % day noise: the expected
    day is within 4 % of the day's true mean. A median of the same weekday two to four
    weeks back (the level without a trend) lags it by ~7.5 %."""
    rng = random.Random(seed)
    week = [rng.uniform(0.5, 1.5) for _ in range(7)]
    days = 70

    def mean(k: int) -> float:
        return level * week[k % 7] * (1 + weekly) ** (k / 7)

    history = DayHistory()
    totals = {}
    for k in range(days):
        totals[START + timedelta(days=k)] = round(mean(k) * rng.gauss(1.0, 0.01))
        history.record(START + timedelta(days=k), totals[START + timedelta(days=k)], NORMAL)

    def lookup(day: date):
        total = totals.get(day)
        return None if total is None else {"total": total, "hourly": [total // 24] * 24, "groups": {}}

    baseline = build_baseline(START + timedelta(days=days), lookup, BaselineConfig(), history)
    assert baseline is not None
    assert abs(baseline.expected_day / mean(days) - 1) <= 0.04, (
        baseline.expected_day,
        mean(days),
        baseline.notes,
    )
