"""A compressed record batch is decompressed up to a bound, and one over it is refused
while being read: its records become one stand-in record that the core dead-letters.

Batches are built with aiokafka's own builders and read by aiokafka's own fetcher class
(``PartitionRecords``), through its C extension and through its pure-Python records.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from datetime import UTC, datetime

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords, _MemoryRecordsPy
from aiokafka.structs import TopicPartition
from test_core import REGISTRY, make_records

from streams.core.effects import dead_letter
from streams.core.processor import CoreConfig, PartitionProcessor
from streams.core.records import RefusedBatch, SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import EventDecoder
from streams.ops import bounded_batches
from streams.ops.bounded_batches import BatchTooLarge, bound_topic, gzip_decode, snappy_size
from streams.settings import ConfigError, load_settings
from streams.worker.kafka_outputs import dead_letter_headers

GZIP = 1


def v2_batch(values: list[bytes], base_offset: int = 0, codec: int = GZIP) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=2**30,
    )
    for i, value in enumerate(values):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"jibek-joly", value=value, headers=[])
    data = bytearray(builder.build())
    data[0:8] = base_offset.to_bytes(8, "big")  # the broker sets the base offset
    return bytes(data)


def read(topic: str, data: bytes, records_class=MemoryRecords, fetch_offset: int = 0) -> list:
    partition_records = fetcher.PartitionRecords(
        TopicPartition(topic, 2), records_class(data), [], fetch_offset, None, None, True, 0
    )
    return list(partition_records), partition_records.next_fetch_offset


BOMB = b"A" * (6 * 2**20)


@pytest.mark.parametrize("records_class", [MemoryRecords, _MemoryRecordsPy], ids=["C", "Python"])
def test_a_batch_over_the_bound_is_one_stand_in_at_its_last_offset_and_the_others_read_whole(records_class):
    bound_topic("events-a", 4 * 2**20)
    small = v2_batch([b"one", b"two"], base_offset=10)
    bomb = v2_batch([b"before", BOMB, b"after"], base_offset=12)
    late = v2_batch([b"three"], base_offset=15)
    got, next_offset = read("events-a", small + bomb + late, records_class, fetch_offset=10)
    assert [(r.offset, r.value) for r in got[:2]] == [(10, b"one"), (11, b"two")]
    stand_in = got[2]
    assert stand_in.offset == 14 and stand_in.key is None and stand_in.headers == ()
    assert stand_in.value.__class__ is RefusedBatch and stand_in.value == b""
    assert stand_in.value.describe() == {
        "topic": "events-a",
        "partition": 2,
        "base_offset": 12,
        "last_offset": 14,
        "compressed_size": len(bomb) - 61,  # the records after the v2 header
        "codec": "gzip",
        "limit": 4 * 2**20,
        "reason": "oversize",
        "cause": "",
    }
    assert stand_in.timestamp == 1_700_000_000_002  # the batch's max timestamp
    assert [(r.offset, r.value) for r in got[3:]] == [(15, b"three")]
    assert next_offset == 16


@pytest.mark.parametrize("records_class", [MemoryRecords, _MemoryRecordsPy], ids=["C", "Python"])
def test_batches_under_the_bound_and_topics_without_one_read_as_before(records_class):
    bound_topic("events-b", 8 * 2**20)
    data = v2_batch([b"x", BOMB]) + v2_batch([b"plain"], base_offset=2, codec=0)
    for topic in ("events-b", "not-bounded"):
        got, _ = read(topic, data, records_class)
        assert [(r.offset, len(r.value)) for r in got] == [(0, 1), (1, len(BOMB)), (2, 5)]
        assert all(r.value.__class__ is bytes for r in got)


def test_a_legacy_compressed_message_set_over_the_bound_is_refused_too():
    bound_topic("events-c", 2**20)
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=GZIP, batch_size=2**30)
    builder.append(0, timestamp=1_700_000_000_000, key=b"k", value=b"B" * (3 * 2**20))
    got, _ = read("events-c", bytes(builder.build()))
    assert len(got) == 1 and got[0].value.__class__ is RefusedBatch


def test_the_bounded_gzip_reader_agrees_with_gzip_and_stops_early():
    payloads = [b"", b"x", bytes(range(256)) * 5000, b"event " * 100_000]
    for payload in payloads:
        compressed = gzip.compress(payload)
        assert gzip_decode(compressed, 2**30) == payload
        assert gzip_decode(compressed + gzip.compress(b"tail"), 2**30) == payload + b"tail"  # members
    with pytest.raises(BatchTooLarge) as refused:
        gzip_decode(gzip.compress(b"y" * 1000), 999)
    assert refused.value.codec == "gzip" and refused.value.limit == 999
    assert gzip_decode(gzip.compress(b"y" * 1000), 1000) == b"y" * 1000
    with pytest.raises((EOFError, zlib.error)):
        gzip_decode(gzip.compress(b"z" * 100_000)[:-20], 2**30)


def test_refusing_a_bomb_holds_about_the_bound_in_memory_not_the_bomb():
    bomb = gzip.compress(b"\0" * (256 * 2**20), 1)  # ~1 MB on the wire
    tracemalloc.start()
    try:
        with pytest.raises(BatchTooLarge):
            gzip_decode(bomb, 8 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak  # the bound, a piece and the input, not 256 MiB


def test_snappy_sizes_are_read_from_the_block_headers_before_decompressing():
    raw = bytes([0x80, 0x80, 0x04]) + b"..."  # a raw block that says 65,536 bytes
    assert snappy_size(raw) == 65_536
    block = bytes([0x90, 0x4E]) + b"..."  # 10,000
    xerial = b"\x82SNAPPY\x00" + b"\x00\x00\x00\x01\x00\x00\x00\x01"
    framed = xerial + (len(block)).to_bytes(4, "big") + block + (len(raw)).to_bytes(4, "big") + raw
    assert snappy_size(framed) == 75_536
    calls = []
    decode = bounded_batches._bounded("snappy", lambda payload: calls.append(payload) or b"")
    bounded_batches._local.limit = 70_000
    try:
        with pytest.raises(BatchTooLarge):
            decode(framed)
        assert calls == []  # refused without decompressing
    finally:
        bounded_batches._local.limit = None
    decode(framed)  # not while a bounded batch is read: the library's own function
    assert calls == [framed]


def _processor(tmp_path) -> PartitionProcessor:
    store = LocalStore(tmp_path / "store")
    return PartitionProcessor(
        0,
        PartitionState.load(0, store),
        store,
        REGISTRY,
        list(REGISTRY),
        EventDecoder(REGISTRY),
        CoreConfig(),
    )


def test_the_core_dead_letters_a_refused_batch_as_oversize_and_goes_on_past_it(tmp_path):
    processor = _processor(tmp_path)
    valid = [r for r in make_records([(n, 0, n, 0) for n in range(1, 9)]) if r.partition == 0]
    refused = RefusedBatch(
        topic="crossings.events.v1",
        partition=0,
        base_offset=3,
        last_offset=5,
        compressed_size=9_130,
        codec="gzip",
        limit=32 * 2**20,
    )
    before, after = valid[:3], [r._replace(offset=r.offset + 3) for r in valid[3:]]
    stand_in = SourceRecord(0, 5, 1_700_000_000_000, None, refused)
    processor.process([*before, stand_in, *after], datetime.now(UTC))
    (letter,) = [d for d in processor.effects.dead_letters if d.offset == 5]
    assert letter.reason == "oversize" and letter.key is None and letter.value is None
    assert letter.batch is refused
    assert "offsets 3..5" in letter.detail and "9,130 bytes gzip" in letter.detail
    assert "CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES" in letter.detail
    assert processor.effects.metrics.invalid["oversize"] == 1
    counted = sum(processor.effects.metrics.processed.values())
    invalid_valid = sum(1 for r in valid if r.value.startswith(b'{"event_id": "broken'))
    assert counted == len(valid) - invalid_valid
    assert processor.state.applied_offset == after[-1].offset
    headers = dict(dead_letter_headers(letter, "crossings.events.v1"))
    assert headers["crossings.dlq.offset"] == b"5"
    assert headers["crossings.dlq.batch.base.offset"] == b"3"
    assert headers["crossings.dlq.batch.last.offset"] == b"5"
    assert headers["crossings.dlq.batch.compressed.size"] == b"9130"
    assert headers["crossings.dlq.batch.codec"] == b"gzip"
    # a real message's letter says nothing of batches
    plain = dead_letter(0, 1, b"k", b"v", "oversize", "-", 2**20)
    assert not any(name.startswith("crossings.dlq.batch") for name, _ in dead_letter_headers(plain, "t"))


def test_the_bound_is_a_setting_that_must_leave_room_for_the_largest_event():
    assert load_settings({}).max_batch_decompressed_bytes == 32 * 2**20
    assert (
        load_settings({"CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES": str(8 * 2**20)}).max_batch_decompressed_bytes
        == 8 * 2**20
    )
    with pytest.raises(ConfigError, match="CROSSINGS_MAX_EVENT_BYTES"):
        load_settings(
            {"CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES": str(2**20), "CROSSINGS_MAX_EVENT_BYTES": str(2**20)}
        )
    with pytest.raises(ConfigError, match="CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES"):
        load_settings({"CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES": "1000"})


def _with_codec(data: bytes, codec: int, records: bytes | None = None) -> bytes:
    """A v2 batch re-labelled with another codec (and other record bytes), its CRC right."""
    from aiokafka.record.util import calc_crc32c

    batch = bytearray(data[:61] + (records if records is not None else data[61:]))
    batch[8:12] = (len(batch) - 12).to_bytes(4, "big")
    attributes = int.from_bytes(batch[21:23], "big") & ~0x07 | codec
    batch[21:23] = attributes.to_bytes(2, "big")
    batch[17:21] = calc_crc32c(bytes(batch[21:])).to_bytes(4, "big")
    return bytes(batch)


@pytest.mark.parametrize("records_class", [MemoryRecords, _MemoryRecordsPy], ids=["C", "Python"])
def test_a_batch_that_cannot_be_decompressed_is_one_unreadable_stand_in_not_an_exception(records_class):
    bound_topic("events-d", 4 * 2**20)
    good = v2_batch([b"one"], base_offset=0)
    lz4 = _with_codec(v2_batch([b"two", b"three"], base_offset=1), 3)  # no lz4 library installed
    broken = _with_codec(v2_batch([b"four"], base_offset=3), 1, records=gzip.compress(b"x" * 5000)[:-30])
    after = v2_batch([b"five"], base_offset=4)
    # unbounded, aiokafka raises out of the fetcher (which stopped Faust's consumer)
    with pytest.raises(Exception, match=r"lz4"):
        read("not-bounded", good + lz4, records_class)
    got, next_offset = read("events-d", good + lz4 + broken + after, records_class)
    assert [r.offset for r in got] == [0, 2, 3, 4] and next_offset == 5
    assert got[0].value == b"one" and got[3].value == b"five"
    for stand_in, codec in ((got[1], "lz4"), (got[2], "gzip")):
        assert stand_in.value.__class__ is RefusedBatch
        assert stand_in.value.reason == "unreadable" and stand_in.value.codec == codec
    assert "UnsupportedCodecError" in got[1].value.cause


def test_the_core_dead_letters_an_unreadable_batch_with_its_cause(tmp_path):
    processor = _processor(tmp_path)
    batch = RefusedBatch(
        topic="crossings.events.v1",
        partition=0,
        base_offset=0,
        last_offset=1,
        compressed_size=0,
        codec="lz4",
        limit=32 * 2**20,
        reason="unreadable",
        cause="UnsupportedCodecError: Libraries for lz4 compression codec not found",
    )
    processor.process([SourceRecord(0, 1, 1_700_000_000_000, None, batch)], datetime.now(UTC))
    (letter,) = processor.effects.dead_letters
    assert letter.reason == "unreadable" and letter.batch is batch and letter.offset == 1
    assert "lz4-compressed, could not be decompressed (UnsupportedCodecError" in letter.detail
    assert processor.state.applied_offset == 1
