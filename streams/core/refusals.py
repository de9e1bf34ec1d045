"""Why the core refuses a record: the dead-letter reasons it gives and their wording.

Each detail says what was wrong and what to do about it, since an operator reads it in a
dead letter, far from the code.
"""

from __future__ import annotations

from datetime import UTC, datetime

from streams.core.records import RefusedBatch
from streams.domain.event import CrossingEvent, InvalidEvent

#: Reason of a message too large to be an event, or whose forwarded copy would be.
OVERSIZE = "oversize"
#: Reason of a record an operator moved aside (``crossings quarantine skip``).
SKIPPED = "skipped"
#: A skipped record's dead letter keeps this much of it (the original stays in the events
#: topic at its offset until the topic's retention).
SKIPPED_KEEP_BYTES = 1024
#: What a forwarded copy adds besides its key: the header's name and ``<partition>/<offset>``.
FORWARD_HEADER_BYTES = 64


def oversize(size: int, limit: int) -> InvalidEvent:
    return InvalidEvent(
        OVERSIZE,
        f"message value of {size:,} bytes, over the {limit:,} bytes an event may take "
        "(CROSSINGS_MAX_EVENT_BYTES): not decoded",
    )


def batch_refused(batch: RefusedBatch) -> InvalidEvent:
    """A record batch the reader did not decompress (``streams.ops.bounded_batches``):
    over the bound (``oversize``) or not decompressible at all (``unreadable``)."""
    where = (
        f"record batch at offsets {batch.base_offset}..{batch.last_offset} of {batch.topic} "
        f"partition {batch.partition}"
    )
    kept = "not read, its records are in the topic at those offsets until its retention"
    if batch.reason != OVERSIZE:
        return InvalidEvent(
            batch.reason,
            f"{where}, {batch.codec}-compressed, could not be decompressed ({batch.cause}): {kept}",
        )
    return InvalidEvent(
        OVERSIZE,
        f"{where}: {batch.compressed_size:,} bytes {batch.codec}-compressed, decompressing past "
        f"the {batch.limit:,} bytes a batch may take (CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES): {kept}",
    )


def forward_oversize(checkpoint_id: str, size: int, limit: int) -> InvalidEvent:
    return InvalidEvent(
        OVERSIZE,
        f"its copy for checkpoint {checkpoint_id}'s partition would take {size:,} bytes "
        f"with its key and header, over the {limit:,} bytes an event may take "
        "(CROSSINGS_MAX_EVENT_BYTES): not forwarded, send it keyed by its checkpoint_id",
    )


def skipped() -> InvalidEvent:
    return InvalidEvent(
        SKIPPED, "moved aside by an operator (crossings quarantine skip) while its partition was quarantined"
    )


def conflict(event_id: str, earlier: str, digest: str) -> InvalidEvent:
    return InvalidEvent(
        "duplicate_conflict",
        f"event_id {event_id} was counted with digest {earlier}; this message reuses it for a "
        f"different crossing (digest {digest}): not counted, check the producer's ids",
    )


def too_late(event: CrossingEvent, stream_ts: float, horizon: float) -> InvalidEvent:
    now = datetime.fromtimestamp(stream_ts, UTC)
    return InvalidEvent(
        "too_late",
        f"occurred_at {event.occurred_at.isoformat()} is {now - event.occurred_at} behind the "
        f"partition's stream time {now.isoformat()}, past the {horizon / 3600:g} h "
        "de-duplication horizon",
    )
