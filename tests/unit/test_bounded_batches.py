"""A compressed record batch is decompressed up to a bound, and one over it is refused
while being read: its records become one stand-in record that the core dead-letters.

Batches are built with aiokafka's own builders and read by aiokafka's own fetcher class
(``PartitionRecords``), through its C extension and through its pure-Python records.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from datetime import UTC, datetime

import pytest
from aiokafka import codec as aiokafka_codec
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords, _MemoryRecordsPy
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core import REGISTRY, make_records

from streams.core.effects import dead_letter
from streams.core.processor import CoreConfig, PartitionProcessor
from streams.core.records import RefusedBatch, SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import EventDecoder
from streams.ops.bounded_batches import (
    BatchTooLarge,
    Unreadable,
    bound_topic,
    frame_decode,
    gzip_decode,
    snappy_decode,
    snappy_size,
)
from streams.settings import ConfigError, load_settings
from streams.worker.kafka_outputs import dead_letter_headers

GZIP = 1
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


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


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("records_class", [MemoryRecords, _MemoryRecordsPy], ids=["C", "Python"])
def test_a_batch_over_the_bound_is_one_stand_in_at_its_last_offset_and_the_others_read_whole(
    records_class, codec
):
    bound_topic("events-a", 4 * 2**20)
    small = v2_batch([b"one", b"two"], base_offset=10, codec=CODECS[codec])
    bomb = v2_batch([b"before", BOMB, b"after"], base_offset=12, codec=CODECS[codec])
    late = v2_batch([b"three"], base_offset=15, codec=CODECS[codec])
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
        "codec": codec,
        "limit": 4 * 2**20,
        "reason": "oversize",
        "cause": "",
    }
    assert stand_in.timestamp == 1_700_000_000_002  # the batch's max timestamp
    assert [(r.offset, r.value) for r in got[3:]] == [(15, b"three")]
    assert next_offset == 16


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("records_class", [MemoryRecords, _MemoryRecordsPy], ids=["C", "Python"])
def test_batches_under_the_bound_and_topics_without_one_read_as_before(records_class, codec):
    bound_topic("events-b", 8 * 2**20)
    data = v2_batch([b"x", BOMB], codec=CODECS[codec]) + v2_batch([b"plain"], base_offset=2, codec=0)
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
    with pytest.raises(BatchTooLarge):  # the blocks are garbage: refused without decompressing
        snappy_decode(framed, 70_000)
    with pytest.raises(Unreadable, match="snappy"):  # under the bound they are decompressed
        snappy_decode(framed, 80_000)


@pytest.mark.parametrize(
    "broken",
    [
        b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00",  # a block size cut short
        b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff\x05abcde",  # negative
        b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x09\x05abc",  # past the end
        b"\xff\xff\xff\xff\xff\xff",  # a raw block's length that never ends
    ],
)
def test_broken_snappy_framing_is_unreadable_not_an_error_out_of_the_consumer(broken):
    bound_topic("events-s", 4 * 2**20)
    got, next_offset = read("events-s", _with_codec(v2_batch([b"x"]), 2, records=broken))
    assert next_offset == 1 and got[0].value.reason == "unreadable" and got[0].value.codec == "snappy"


def _encode(codec: str, payload: bytes) -> bytes:
    """As a producer compresses a batch's records (aiokafka's encoders; snappy both ways)."""
    if codec == "snappy-raw":
        return aiokafka_codec.snappy_encode(payload, xerial_compatible=False)
    if codec == "snappy-xerial":
        return aiokafka_codec.snappy_encode(payload, xerial_blocksize=4096)
    if codec == "zstd-frames":  # two frames one after the other
        half = len(payload) // 2
        return aiokafka_codec.zstd_encode(payload[:half]) + aiokafka_codec.zstd_encode(payload[half:])
    return getattr(aiokafka_codec, f"{codec}_encode")(payload)


def _bounded_decode(codec: str, data: bytes, limit: int) -> bytes:
    if codec.startswith("snappy"):
        return snappy_decode(data, limit)
    if codec == "gzip":
        return gzip_decode(data, limit)
    return frame_decode(codec.split("-")[0], data, limit)


ENCODINGS = ["gzip", "snappy-raw", "snappy-xerial", "lz4", "zstd", "zstd-frames"]
#: Payloads that compress well (runs of a few letters, like records) or not at all.
PAYLOADS = st.one_of(
    st.binary(max_size=20_000),
    st.lists(st.tuples(st.sampled_from(b"ab\x00{"), st.integers(1, 5_000)), max_size=30).map(
        lambda runs: b"".join(bytes([letter]) * n for letter, n in runs)
    ),
)


@pytest.mark.parametrize("codec", ENCODINGS)
@settings(max_examples=60, deadline=None)
@given(payload=PAYLOADS, slack=st.integers(-200, 200))
def test_the_bounded_decoders_agree_with_aiokafkas_under_the_bound_and_refuse_over_it(codec, payload, slack):
    """Oracle: aiokafka's own decode function of the codec (unbounded)."""
    data = _encode(codec, payload)
    original = getattr(aiokafka_codec, f"{codec.split('-')[0]}_decode")
    if codec == "snappy-xerial" and not payload:  # aiokafka cannot read back its empty framing
        with pytest.raises(Exception, match="snappy"):
            original(data)
        with pytest.raises(Unreadable, match="snappy"):
            _bounded_decode(codec, data, 2**20)
        return
    assert original(data) == payload
    limit = max(1, len(payload) + slack)
    if len(payload) <= limit:
        assert _bounded_decode(codec, data, limit) == payload
    else:
        with pytest.raises(BatchTooLarge) as refused:
            _bounded_decode(codec, data, limit)
        assert refused.value.codec == codec.split("-")[0] and refused.value.limit == limit


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_a_broken_frame_is_unreadable_and_a_full_one_exactly_at_the_bound_is_read(codec):
    data = _encode(codec, b"e" * 100_000)
    with pytest.raises(Unreadable, match=codec):
        frame_decode(codec, data[: len(data) // 2], 2**20)
    with pytest.raises(Unreadable, match=codec):
        frame_decode(codec, b"not a frame at all", 2**20)
    assert frame_decode(codec, data, 100_000) == b"e" * 100_000
    with pytest.raises(BatchTooLarge):
        frame_decode(codec, data, 99_999)


BOMB_PROBE = textwrap.dedent(
    """
    import sys, cramjam
    from streams.ops.bounded_batches import BatchTooLarge, frame_decode
    codec, size, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    module = getattr(cramjam, codec)
    compressor = module.Compressor(level=3) if codec == "zstd" else module.Compressor(
        level=9, content_checksum=False, block_linked=False)
    piece = b"\\0" * 2**20
    for _ in range(size // 2**20):
        compressor.compress(piece)
    bomb = bytes(compressor.finish())
    del piece, compressor
    def peak():
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        return int(status.split()[0]) * 1024
    with open("/proc/self/clear_refs", "w") as clear:  # the peak so far becomes the current size
        clear.write("5")
    before = peak()
    try:
        frame_decode(codec, bomb, limit)
    except BatchTooLarge:
        print(peak() - before, len(bomb))
    """
)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_refusing_an_lz4_or_zstd_bomb_holds_about_the_bound_in_memory_not_the_bomb(codec):
    """In a process of its own: the decoders allocate outside Python (tracemalloc misses it),
    so the growth of the peak resident memory (VmHWM, reset once the bomb is built) is what
    is measured."""
    bomb_bytes, limit = 512 * 2**20, 8 * 2**20
    done = subprocess.run(
        [sys.executable, "-c", BOMB_PROBE, codec, str(bomb_bytes), str(limit)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    growth, compressed = map(int, done.stdout.split())
    assert compressed < 4 * 2**20
    assert growth < 2 * limit, f"{codec}: peak RSS grew by {growth / 2**20:.0f} MiB"


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
    lz4 = _with_codec(v2_batch([b"two", b"three"], base_offset=1), 3)  # gzip data said to be lz4
    broken = _with_codec(v2_batch([b"four"], base_offset=3), 1, records=gzip.compress(b"x" * 5000)[:-30])
    zstd = _with_codec(v2_batch([b"five"], base_offset=4, codec=4), 4, records=b"\x28\xb5\x2f\xfd\x00")
    after = v2_batch([b"six"], base_offset=5)
    # unbounded, aiokafka raises out of the fetcher (which stopped Faust's consumer)
    with pytest.raises(Exception, match=r"lz4"):
        read("not-bounded", good + lz4, records_class)
    got, next_offset = read("events-d", good + lz4 + broken + zstd + after, records_class)
    assert [r.offset for r in got] == [0, 2, 3, 4, 5] and next_offset == 6
    assert got[0].value == b"one" and got[4].value == b"six"
    for stand_in, codec in ((got[1], "lz4"), (got[2], "gzip"), (got[3], "zstd")):
        assert stand_in.value.__class__ is RefusedBatch
        assert stand_in.value.reason == "unreadable" and stand_in.value.codec == codec
    assert got[1].value.cause.startswith("Unreadable: lz4:")
    assert got[3].value.cause.startswith("Unreadable: zstd:")


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
