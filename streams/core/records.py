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
