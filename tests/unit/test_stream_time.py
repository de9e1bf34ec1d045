"""One event with a broken clock must not become its partition's stream time.

Two guards, for the two ways such an event comes:

- an event may be stamped at most the allowed skew ahead of when its record reached Kafka
  (the broker timestamp, so the verdict is the same live and in a replay of history);
  further ahead, it is dead-lettered as ``future_timestamp`` and the clock does not move;
- where the arrival says nothing about event time (history read from files, which has no
  broker timestamp, or produced to Kafka long after it happened), the clock moves only as
  far as most of the latest events ahead of it agree: up to two in any five can be stamped
  anywhere ahead and no real event becomes too late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import event_bytes

from streams.core.processor import PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import EventDecoder
from streams.domain.registry import load_registry

REGISTRY = load_registry()
START = datetime(2024, 3, 1, tzinfo=UTC)
WALL_CLOCK = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a replay, long after


@pytest.fixture
def processor(tmp_path):
    store = LocalStore(tmp_path / "state")
    yield PartitionProcessor(0, PartitionState(0), store, REGISTRY, ["zhibek-zholy"], EventDecoder(REGISTRY))
    store.close()


def _record(offset: int, occurred_at: datetime, arrived: datetime) -> SourceRecord:
    value = event_bytes(f"ev-{offset}", occurred_at)
    return SourceRecord(0, offset, round(arrived.timestamp() * 1000), b"zhibek-zholy", value)


def _history(hours: int, poisoned_at: int, stamped: datetime) -> list[SourceRecord]:
    """An event every 10 minutes, arriving a minute later; one of them stamped ``stamped``."""
    records = []
    for offset in range(hours * 6):
        occurred = START + timedelta(minutes=10 * offset)
        records.append(
            _record(offset, stamped if offset == poisoned_at else occurred, occurred + timedelta(minutes=1))
        )
    return records


def test_an_event_stamped_in_the_present_does_not_poison_a_replay_of_history(processor):
    records = _history(hours=96, poisoned_at=100, stamped=WALL_CLOCK)
    processor.process(records, WALL_CLOCK)
    letters = processor.effects.dead_letters
    assert [(letter.offset, letter.reason) for letter in letters] == [(100, "future_timestamp")]
    assert "ahead of when it reached Kafka" in letters[0].detail
    counted = sum(len(rows) for rows in processor.effects.events.values())
    assert counted == len(records) - 1  # every other event, none of them too late
    # Agreed by the latest events: the third newest (up to two of the five may be wrong).
    assert processor.state.stream_ts == (START + timedelta(minutes=10 * (len(records) - 3))).timestamp()


@pytest.mark.parametrize(
    ("ahead", "counted"),
    [(timedelta(hours=23), False), (timedelta(minutes=16), False), (timedelta(minutes=14), True)],
)
def test_live_an_event_may_run_ahead_of_kafka_only_by_the_skew(processor, ahead, counted):
    arrived = datetime(2024, 3, 1, 9, tzinfo=UTC)
    before = [_record(i, arrived - timedelta(minutes=5 - i), arrived) for i in range(5)]
    fast_clock = _record(5, arrived + ahead, arrived)
    processor.process([*before, fast_clock], arrived)
    reasons = [letter.reason for letter in processor.effects.dead_letters]
    assert reasons == ([] if counted else ["future_timestamp"])
    counted_events = sum(len(rows) for rows in processor.effects.events.values())
    assert counted_events == (6 if counted else 5)
    # Five events (08:55..08:59) agree on 08:57; one ahead of them, if counted, moves the
    # clock one event on (to 08:58, the median of the latest five), never to itself.
    agreed = arrived - timedelta(minutes=2 if counted else 3)
    assert processor.state.stream_ts == agreed.timestamp()


def test_records_without_a_broker_timestamp_are_judged_on_the_wall_clock(processor):
    now = datetime(2024, 3, 1, 9, tzinfo=UTC)
    records = [
        SourceRecord(0, 0, 0, b"zhibek-zholy", event_bytes("a", now + timedelta(minutes=10))),
        SourceRecord(0, 1, 0, b"zhibek-zholy", event_bytes("b", now + timedelta(hours=2))),
    ]
    processor.process(records, now)
    assert [letter.offset for letter in processor.effects.dead_letters] == [1]


def _file_history(n: int, stamped: dict[int, datetime]) -> list[SourceRecord]:
    """History as ``crossings replay`` reads it from NDJSON: no broker timestamp, so every
    record is judged on the wall clock of the replay, long after."""
    return [
        SourceRecord(
            0,
            offset,
            0,
            b"zhibek-zholy",
            event_bytes(f"ev-{offset}", stamped.get(offset, START + timedelta(minutes=10 * offset))),
        )
        for offset in range(n)
    ]


def test_history_without_broker_timestamps_is_not_poisoned_by_an_event_stamped_now(processor):
    records = _file_history(96 * 6, {100: WALL_CLOCK - timedelta(minutes=1)})
    processor.process(records, WALL_CLOCK)
    assert processor.effects.dead_letters == []  # nothing too late
    counted = sum(len(rows) for rows in processor.effects.events.values())
    assert counted == len(records)  # the stray one too, on the day it says
    assert processor.state.stream_ts == (START + timedelta(minutes=10 * (len(records) - 3))).timestamp()
    # Detectors ran hour by hour through the history, never at the present.
    assert processor.state.evaluated_until == int(processor.state.stream_ts // 3600 * 3600)


def test_the_clock_agreement_survives_a_restart(tmp_path):
    """The events the clock is agreed on are part of the committed state: a worker
    restarted between two stray events moves its clock as one that ran through."""
    stray = {50: WALL_CLOCK - timedelta(hours=2), 52: WALL_CLOCK - timedelta(hours=1)}
    records = _file_history(120, stray)
    cut = 51

    def clocks(restart: bool) -> list[float | None]:
        path = tmp_path / f"state-{restart}"
        store = LocalStore(path)
        processor = PartitionProcessor(
            0, PartitionState(0), store, REGISTRY, ["zhibek-zholy"], EventDecoder(REGISTRY)
        )
        processor.process(records[:cut], WALL_CLOCK)
        if restart:
            batch = processor.prepare_commit()
            store.apply(batch.changes, None)
            processor.committed(batch)
            store.close()
            store = LocalStore(path)
            processor = PartitionProcessor(
                0, PartitionState.load(0, store), store, REGISTRY, ["zhibek-zholy"], EventDecoder(REGISTRY)
            )
        seen = []
        for record in records[cut:]:
            processor.process([record], WALL_CLOCK)
            seen.append(processor.state.stream_ts)
        assert [letter.reason for letter in processor.effects.dead_letters] == []
        store.close()
        return seen

    ran_through = clocks(restart=False)
    assert clocks(restart=True) == ran_through
    assert ran_through[-1] == (START + timedelta(minutes=10 * 117)).timestamp()


@st.composite
def _with_strays(draw: st.DrawFn) -> tuple[list[float], set[int]]:
    """Real event times in order (gaps up to 3 h) with strays stamped anywhere ahead, at
    most two in any five consecutive events."""
    n = draw(st.integers(min_value=3, max_value=60))
    strays: set[int] = set()
    for i in range(n):
        if draw(st.booleans()) and sum(1 for j in range(i - 4, i) if j in strays) < 2:
            strays.add(i)
    times, t = [], START.timestamp()
    for i in range(n):
        if i in strays:
            times.append(t + draw(st.floats(min_value=1, max_value=2.5 * 365 * 86400)))
        else:
            t += draw(st.integers(min_value=0, max_value=3 * 3600))
            times.append(t)
    return times, strays


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_with_strays(), st.lists(st.integers(min_value=1, max_value=59), max_size=5))
def test_strays_never_move_the_clock_past_the_real_events(tmp_path, sample, cuts):
    """Oracle: at every point the clock is between the third newest and the newest real
    event so far, whatever the batches, and no real event is too late."""
    times, strays = sample
    records = [
        SourceRecord(0, i, 0, b"zhibek-zholy", event_bytes(f"ev-{i}", datetime.fromtimestamp(ts, UTC)))
        for i, ts in enumerate(times)
    ]
    store = LocalStore(tmp_path / f"state-{len(times)}-{hash(tuple(cuts))}")
    processor = PartitionProcessor(
        0, PartitionState(0), store, REGISTRY, ["zhibek-zholy"], EventDecoder(REGISTRY)
    )
    try:
        bounds = sorted({c for c in cuts if c < len(records)} | {len(records)})
        start = 0
        for end in bounds:
            processor.process(records[start:end], WALL_CLOCK)
            start = end
            real = [times[i] for i in range(end) if i not in strays]
            clock = processor.state.stream_ts
            if end >= 5:  # a full window: at most two of it strays, at least three real
                assert clock is not None
                assert real[-3] <= clock <= real[-1]
            else:
                assert clock is None
        assert processor.effects.dead_letters == []
    finally:
        store.close()
