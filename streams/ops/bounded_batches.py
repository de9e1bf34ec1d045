"""Kafka record batches are decompressed up to a bound, so a compressed bomb is refused
while it is being read, not after it filled the memory.

aiokafka decompresses a whole record batch at once, before any of its records is handed
over: a gzip batch of 100 KB on the wire can hold a 100 MiB value (the topic's
``max.message.bytes`` bounds the compressed batch only). :func:`bound_topic` makes every
aiokafka consumer of this process read ``topic``'s batches through a decompressor that
stops past ``limit`` bytes (``CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES``).

A batch over the bound cannot be read, so none of its records can: in their place the
consumer hands over one record at the batch's last offset whose value is a
:class:`~streams.core.records.RefusedBatch` (empty bytes that say which batch, how large
compressed, which codec). The core dead-letters it ``oversize`` in the commit's
transaction like any other record, and the partition goes on past the batch.

How it is hooked in, and why there: the codecs' decode functions are looked up by name in
aiokafka's record modules, its C extension (``record/_crecords``) included, so they are
replaced there, bounded only while a batch of a bounded topic is being iterated (a
thread-local limit: Faust's consumer runs on its own thread). aiokafka's fetcher makes a
``PartitionRecords`` per partition of a fetch response; its replacement wraps each batch so
the refusal becomes the stand-in record instead of an exception (which would stop the
consumer). Topics not bounded (the changelog reader's) read as before.

Each codec is bounded while it decompresses, never by decompressing whole first:

- gzip: decompressed in pieces of :data:`STEP` bytes, refused once they add up past the bound.
- snappy (raw, or the xerial framing of the Java client): each raw block declares its length
  and does not decode to any other, so the batch is refused from the declared lengths before
  anything is decompressed.
- lz4 and zstd (frames): streamed into a buffer one byte larger than the bound, refused when
  it fills (see :func:`frame_decode`).

snappy, lz4 and zstd are read with ``cramjam`` (a dependency: without it aiokafka reads gzip
only). A batch whose data is broken becomes an ``unreadable`` stand-in instead.
"""

from __future__ import annotations

import mmap
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from streams.core.records import RefusedBatch

#: CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES's default: a topic's batches are at most its
#: ``max.message.bytes`` compressed (1 MiB by default), and events compress 5 to 10 times.
DEFAULT_LIMIT = 32 * 2**20
#: Decompressed in pieces of this many bytes (a batch of the usual size in one), so a
#: refusal holds at most about this past the bound.
STEP = 2**20

_local = threading.local()
#: topic -> the largest number of bytes one of its batches may decompress to.
_limits: dict[str, int] = {}
_installed = False
_lock = threading.Lock()


#: aiokafka's compression types (the low bits of a batch's attributes).
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _unreadable() -> tuple[type[BaseException], ...]:
    """What decompressing a batch raises when it cannot be read at all: the data is broken, or
    its codec is unknown (aiokafka's ``UnsupportedCodecError``, e.g. lz4 in a v0 message set)."""
    from aiokafka.errors import UnsupportedCodecError

    return (UnsupportedCodecError, zlib.error, EOFError, OSError, Unreadable)


class BatchTooLarge(Exception):
    """A record batch decompresses to more than the bound."""

    def __init__(self, codec: str, compressed: int, limit: int) -> None:
        super().__init__(f"a {codec} batch of {compressed:,} bytes decompresses past {limit:,} bytes")
        self.codec = codec
        self.compressed = compressed
        self.limit = limit


def bound_topic(topic: str, limit: int) -> None:
    """Read ``topic``'s record batches in this process with at most ``limit`` bytes each,
    decompressed (the last call for a topic wins)."""
    if limit < 1:
        raise ValueError(f"a decompression bound must be positive, not {limit}")
    install()
    _limits[topic] = limit


def limit_for(topic: str) -> int | None:
    return _limits.get(topic)


# --------------------------------------------------------------------------- the codecs


def gzip_decode(payload: Any, limit: int) -> bytes:
    """gzip members, one after another as aiokafka's reader takes them, decompressed in
    pieces of at most :data:`STEP` bytes; refused as soon as they add up past ``limit``."""
    data = bytes(payload)
    pieces: list[bytes] = []
    total = 0
    while data:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = data
        while not decompressor.eof:
            piece = decompressor.decompress(chunk, STEP)
            chunk = decompressor.unconsumed_tail
            if not piece and not chunk:  # all input taken and nothing more came out:
                piece = decompressor.flush()  # zlib may mark the end only now
                if not decompressor.eof:
                    raise EOFError("gzip batch ended before its end-of-stream marker")
            total += len(piece)
            if total > limit:
                raise BatchTooLarge("gzip", len(payload), limit)
            pieces.append(piece)
        # What gzip.GzipFile does: NUL padding between members is skipped.
        data = decompressor.unused_data.lstrip(b"\x00")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


