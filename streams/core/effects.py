"""What processing produces between two commits, for the sinks, Kafka and metrics.

The core never writes, sends or counts anything itself: it accumulates these effects,
and the commit protocol hands them over (Parquet rows to the lake, alerts and dead
letters to the outputs transaction, metric deltas to whoever serves metrics).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.core.records import RefusedBatch, SourceRecord
from streams.core.store import Change
from streams.domain.event import CrossingEvent


@dataclass
class EventColumns:
    """Rows of one events folder (local day x checkpoint), column by column for Arrow."""

    event_id: list[str] = field(default_factory=list)
    direction: list[str] = field(default_factory=list)
    occurred_at_us: list[int] = field(default_factory=list)
    local_hour: list[int] = field(default_factory=list)
    nationality: list[str] = field(default_factory=list)
    purpose: list[str] = field(default_factory=list)
    mode: list[str] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    kafka_partition: list[int] = field(default_factory=list)
    kafka_offset: list[int] = field(default_factory=list)
    kafka_timestamp_ms: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_id)


@dataclass
class CountedRows:
    """One folder's counted records as the core keeps them until the commit: the records,
    their events and the events' local hours, in three lists (three appends per record
    allocate nothing the garbage collector has to track, unlike a tuple per record)."""

    records: list[SourceRecord] = field(default_factory=list)
    events: list[CrossingEvent] = field(default_factory=list)
    hours: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


def event_columns(rows: CountedRows) -> EventColumns:
    """One folder's rows, column by column (in offset order, as they were counted)."""
    events, records = rows.events, rows.records
    return EventColumns(
        event_id=[e.event_id for e in events],
        direction=[e.direction for e in events],
        occurred_at_us=[round(e.occurred_ts * 1_000_000) for e in events],
        local_hour=rows.hours,
        nationality=[e.nationality for e in events],
        purpose=[e.purpose for e in events],
        mode=[e.mode for e in events],
        outcome=[e.outcome for e in events],
        kafka_partition=[r.partition for r in records],
        kafka_offset=[r.offset for r in records],
        kafka_timestamp_ms=[r.timestamp_ms for r in records],
    )


@dataclass(frozen=True)
class DeadLetter:
    """An invalid message: the original bytes go to the dead-letter topic, the reason in
    headers. Bytes beyond the dead-letter bound are cut (:func:`dead_letter`): then
    ``original_size`` and ``sha256`` say what the whole message was."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    #: Key plus value bytes of the original message, when they were cut (else None).
    original_size: int | None = None
    #: SHA-256 (hex) of the original value, when it was cut.
    sha256: str | None = None
    #: For a record batch that was not read (over the decompression bound): which one.
    batch: RefusedBatch | None = None


def dead_letter(
    partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str, detail: str, limit: int
) -> DeadLetter:
    """A dead letter whose key and value together take at most ``limit`` bytes: a message
    larger than that keeps its first bytes (key first), its size and its digest, so the
    dead-letter topic always takes it and a commit never fails on it."""
    size = len(key or b"") + len(value or b"")
    if size <= limit:
        return DeadLetter(partition, offset, key, value, reason, detail)
    digest = hashlib.sha256(value or b"").hexdigest()
    kept_key = None if key is None else key[: limit // 2]
    kept_value = None if value is None else value[: limit - len(kept_key or b"")]
    return DeadLetter(partition, offset, kept_key, kept_value, reason, detail, size, digest)


@dataclass(frozen=True)
class Forward:
    """A valid event that arrived on another checkpoint's partition (a producer with a null
    or wrong key): sent on, with its checkpoint as key, to the partition that owns it, in
    the same transaction that commits the offset it was read at."""

    partition: int
    offset: int
    home: int
    checkpoint_id: str
    timestamp_ms: int
    value: bytes


@dataclass
class MetricDeltas:
    processed: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    #: Dead-lettered events of well-formed but unregistered checkpoint ids, by id.
    unknown_checkpoints: Counter[str] = field(default_factory=Counter)
    #: Events forwarded to their checkpoint's own partition, by checkpoint.
    rekeyed: Counter[str] = field(default_factory=Counter)
    #: Already applied (at or below the stored offset) and skipped on re-delivery.
    redelivered: int = 0
    alerts_raised: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    alert_messages: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class Effects:
    first_offset: int | None = None
    last_offset: int | None = None
    #: Counted records by folder (local day, checkpoint), in offset order.
    events: dict[tuple[date, str], CountedRows] = field(default_factory=dict)
    #: ``alert_type.Alert`` structs (generated, so typed ``Any``), in the order raised.
    alerts: list[Any] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    #: (checkpoint_id, local_day) whose counts changed: their snapshots are rewritten.
    days_touched: set[tuple[str, date]] = field(default_factory=set)
    metrics: MetricDeltas = field(default_factory=MetricDeltas)


@dataclass
class DailySnapshot:
    """All (direction, nationality, purpose, count) rows of one checkpoint-day in a partition."""

    checkpoint_id: str
    local_day: date
    rows: list[tuple[str, str, str, int]]
    as_of_s: float


@dataclass
class CommitBatch:
    """Everything one commit makes durable, in the order the protocol writes it."""

    partition: int
    commit_seq: int
    first_offset: int | None
    last_offset: int
    events: dict[tuple[date, str], EventColumns]
    alerts: list[Any]  # alert_type.Alert
    snapshots: list[DailySnapshot]
    dead_letters: list[DeadLetter]
    changes: list[Change]
    metrics: MetricDeltas
    expired_buckets: list[int]
    expired_profiles: list[str]
    forwards: list[Forward] = field(default_factory=list)
    #: Publish the appended rows staged so far with this commit's (else stage this one's too).
    publish: bool = True
