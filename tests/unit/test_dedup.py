"""A re-sent copy is a duplicate; an id reused for another crossing is a conflict."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from samples import GOOD_EVENT

from streams.core.processor import PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import SEEN_CHUNK, LocalStore
from streams.domain.event import EventDecoder
from streams.domain.registry import load_registry

REGISTRY = load_registry()
NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    store = LocalStore(tmp_path / "state")
    yield store
    store.close()


def _processor(store: LocalStore) -> PartitionProcessor:
    state = PartitionState.load(0, store)
    return PartitionProcessor(0, state, store, REGISTRY, ["zhibek-zholy"], EventDecoder(REGISTRY))


def _records(values: list[bytes], first_offset: int = 0) -> list[SourceRecord]:
    arrived = round(NOW.timestamp() * 1000)
    return [SourceRecord(0, first_offset + i, arrived, b"zhibek-zholy", v) for i, v in enumerate(values)]


def _commit(processor: PartitionProcessor, store: LocalStore) -> None:
    batch = processor.prepare_commit()
    store.apply(batch.changes, None)
    processor.committed(batch)


ORIGINAL = json.dumps(GOOD_EVENT).encode()
# The same crossing, spelled differently: other key order, the instant in UTC.
RESPELLED = json.dumps(
    {**dict(reversed(list(GOOD_EVENT.items()))), "occurred_at": "2024-03-01T04:15:03Z"}
).encode()
OTHER_CROSSING = json.dumps({**GOOD_EVENT, "nationality": "KAZ"}).encode()


def _counted(processor: PartitionProcessor) -> int:
    return sum(len(rows) for rows in processor.effects.events.values())


@pytest.mark.parametrize("committed_between", [False, True])
def test_a_re_sent_copy_is_a_duplicate_however_it_is_spelled(store, committed_between):
    processor = _processor(store)
    processor.process(_records([ORIGINAL]), NOW)
    if committed_between:
        _commit(processor, store)
        processor = _processor(store)  # as after a restart: the id comes from the store
    processor.process(_records([RESPELLED, ORIGINAL], first_offset=1), NOW)
    assert processor.effects.metrics.duplicates == 2
    assert processor.effects.dead_letters == []
    assert _counted(processor) == (0 if committed_between else 1)


@pytest.mark.parametrize("committed_between", [False, True])
def test_an_id_reused_for_another_crossing_is_a_dead_lettered_conflict(store, committed_between):
    processor = _processor(store)
    processor.process(_records([ORIGINAL]), NOW)
    if committed_between:
        _commit(processor, store)
        processor = _processor(store)
    processor.process(_records([OTHER_CROSSING], first_offset=1), NOW)
    [letter] = processor.effects.dead_letters
    assert letter.reason == "duplicate_conflict"
    assert letter.offset == 1
    digests = re.findall(r"\b[0-9a-f]{8}\b", letter.detail)
    assert len(set(digests)) == 2, letter.detail  # both digests, and they differ
    assert processor.effects.metrics.invalid["duplicate_conflict"] == 1
    assert processor.effects.metrics.duplicates == 0


def test_ids_remembered_before_digests_existed_are_plain_duplicates(store):
    bucket = int((NOW - timedelta(hours=3)).timestamp() // 3600)
    store.apply([(SEEN_CHUNK + f"{bucket:010d}|{1:010d}|00000".encode(), b"zz-000000001")], None)
    processor = _processor(store)
    processor.process(_records([OTHER_CROSSING]), NOW)
    assert processor.effects.metrics.duplicates == 1
    assert processor.effects.dead_letters == []


@pytest.mark.parametrize("key", [None, b"", b"korday", b"zhibek-zholy ", b"ZHIBEK-ZHOLY"])
def test_an_event_without_its_checkpoint_as_key_is_dead_lettered_not_counted(store, key):
    """The topic is keyed by checkpoint_id: de-duplication is per partition, so an event
    under another key (or none: the fuzz run found these counted) could land elsewhere
    and be counted twice. It is refused as ``bad_key`` and never moves the clock."""
    processor = _processor(store)
    later = json.dumps({**GOOD_EVENT, "event_id": "other", "occurred_at": "2024-03-05T09:15:03+05:00"})
    records = [
        SourceRecord(0, 0, round(NOW.timestamp() * 1000) + 10**9, key, later.encode()),
        *_records([ORIGINAL], first_offset=1),
    ]
    processor.process(records, NOW)
    [letter] = processor.effects.dead_letters
    assert (letter.offset, letter.reason, letter.key) == (0, "bad_key", key)
    assert "not its checkpoint_id 'zhibek-zholy'" in letter.detail
    assert processor.state.stream_ts == datetime.fromisoformat(GOOD_EVENT["occurred_at"]).timestamp()
    assert sum(len(rows) for rows in processor.effects.events.values()) == 1
    assert processor.effects.metrics.invalid == {"bad_key": 1}