#: aiokafka's test for a xerial-framed snappy payload (``codec._detect_xerial_stream``): this
#: header (marker, ``SNAPPY``, NUL, version 1, compatible with 1) and at least one byte more.
_XERIAL = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"


class Unreadable(ValueError):
    """A compressed batch is broken: it cannot be decompressed at all."""


def _varint(data: bytes | memoryview, at: int = 0) -> int:
    result = shift = 0
    for i in range(at, min(at + 5, len(data))):
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result
        shift += 7
    raise Unreadable("snappy block with a broken length")


def _snappy_blocks(data: memoryview) -> list[memoryview]:
    """A snappy payload's raw blocks: the payload itself, or the blocks of the xerial framing
    Kafka's Java client writes (16-byte header, then per block its size, 4 bytes big-endian)."""
    if len(data) <= len(_XERIAL) or bytes(data[: len(_XERIAL)]) != _XERIAL:
        return [data]
    blocks, cursor = [], len(_XERIAL)
    while cursor < len(data):
        if cursor + 4 > len(data):
            raise Unreadable("snappy xerial block size cut short")
        (size,) = struct.unpack_from("!i", data, cursor)
        cursor += 4
        if size < 0 or cursor + size > len(data):
            raise Unreadable(f"snappy xerial block of {size} bytes at {cursor - 4} does not fit")
        blocks.append(data[cursor : cursor + size])
        cursor += size
    return blocks


def snappy_size(payload: Any) -> int:
    """What a snappy payload (raw, or xerial blocks) says it decompresses to: each raw block
    begins with its uncompressed length, and the decoder refuses a block that does not decode
    to exactly that."""
    return sum(_varint(block) for block in _snappy_blocks(memoryview(bytes(payload))))


def snappy_decode(payload: Any, limit: int) -> bytes:
    """Refused from the sizes the blocks declare, before any is decompressed; then each block
    is decompressed into a buffer of exactly its declared size."""
    import cramjam

    blocks = _snappy_blocks(memoryview(bytes(payload)))
    if sum(_varint(block) for block in blocks) > limit:
        raise BatchTooLarge("snappy", len(payload), limit)
    try:
        pieces = [bytes(cramjam.snappy.decompress_raw(block)) for block in blocks]
    except cramjam.DecompressionError as error:
        raise Unreadable(f"snappy: {error}".replace("snappy: snappy:", "snappy:")) from error
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


#: What cramjam's ``decompress_into`` says when the output does not fit the buffer (Rust's
#: ``io::ErrorKind::WriteZero``); any other error is a broken batch.
_FULL = "failed to write whole buffer"


