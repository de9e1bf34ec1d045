"""One event with a broken clock must not become its partition's stream time.

An event may be stamped at most the allowed skew ahead of when its record reached Kafka
(the broker timestamp, so the verdict is the same live and in a replay of history);
further ahead, it is dead-lettered as ``future_timestamp`` and the clock does not move.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
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
    assert processor.state.stream_ts == (START + timedelta(minutes=10 * (len(records) - 1))).timestamp()


@pytest.mark.parametrize(
    ("ahead", "counted"),
    [(timedelta(hours=23), False), (timedelta(minutes=16), False), (timedelta(minutes=14), True)],
)
def test_live_an_event_may_run_ahead_of_kafka_only_by_the_skew(processor, ahead, counted):
    arrived = datetime(2024, 3, 1, 9, tzinfo=UTC)
    before = _record(0, arrived - timedelta(minutes=5), arrived)
    fast_clock = _record(1, arrived + ahead, arrived)
    processor.process([before, fast_clock], arrived)
    reasons = [letter.reason for letter in processor.effects.dead_letters]
    assert reasons == ([] if counted else ["future_timestamp"])
    expected_clock = fast_clock if counted else before
    assert (
        processor.state.stream_ts
        == (
            datetime.fromtimestamp(expected_clock.timestamp_ms / 1000, UTC)
            + (ahead if counted else -timedelta(minutes=5))
        ).timestamp()
    )


def test_records_without_a_broker_timestamp_are_judged_on_the_wall_clock(processor):
    now = datetime(2024, 3, 1, 9, tzinfo=UTC)
    records = [
        SourceRecord(0, 0, 0, b"zhibek-zholy", event_bytes("a", now + timedelta(minutes=10))),
        SourceRecord(0, 1, 0, b"zhibek-zholy", event_bytes("b", now + timedelta(hours=2))),
    ]
    processor.process(records, now)
    assert [letter.offset for letter in processor.effects.dead_letters] == [1]
