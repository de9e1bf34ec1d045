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