def _output_buffer(size: int) -> mmap.mmap:
    """This thread's buffer of ``size`` bytes, kept between batches: an anonymous mapping, so
    only the pages written are memory (and a fresh one per batch costs more page faults than
    decompressing a batch of the usual size)."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) != size:
        if buffer is not None:
            buffer.close()
        buffer = _local.buffer = mmap.mmap(-1, size)
    return buffer


def frame_decode(codec: str, payload: Any, limit: int) -> bytes:
    """An lz4 or zstd frame (what aiokafka's ``lz4_decode``/``zstd_decode`` read) streamed into
    a buffer of ``limit + 1`` bytes: cramjam's decoder stops when the buffer is full, so a bomb
    is refused having produced one byte past the bound. The result is copied out of the
    buffer; past :data:`STEP` bytes written, its pages are given back to the system.

    A frame's declared content size is not trusted nor needed: the buffer bounds the output,
    and the decoders' own state is a block (lz4: at most 4 MiB) or the window (zstd: filled
    only as output is produced, and a frame that asks for more than 128 MiB is refused)."""
    import cramjam

    module = cramjam.lz4 if codec == "lz4" else cramjam.zstd
    out = _output_buffer(limit + 1)
    size = limit + 1
    try:
        try:
            size = module.decompress_into(bytes(payload), out)
        except cramjam.DecompressionError as error:
            if _FULL in str(error):
                raise BatchTooLarge(codec, len(payload), limit) from None
            cause = str(error)
            raise Unreadable(cause if cause.startswith(codec) else f"{codec}: {cause}") from error
        if size > limit:
            raise BatchTooLarge(codec, len(payload), limit)
        return out[:size]
    finally:
        if size > STEP:
            out.madvise(mmap.MADV_DONTNEED)


def _bounded(codec: str, original: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """``original`` (aiokafka's decode function of ``codec``), bounded while a batch of a
    bounded topic is read on this thread, and unchanged otherwise."""

    def decode(payload: Any) -> bytes:
        limit = getattr(_local, "limit", None)
        if limit is None:
            return original(payload)
        if codec == "gzip":
            return gzip_decode(payload, limit)
        if codec == "snappy":
            return snappy_decode(payload, limit)
        return frame_decode(codec, payload, limit)

    decode.__name__ = f"bounded_{codec}_decode"
    decode.__wrapped__ = original  # type: ignore[attr-defined]
    return decode


# --------------------------------------------------------------------------- the batches


class _Refused:
    """The record handed over in place of a refused batch's records."""

    __slots__ = ("checksum", "headers", "key", "offset", "timestamp", "timestamp_type", "value")

    def __init__(self, offset: int, timestamp: int, timestamp_type: int, value: RefusedBatch) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.timestamp_type = timestamp_type
        self.key = None
        self.value = value
        self.headers: list = []
        self.checksum = None


class _BoundedBatch:
    """One record batch of a bounded topic: its records, or the stand-in for all of them."""

    def __init__(self, batch: Any, topic: str, partition: int, limit: int) -> None:
        self._batch = batch
        self._topic = topic
        self._partition = partition
        self._limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # aiokafka reads a control batch's marker this way
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        # A v2 batch decompresses in __iter__ and returns itself: nothing is added per
        # record. A legacy (v0/v1) one may be a generator that decompresses at its first.
        _local.limit = self._limit
        try:
            records = iter(self._batch)
        except BatchTooLarge as refusal:
            return iter((self._stand_in(refusal),))
        except _unreadable() as error:
            return iter((self._unreadable(error),))
        finally:
            _local.limit = None
        if records is self._batch:
            return records
        return self._lazily(records)

    def _lazily(self, records: Iterator[Any]) -> Iterator[Any]:
        _local.limit = self._limit
        try:
            first = next(records, None)
        except BatchTooLarge as refusal:
            yield self._stand_in(refusal)
            return
        except _unreadable() as error:
            yield self._unreadable(error)
            return
        finally:
            _local.limit = None
        if first is not None:
            yield first
            yield from records

    def _unreadable(self, error: BaseException) -> _Refused:
        codec = CODECS.get(getattr(self._batch, "compression_type", -1), "unknown")
        return self._stand_in(
            BatchTooLarge(codec, 0, self._limit),
            reason="unreadable",
            cause=f"{type(error).__name__}: {error}",
        )

    def _stand_in(self, refusal: BatchTooLarge, reason: str = "oversize", cause: str = "") -> _Refused:
        batch = self._batch
        last = batch.next_offset - 1
        base = getattr(batch, "base_offset", last)
        timestamp = getattr(batch, "max_timestamp", None)
        if timestamp is None or timestamp < 0:
            timestamp = getattr(batch, "timestamp", None) or -1
        return _Refused(
            last,
            timestamp,
            getattr(batch, "timestamp_type", 0) or 0,
            RefusedBatch(
                topic=self._topic,
                partition=self._partition,
                base_offset=base,
                last_offset=last,
                compressed_size=refusal.compressed,
                codec=refusal.codec,
                limit=refusal.limit,
                reason=reason,
                cause=cause[:300],
            ),
        )


class _BoundedRecords:
    """aiokafka's ``MemoryRecords`` of one partition, its batches wrapped."""

    def __init__(self, records: Any, topic: str, partition: int, limit: int) -> None:
        self._records = records
        self._topic = topic
        self._partition = partition
        self._limit = limit

    def has_next(self) -> bool:
        return self._records.has_next()

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is None:
            return None
        return _BoundedBatch(batch, self._topic, self._partition, self._limit)

    def size_in_bytes(self) -> int:
        return self._records.size_in_bytes()


def install() -> None:
    """Hook the bound into aiokafka (idempotent): see the module docstring."""
    global _installed
    with _lock:
        if _installed:
            return
        import aiokafka.consumer.fetcher as fetcher
        import aiokafka.record.default_records as py_default
        import aiokafka.record.legacy_records as py_legacy

        modules: list[Any] = [py_default, py_legacy]
        try:
            import aiokafka.record._crecords.default_records as c_default
            import aiokafka.record._crecords.legacy_records as c_legacy

            modules += [c_default, c_legacy]
        except ImportError:  # built without its C extension
            pass
        for module in modules:
            for codec in ("gzip", "snappy", "lz4", "zstd"):
                name = f"{codec}_decode"
                current = getattr(module, name, None)
                if current is not None and not hasattr(current, "__wrapped__"):
                    setattr(module, name, _bounded(codec, current))

        original = fetcher.PartitionRecords

        class BoundedPartitionRecords(original):  # type: ignore[misc, valid-type]
            def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
                limit = _limits.get(tp.topic)
                if limit is not None:
                    records = _BoundedRecords(records, tp.topic, tp.partition, limit)
                super().__init__(tp, records, *args, **kwargs)

        fetcher.PartitionRecords = BoundedPartitionRecords
        _installed = True
