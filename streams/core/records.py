"""What the core consumes: a source record, as Kafka (or a file replay) delivers it."""

from __future__ import annotations

from typing import NamedTuple


class SourceRecord(NamedTuple):
    """One message of the events topic. A NamedTuple: built once per message, cheaply."""

    partition: int
    offset: int
    #: Broker (or producer create) timestamp in milliseconds; alerts raised on its arrival
    #: carry it as ``raised_at``, which keeps them deterministic on replay.
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    #: A copy the worker re-keyed to its checkpoint's partition (header ``crossings.rekeyed.from``):
    #: counted where it is, never forwarded again.
    rekeyed: bool = False


#: Header on a re-keyed copy: where the original record was, as ``<partition>/<offset>``.
REKEYED_HEADER = "crossings.rekeyed.from"


def is_rekeyed(headers: object) -> bool:
    """Whether Kafka headers (pairs of name and bytes) mark a re-keyed copy."""
    return bool(headers) and any(name == REKEYED_HEADER for name, _ in headers)  # type: ignore[attr-defined]


class RefusedBatch(bytes):
    """The value of the one record a reader hands over in place of a record batch it refused
    to decompress (over ``CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES``) or could not
    (``streams.ops.bounded_batches``).

    Empty bytes, so everything that passes a value along passes it unchanged; a producer
    cannot make one (it is a Python object, not bytes on the wire). Its record sits at the
    batch's last offset, so dead-lettering it moves the partition past the whole batch."""

    topic: str
    partition: int
    base_offset: int
    last_offset: int
    #: Bytes of the batch's compressed records, and their codec.
    compressed_size: int
    codec: str
    #: The bound it passed.
    limit: int
    #: ``oversize`` (over the bound) or ``unreadable`` (could not be decompressed: ``cause``).
    reason: str
    cause: str

    def __new__(
        cls,
        *,
        topic: str,
        partition: int,
        base_offset: int,
        last_offset: int,
        compressed_size: int,
        codec: str,
        limit: int,
        reason: str = "oversize",
        cause: str = "",
    ) -> RefusedBatch:
        value = super().__new__(cls, b"")
        value.topic = topic
        value.partition = partition
        value.base_offset = base_offset
        value.last_offset = last_offset
        value.compressed_size = compressed_size
        value.codec = codec
        value.limit = limit
        value.reason = reason
        value.cause = cause
        return value

    def __reduce__(self) -> tuple:  # pickled with its fields (bytes would drop them)
        return (_refused_batch, (self.describe(),))

    def describe(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "base_offset": self.base_offset,
            "last_offset": self.last_offset,
            "compressed_size": self.compressed_size,
            "codec": self.codec,
            "limit": self.limit,
            "reason": self.reason,
            "cause": self.cause,
        }


def _refused_batch(fields: dict) -> RefusedBatch:
    return RefusedBatch(**fields)
