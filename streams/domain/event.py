"""The crossing event contract (schemas/crossing_event.v1.json) and its validation.

``EventDecoder.decode`` is the one gate every message passes. It never raises anything
but ``InvalidEvent``, whose ``reason`` is one of a small fixed set (it becomes a metric
label and a dead-letter header) and whose ``detail`` says what exactly was wrong.

Two paths, one verdict. Almost every message is valid, so it is first decoded by a
msgspec ``Struct`` that encodes the JSON Schema's types, enums and patterns (about 15x
faster than ``json`` + fastjsonschema). Anything that struct refuses goes through the
reference path, ``json.loads`` + the compiled JSON Schema, which names the reason. The
checks after the schema (timestamp, nationality, registry) are shared code. So an
invalid message always gets the reference path's error, and the fast path may only ever
accept what the reference path accepts (a property test holds the two together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Final, Literal
from zlib import crc32

import fastjsonschema
import msgspec
import pycountry

from streams.domain import rows
from streams.domain.registry import Registry
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
    "duplicate_conflict",
    "oversize",
    "unreadable",
    "skipped",
)

#: Nothing this system counts happened before the Unix epoch; older stamps are broken clocks.
EARLIEST_OCCURRED_AT: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: Events stamped further ahead than this of the moment they reached Kafka are a broken
#: clock, not news: accepted, one such event would become its partition's stream time.
MAX_CLOCK_SKEW: Final = timedelta(minutes=15)


class InvalidEvent(ValueError):
    def __init__(self, reason: str, detail: str, *, checkpoint_id: str | None = None) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        #: For ``unknown_checkpoint``: the well-formed id that is not registered (yet).
        self.checkpoint_id = checkpoint_id


class CrossingEvent(msgspec.Struct, frozen=True, gc=False):
    """A valid crossing. A Struct, not a dataclass: built once per event, 7x cheaper."""

    event_id: str
    checkpoint_id: str
    direction: str
    occurred_at: datetime
    nationality: str
    purpose: str
    mode: str
    outcome: str
    #: ``occurred_at`` as Unix seconds: the core's clock, computed once at decode time.
    occurred_ts: float
    version: int = SCHEMA_VERSION


def event_digest(event: CrossingEvent) -> str:
    """What an event says, as 8 hex digits (CRC-32): two copies of one crossing have the
    same digest whatever their JSON spelling or UTC offset; an id reused for another
    crossing a different one (but for a 1 in 4 billion chance: it is a check, not a seal)."""
    canonical = (
        f"{event.checkpoint_id}|{event.direction}|{round(event.occurred_ts * 1_000_000)}|"
        f"{event.nationality}|{event.purpose}|{event.mode}|{event.outcome}"
    )
    return f"{crc32(canonical.encode()):08x}"


# -- the fast path: the schema as a msgspec Struct ----------------------------------------

_SCHEMA: Final = load_json("crossing_event.v1.json")
_PROPS: Final = _SCHEMA["properties"]


def _pattern(name: str, **extra: Any) -> Any:
    # fastjsonschema anchors "$" at the very end; Python's "$" also matches before a final
    # newline, which would let "abc\n" through the fast path alone.
    pattern = _PROPS[name]["pattern"].removesuffix("$") + r"\Z"
    return Annotated[str, msgspec.Meta(pattern=pattern, **extra)]


#: Checked by membership in the registry and ISO 3166 (patterns applied ahead), not here.
_BY_MEMBERSHIP: Final = frozenset({"checkpoint_id", "nationality"})


def _annotation(name: str) -> Any:
    """The fast path's type of wire field ``name``: its JSON Schema's const, enum or pattern."""
    prop = _PROPS[name]
    if "const" in prop:
        return Literal[prop["const"]]
    if "enum" in prop:
        return Literal[tuple(prop["enum"])]
    if "pattern" not in prop or name in _BY_MEMBERSHIP:
        return str
    lengths = {"min_length": prop.get("minLength"), "max_length": prop.get("maxLength")}
    return _pattern(name, **{k: v for k, v in lengths.items() if v is not None})


#: The message as the fast path decodes it: one field per wire field of ``rows.EVENT``.
_WireEvent: Final = msgspec.defstruct(
    "_WireEvent",
    [(c.name, _annotation(c.name)) for c in rows.wire_fields(rows.EVENT)],
    forbid_unknown_fields=True,
)

_FAST_DECODER: Final = msgspec.json.Decoder(_WireEvent)

#: The fields ``EventDecoder._checked`` takes, in its order (every wire field but the version).
_CHECKED_FIELDS: Final = tuple(c.name for c in rows.wire_fields(rows.EVENT) if c.name != "version")


def _matching(name: str, values: Iterable[str]) -> frozenset[str]:
    pattern = re.compile(_PROPS[name]["pattern"].removesuffix("$") + r"\Z")
    return frozenset(value for value in values if pattern.match(value))


# -- the reference path -------------------------------------------------------------------


@cache
def _schema_validator() -> Any:
    return fastjsonschema.compile(_SCHEMA)


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


class EventDecoder:
    """Bytes off the wire to a valid event, against a given checkpoint registry."""

    def __init__(self, registry: Registry, max_clock_skew: timedelta = MAX_CLOCK_SKEW) -> None:
        self.registry = registry
        self.max_clock_skew = max_clock_skew
        self.nationalities = known_nationalities()
        # What the fast path may accept: members that also match the schema's patterns.
        self._fast_checkpoints = _matching("checkpoint_id", registry)
        self._fast_nationalities = _matching("nationality", self.nationalities)

    def decode_all(
        self, values: Sequence[bytes | None], received: Sequence[float]
    ) -> list[CrossingEvent | InvalidEvent]:
        """Each value's event, or the ``InvalidEvent`` it was refused with; never raises.

        ``received[i]`` is when value ``i`` reached Kafka (Unix seconds): the broker
        timestamp, which makes the future check the same live and in a replay.
        The batch form of :meth:`decode`, for the hot path: the checks after the schema
        are inlined and compare Unix seconds, conservatively (a stamp within a second of
        a limit takes the reference path), so it accepts exactly what ``decode`` accepts.
        """
        fast = _FAST_DECODER.decode
        parse = datetime.fromisoformat
        nationalities, registry = self._fast_nationalities, self._fast_checkpoints
        skew = self.max_clock_skew.total_seconds() - 1.0
        earliest = EARLIEST_OCCURRED_AT.timestamp() + 1.0
        out: list[CrossingEvent | InvalidEvent] = []
        append = out.append
        for raw, arrived in zip(values, received, strict=True):
            try:
                wire = fast(raw)  # type: ignore[arg-type]
                occurred_at = parse(wire.occurred_at)
                ts = occurred_at.timestamp() if occurred_at.tzinfo is not None else -1.0
                if (
                    earliest <= ts <= arrived + skew
                    and wire.nationality in nationalities
                    and wire.checkpoint_id in registry
                ):
                    append(
                        CrossingEvent(
                            wire.event_id,
                            wire.checkpoint_id,
                            wire.direction,
                            occurred_at,
                            wire.nationality,
                            wire.purpose,
                            wire.mode,
                            wire.outcome,
                            ts,
                        )
                    )
                    continue
            except Exception:  # every refusal is judged again, by decode() below
                pass
            try:
                append(self.decode(raw, datetime.fromtimestamp(arrived, UTC)))
            except InvalidEvent as error:
                append(error)
            except Exception as error:  # a decoder bug must not stop the stream
                append(InvalidEvent("schema_violation", f"{type(error).__name__}: {error}"))
        return out

    def decode(self, raw: bytes | None, now: datetime) -> CrossingEvent:
        """The event in ``raw``, or ``InvalidEvent``; ``now`` (when it reached Kafka) bounds how
        far ahead it may be stamped."""
        if raw is None:
            raise InvalidEvent("malformed_json", "message has no value (tombstone)")
        try:
            wire = _FAST_DECODER.decode(raw)
        except Exception:  # any refusal (msgspec raises UnicodeDecodeError too): the reference decides
            return self._reference(raw, now)
        if (
            wire.checkpoint_id not in self._fast_checkpoints
            or wire.nationality not in self._fast_nationalities
        ):
            return self._reference(raw, now)
        try:
            return self._checked(*(getattr(wire, name) for name in _CHECKED_FIELDS), now)
        except InvalidEvent:  # refusals always carry the reference path's words
            return self._reference(raw, now)

    def validate_payload(self, payload: Any, now: datetime) -> CrossingEvent:
        """Check a decoded JSON value against the schema and the reference data."""
        if not isinstance(payload, dict):
            raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(payload).__name__}")
        try:
            _schema_validator()(payload)
        except fastjsonschema.JsonSchemaValueException as error:
            raise InvalidEvent(_reason_for_schema_error(error), error.message) from None
        return self._checked(*(payload[name] for name in _CHECKED_FIELDS), now)

    def _reference(self, raw: bytes, now: datetime) -> CrossingEvent:
        try:
            payload = json.loads(raw)
        except RecursionError:
            raise InvalidEvent("malformed_json", "nested too deeply to parse") from None
        except ValueError as error:  # bad JSON or UTF-8, or an integer of over 4,300 digits
            raise InvalidEvent("malformed_json", str(error)[:500]) from None
        return self.validate_payload(payload, now)

    def _checked(
        self,
        event_id: str,
        checkpoint_id: str,
        direction: str,
        occurred_raw: str,
        nationality: str,
        purpose: str,
        mode: str,
        outcome: str,
        now: datetime,
    ) -> CrossingEvent:
        occurred_at = parse_occurred_at(occurred_raw)
        if occurred_at - now > self.max_clock_skew:
            raise InvalidEvent(
                "future_timestamp",
                f"occurred_at {occurred_raw} is {occurred_at - now} ahead of when it reached Kafka "
                f"({now.isoformat()}); a clock may be at most {self.max_clock_skew} ahead",
            )
        if nationality not in self.nationalities:
            raise InvalidEvent("bad_nationality", f"{nationality!r} is not an ISO 3166-1 alpha-3 code")
        if checkpoint_id not in self.registry:
            raise InvalidEvent(
                "unknown_checkpoint",
                f"{checkpoint_id!r} is not in the checkpoint registry (CROSSINGS_CHECKPOINTS)",
                checkpoint_id=checkpoint_id,
            )
        return CrossingEvent(
            event_id,
            checkpoint_id,
            direction,
            occurred_at,
            nationality,
            purpose,
            mode,
            outcome,
            occurred_at.timestamp(),
        )
