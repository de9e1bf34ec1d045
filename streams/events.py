"""The crossing event contract (schemas/crossing_event.v1.json) and its validation.

``decode_event`` is the one gate every message passes. It never raises anything but
``InvalidEvent``, whose ``reason`` is one of a small fixed set (it becomes a metric label
and a dead-letter header) and whose ``detail`` says what exactly was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final

import fastjsonschema
import pycountry

from streams.checkpoints import checkpoints
from streams.schemas import load_json

SCHEMA_VERSION: Final = 1

#: Document codes of ICAO Doc 9303 that are not ISO 3166-1 countries but do appear on
#: travel documents: stateless persons and refugees cross borders too.
ICAO_SPECIAL_NATIONALITIES: Final = frozenset({"XXA", "XXB", "XXC", "XXX"})

#: Every reason ``InvalidEvent`` can carry; bounded so it is safe as a metric label.
REASONS: Final = (
    "malformed_json",
    "not_an_object",
    "unsupported_version",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "unknown_enum",
    "bad_event_id",
    "bad_timestamp",
    "future_timestamp",
    "bad_nationality",
    "unknown_checkpoint",
    "schema_violation",
    "too_late",
)

#: Nothing this system counts happened before the Unix epoch; older stamps are broken clocks.
EARLIEST_OCCURRED_AT: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: Events stamped further ahead of the wall clock than this are a broken clock, not news.
MAX_CLOCK_SKEW: Final = timedelta(hours=24)


class InvalidEvent(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    event_id: str
    checkpoint_id: str
    direction: str
    occurred_at: datetime
    nationality: str
    purpose: str
    mode: str
    outcome: str
    version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "event_id": self.event_id,
            "checkpoint_id": self.checkpoint_id,
            "direction": self.direction,
            "occurred_at": self.occurred_at.isoformat(),
            "nationality": self.nationality,
            "purpose": self.purpose,
            "mode": self.mode,
            "outcome": self.outcome,
        }


@cache
def _schema_validator() -> Any:
    return fastjsonschema.compile(load_json("crossing_event.v1.json"))


@cache
def known_nationalities() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.countries) | ICAO_SPECIAL_NATIONALITIES


def _reason_for_schema_error(error: fastjsonschema.JsonSchemaValueException) -> str:
    field = error.path[1] if len(error.path) > 1 else None
    rule = error.rule
    if field == "version":
        return "unsupported_version"
    if rule == "required":
        return "missing_field"
    if rule == "additionalProperties":
        return "unknown_field"
    if rule == "type":
        return "wrong_type"
    if rule in {"enum", "const"}:
        return "unknown_enum"
    if field == "occurred_at":
        return "bad_timestamp"
    if field == "nationality":
        return "bad_nationality"
    if field == "event_id":
        return "bad_event_id"
    if field == "checkpoint_id":
        return "unknown_checkpoint"
    return "schema_violation"


def parse_occurred_at(raw: str) -> datetime:
    """RFC 3339 with an explicit offset; a naive time has no defined instant, so it fails."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidEvent("bad_timestamp", f"occurred_at {raw!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("bad_timestamp", f"occurred_at {raw!r} has no UTC offset")
    try:
        in_utc = parsed.astimezone(UTC)  # year 1 at +14:00 is before year 1 in UTC
    except OverflowError:
        raise InvalidEvent("bad_timestamp", f"occurred_at {raw!r} is outside the calendar") from None
    if in_utc < EARLIEST_OCCURRED_AT:
        raise InvalidEvent("bad_timestamp", f"occurred_at {raw!r} is before {EARLIEST_OCCURRED_AT:%Y}")
    return parsed


def validate_payload(payload: Any, *, now: datetime | None = None) -> CrossingEvent:
    """Check a decoded JSON value against the schema and the reference data."""
    if not isinstance(payload, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(payload).__name__}")
    try:
        _schema_validator()(payload)
    except fastjsonschema.JsonSchemaValueException as error:
        raise InvalidEvent(_reason_for_schema_error(error), error.message) from None
    occurred_at = parse_occurred_at(payload["occurred_at"])
    now = now or datetime.now(UTC)
    if occurred_at - now > MAX_CLOCK_SKEW:
        raise InvalidEvent(
            "future_timestamp",
            f"occurred_at {payload['occurred_at']} is ahead of now ({now:%Y-%m-%dT%H:%MZ})",
        )
    if payload["nationality"] not in known_nationalities():
        raise InvalidEvent("bad_nationality", f"{payload['nationality']!r} is not an ISO 3166-1 alpha-3 code")
    if payload["checkpoint_id"] not in checkpoints():
        raise InvalidEvent(
            "unknown_checkpoint", f"{payload['checkpoint_id']!r} is not in schemas/checkpoints.json"
        )
    return CrossingEvent(
        event_id=payload["event_id"],
        checkpoint_id=payload["checkpoint_id"],
        direction=payload["direction"],
        occurred_at=occurred_at,
        nationality=payload["nationality"],
        purpose=payload["purpose"],
        mode=payload["mode"],
        outcome=payload["outcome"],
        version=payload["version"],
    )


def decode_event(raw: bytes | None, *, now: datetime | None = None) -> CrossingEvent:
    """Bytes off the wire to a valid event, or ``InvalidEvent`` with a reason."""
    if raw is None:
        raise InvalidEvent("malformed_json", "message has no value (tombstone)")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent("malformed_json", str(error)) from None
    return validate_payload(payload, now=now)
