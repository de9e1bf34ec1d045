"""The detector's saved state is a typed value (``DetectorState``), and the JSON every
earlier version wrote to the worker's changelog still loads into it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import orjson

from streams.core.state import PartitionState
from streams.core.store import DETECTOR, LocalStore
from streams.domain.counts import count_event
from streams.domain.detect import CheckpointDetector, DetectorState, Episode
from streams.domain.registry import load_registry

KORDAY = load_registry()["korday"]
START = date(2024, 1, 1)

#: The JSON a worker of the version before this one saved (``state()`` returned this dict).
SAVED_BEFORE = {
    "episode": {
        "episode_id": "korday:entry:drop:2024-02-10T0900",
        "kind": "drop",
        "opened_by": "running_day",
        "opened_as_of": "2024-02-10T04:00:00+00:00",
        "peak_observed": 12,
        "peak_expected": 140.0,
        "peak_day": "2024-02-10",
        "cause": "level",
        "scope": None,
    },
    "group_episode": None,
    "last_day": "2024-02-11",
    "last_hour": 7,
    "closed_since": None,
    "zero_run": 0,
    "alarm_today": True,
    "history": {"from": "2024-01-01", "totals": [150, 160, None, 0], "flags": "..ac"},
    "band": [1707620400.0, 30, 41.5, 20.0, 66.0],
    "post_episode": None,
    "post_day": "2024-02-11",
}
#: An older one still: one episode, no history, no post view, no band.
SAVED_LONG_AGO = {
    "episode": {
        "episode_id": "x",
        "kind": "surge",
        "opened_by": "last_hour",
        "opened_as_of": "2024-01-01T00:00:00+00:00",
    },
    "last_day": "2024-01-01",
    "last_hour": 3,
}


def _detector(profiles: dict, state=None) -> CheckpointDetector:
    return CheckpointDetector(KORDAY, "entry", profiles.get, state=state)


def _run(detector: CheckpointDetector, profiles: dict, days: range, hours: range) -> list:
    found = []
    for k in days:
        day = START + timedelta(days=k)
        for hour in hours:
            found += detector.evaluate(datetime(day.year, day.month, day.day, hour, tzinfo=KORDAY.tz))
    return found


def _profiles(days: int) -> dict:
    profiles: dict = {}
    for k in range(days):
        day = START + timedelta(days=k)
        for hour in range(8, 20):
            profiles[day] = count_event(profiles.get(day), hour, "KGZ", "labour", 10 + k % 3)
    return profiles


def test_the_saved_state_is_typed_and_its_json_round_trips():
    profiles = _profiles(30)
    detector = _detector(profiles)
    _run(detector, profiles, range(30), range(24))
    state = detector.state()
    assert isinstance(state, DetectorState)
    assert state.last_day == START + timedelta(days=29) and state.last_hour == 23
    # Each completed day's total (the running day is not one yet).
    assert state.history.totals == tuple(12 * (10 + k % 3) for k in range(29))
    text = json.dumps(state.to_dict())  # plain JSON, as the changelog holds it
    assert DetectorState.from_dict(json.loads(text)) == state


def test_a_state_is_a_snapshot_the_detector_does_not_change():
    profiles = _profiles(20)
    detector = _detector(profiles, state=SAVED_BEFORE)
    state = detector.state()
    assert detector.episode is not None and detector.episode is not state.episode
    detector.episode.peak_observed = 999  # an open episode's peak moves with later days
    detector.history.record(START + timedelta(days=10), 5, ".")
    assert state.episode is not None and state.episode.peak_observed == 12
    assert len(state.history.totals) == 4
    again = _detector(profiles, state=state)  # a state given to a detector stays as it was
    assert again.episode is not None
    again.episode.peak_observed = 7
    assert state.episode.peak_observed == 12


def test_json_saved_by_earlier_versions_loads():
    before = DetectorState.from_dict(json.loads(json.dumps(SAVED_BEFORE)))
    assert before.episode == Episode(**SAVED_BEFORE["episode"])
    assert before.last_day == date(2024, 2, 11) and before.post_day == date(2024, 2, 11)
    assert before.history.totals == (150, 160, None, 0) and before.history.flags == "..ac"
    assert before.band is not None and before.band.upper == 66.0
    assert before.to_dict() == SAVED_BEFORE  # written back exactly as it was read
    long_ago = DetectorState.from_dict(SAVED_LONG_AGO)
    assert long_ago.episode is not None and long_ago.episode.cause == "level"
    assert long_ago.history.totals == () and long_ago.post_episode is None and long_ago.zero_run == 0
    # A detector made from the old JSON goes on as one made from its typed value.
    profiles = _profiles(45)
    from_json, from_value = _detector(profiles, SAVED_BEFORE), _detector(profiles, before)
    days = range(41, 45)
    assert _run(from_json, profiles, days, range(0, 24, 3)) == _run(
        from_value, profiles, days, range(0, 24, 3)
    )
    assert from_json.state() == from_value.state()


def test_a_partition_state_reads_old_json_from_its_store_and_writes_typed_states_back(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.apply([(DETECTOR + b"korday|entry", orjson.dumps(SAVED_BEFORE))], None)
    state = PartitionState.load(0, store)
    loaded = state.detectors["korday|entry"]
    assert isinstance(loaded, DetectorState) and loaded.episode is not None
    state.stream_ts = datetime(2024, 2, 11, tzinfo=UTC).timestamp()
    state.dirty_detectors.add("korday|entry")
    records, _, _ = state.changes(commit_seq=1, horizon_s=3600, retention_days=35)
    written = dict(records)[DETECTOR + b"korday|entry"]
    assert orjson.loads(written) == SAVED_BEFORE
    store.close()


def test_parts_the_history_saves_beyond_its_days_are_carried_as_saved():
    """A history that saves more than its days (level shifts, say) keeps it through a
    typed state, copied: changing the JSON afterwards does not change the state."""
    saved = json.loads(json.dumps(SAVED_BEFORE))
    saved["history"]["shifts"] = {"runs": [["2024-01-02", 0.4]], "cusum": [0.1, -0.2]}
    state = DetectorState.from_dict(saved)
    assert state.to_dict() == saved
    saved["history"]["shifts"]["cusum"].append(9.9)
    assert state.to_dict()["history"]["shifts"]["cusum"] == [0.1, -0.2]
