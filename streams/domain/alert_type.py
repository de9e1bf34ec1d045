"""The alert as a typed value, generated from its one definition (``rows.ALERT``).

``crossings notify`` reads every message of the alerts topic into :class:`Alert`; the
struct's fields, types and optionality are those of the definition's wire fields, so a
field added to ``ALERT`` reaches notify without being written out again here. Decoding
checks the types (a ``ratio`` that is text is refused); the JSON Schema, checked first,
keeps the enums and patterns. Fields a newer worker adds are ignored, and a nullable field
an older worker did not write reads as None, so notify reads messages of either version.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from streams.domain.rows import ALERT, Column, wire_fields


class Driver(msgspec.Struct, frozen=True, kw_only=True):
    """One group that moved the most (an element of ``drivers``)."""

    nationality: str
    purpose: str
    observed: int
    expected: float
    delta: float


#: Wire types of the definition's column types. Times and days stay the ISO text the
#: worker wrote: notify passes them on to Alertmanager as they are.
_WIRE_TYPES: Final[dict[str, Any]] = {
    "string": str,
    "int16": int,
    "int32": int,
    "int64": int,
    "float64": float,
    "timestamp[us]": str,
    "timestamp[ms]": str,
    "date": str,
    "list<float64>": list[float],
    "list<string>": list[str],
}
#: Columns whose message value is structured (stored as JSON text in the lake).
_STRUCTURED: Final[dict[str, Any]] = {"drivers": list[Driver]}


def _field(column: Column) -> tuple[str, Any] | tuple[str, Any, None]:
    wire = _STRUCTURED[column.name] if column.json else _WIRE_TYPES[column.type]
    if column.nullable:
        return (column.name, wire | None, None)
    return (column.name, wire)


#: An alert message (schemas/alert.v1.json), one attribute per wire field of ``rows.ALERT``.
Alert: Final = msgspec.defstruct(
    "Alert",
    [_field(c) for c in wire_fields(ALERT)],
    frozen=True,
    kw_only=True,
    module=__name__,
)

_DECODER: Final = msgspec.json.Decoder(Alert)


def decode_alert(value: bytes) -> Any:
    """The message as an :data:`Alert`; ``msgspec.ValidationError`` naming the field when a
    value has the wrong type or a required one is missing."""
    return _DECODER.decode(value)


def alert_from_dict(message: dict[str, Any]) -> Any:
    """An :data:`Alert` from the dict ``alert_message`` builds (or a test writes)."""
    return msgspec.convert(message, Alert)


def alert_to_dict(alert: Any) -> dict[str, Any]:
    """Back to the message's JSON shape."""
    return msgspec.to_builtins(alert)
