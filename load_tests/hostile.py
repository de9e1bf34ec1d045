"""Hostile input for the fuzz run: every kind of bad message, mixed into valid traffic.

:func:`mix` takes valid scenario traffic and interleaves ``bad`` hostile messages with
it, seeded and deterministic (the same arguments give the same bytes). Each outgoing
message carries its partition and what the worker must do with it: the dead-letter
reason it expects, or ``None`` (counted once, or dropped as a re-sent duplicate).

Some kinds depend on what was sent before on the same partition, so the mixer follows
each partition's stream time (the time the latest events that came to it agree on:
``streams.domain.clock``, modelled here from its rule) and its recently counted
events; the worker sees the same records in the same order, so its verdicts are known
in advance:

- ``too_late``: stamped further behind the partition's stream time than the
  de-duplication horizon;
- ``stamped_now``: a valid event stamped in the present amid the history (whose records'
  broker timestamps are the moment they were sent, so they cannot bound it): counted on
  its own day; sent only where it makes at most two of the partition's five latest
  counted events, so it must not move the clock, and no later real event is too late;
- ``duplicate_conflict``: the id of a recently counted event, saying something else;
- ``resent_duplicate``: a recently counted event again, byte for byte or spelled
  differently (key order, spaces, the instant in UTC): dropped as a duplicate, counted
  by the duplicates metric, never dead-lettered.

Size limits, each approached from both sides: ``near_event_limit`` (valid events around
``CROSSINGS_MAX_EVENT_BYTES``, keyed right, wrong or not at all: counted, forwarded if their
copy fits, else dead-lettered ``oversize``), ``near_letter_limit`` (non-events whose key and
value together are around ``CROSSINGS_DEAD_LETTER_MAX_BYTES``, under the same three keys:
dead-lettered whole or cut), ``compressed_bomb`` (gzip messages just under and over the
fuzz run's decompression bound, :data:`BATCH_BOUND`: one under is read and dead-lettered
cut, one over is refused with its record batch, named by its offsets), and ``huge_string``
up to the events topic's ``max.message.bytes``. ``null_record`` (neither key nor value) is a
record whose dead letter once made every commit of its partition fail.

The others are judged on the message alone (the decoder's reasons; the unit test
``tests/unit/test_hostile.py`` holds every recipe to ``EventDecoder``'s verdict), or on
its key (``null_key``, ``wrong_key``: the topic is keyed by ``checkpoint_id``), or on its
broker timestamp (``future_timestamp``).
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache

from streams.core.partitioning import partition_for
from streams.core.processor import CoreConfig
from streams.core.refusals import FORWARD_HEADER_BYTES
from streams.domain.registry import load_registry

#: The kinds of bad input, in the order the summary lists them.
KINDS = (
    "deep_nesting",
    "huge_number",
    "invalid_utf8",
    "nul_bytes",
    "huge_string",
    "wrong_type",
    "null_key",
    "wrong_key",
    "empty_value",
    "future_timestamp",
    "too_late",
    "stamped_now",
    "unknown_checkpoint",
    "schema_violation",
    "duplicate_conflict",
    "resent_duplicate",
    "near_event_limit",
    "compressed_bomb",
    "near_letter_limit",
    "null_record",
)
#: Kinds judged on the value alone (their expected reason is the decoder's).
DECODE_KINDS = (
    "deep_nesting",
    "huge_number",
    "invalid_utf8",
    "nul_bytes",
    "huge_string",
    "wrong_type",
    "empty_value",
    "unknown_checkpoint",
    "schema_violation",
)
#: Valid traffic kinds of the scenario (its own invalid messages are left out).
VALID_KINDS = ("valid", "late", "duplicate")

#: The worker's ``CROSSINGS_MAX_EVENT_BYTES`` (its default): a larger value is dead-lettered
#: ``oversize`` undecoded, and a forwarded copy (value, key, header) may not exceed it.
MAX_EVENT_BYTES = CoreConfig().max_event_bytes
#: What a forwarded copy adds besides its key (``streams.core.processor``).
FORWARD_OVERHEAD = FORWARD_HEADER_BYTES
#: Compressed bombs around the decompression bound (a record batch holding more is refused
#: whole, its records one ``oversize`` dead letter), and one as large as the found case
#: (9 MiB), at most this many times a run; the others decompress to 70 KiB..1 MiB (each is
#: built in memory).
FULL_BOMBS = 8
#: The fuzz run's ``CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES``: lower than the default, so
#: bombs on both sides of it stay small enough to build quickly.
BATCH_BOUND = 4 * 2**20
#: The worker's ``CROSSINGS_DEAD_LETTER_MAX_BYTES`` (its default).
DEAD_LETTER_MAX_BYTES = CoreConfig().dead_letter_max_bytes
#: Messages larger than this (uncompressed) are produced in a record batch of their own
#: (the producer flushes before and after), so a refused batch holds nothing else.
ALONE_ABOVE = 256 * 2**10
#: The events topic's default ``max.message.bytes`` (a record batch): the largest message
#: a producer can put on a topic created with the broker's defaults.
TOPIC_MAX_MESSAGE_BYTES = 1_048_588
#: Every this many huge strings, one is as large as the events topic takes.
NEAR_LIMIT_EVERY = 200
#: Re-sent and conflicting copies repeat one of this many recently counted events...
RECENT = 2000
#: ... stamped no further than this behind the partition's stream time (well inside the
#: de-duplication horizon, so they are judged as copies, not as too late).
RECENT_WITHIN_S = 24 * 3600.0
#: The worker's clock agreement window (``streams.domain.clock.AGREEMENT_WINDOW``): an
#: event stamped in the present is sent only where it makes at most two in five.
AGREEMENT = 5


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to produce, and what the worker must do with it."""

    key: bytes | None
    value: bytes | None
    partition: int
    #: "valid" | "late" | "duplicate" (scenario traffic) or one of :data:`KINDS`
    kind: str
    #: The dead-letter reason expected; None: not dead-lettered.
    reason: str | None = None
    #: Explicit record timestamp (ms), or None for the producer's clock.
    timestamp_ms: int | None = None
    #: Which recipe of the kind made it (for the summary and for diagnosis).
    variant: str = ""
    #: Its record batch decompresses past the bound: dead-lettered as a refused batch (no
    #: bytes, headers naming the batch), not as the message.
    refused_batch: bool = False

    @property
    def alone(self) -> bool:
        """Produced in a record batch of its own (see :data:`ALONE_ABOVE`), as is a record
        with neither key nor value (another client sends it)."""
        return (self.key is None and self.value is None) or len(self.value or b"") > ALONE_ABOVE


@dataclass(frozen=True, slots=True)
class Counted:
    """A counted event as the mixer remembers it, to copy or contradict it later."""

    key: bytes
    value: bytes
    event: dict
    ts: float


# --------------------------------------------------------------------------- payloads

_MARK = "\u2063HOSTILE\u2063"  # a string no template holds; its JSON form is replaced by raw bytes
_MARK_JSON = json.dumps(_MARK).encode()


def _with_raw(event: dict, field: str, raw: bytes) -> bytes:
    """``event`` as compact JSON with ``field``'s value replaced by the raw bytes ``raw``."""
    text = json.dumps({**event, field: _MARK}, separators=(",", ":")).encode()
    return text.replace(_MARK_JSON, raw, 1)


def _dumps(event: object) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def _log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _fresh(event: dict, new_id: str, /, **fields: object) -> dict:
    return {**event, "event_id": new_id, **fields}


_BAD_UTF8 = (
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3\x28",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xe2\x28\xa1",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
)
_STRING_FIELDS = ("event_id", "checkpoint_id", "direction", "occurred_at", "nationality", "purpose")
#: What the decoder says when a string field fails its pattern, enum or length.
_FIELD_REASON = {
    "event_id": "bad_event_id",
    "checkpoint_id": "unknown_checkpoint",
    "direction": "unknown_enum",
    "occurred_at": "bad_timestamp",
    "nationality": "bad_nationality",
    "purpose": "unknown_enum",
    "mode": "unknown_enum",
    "outcome": "unknown_enum",
}
_REQUIRED = (
    "version",
    "event_id",
    "checkpoint_id",
    "direction",
    "occurred_at",
    "nationality",
    "purpose",
    "mode",
    "outcome",
)
_BOGUS_CHECKPOINTS = ("zhibek-zholy-2", "shymkent-bazaar", "khorgos-icbc", "tashkent-airport", "xx")


def _largest_value(key: bytes | None, limit: int = TOPIC_MAX_MESSAGE_BYTES) -> int:
    """Length of the largest value whose record batch (alone, no headers) fits ``limit``."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    size = DefaultRecordBatchBuilder.estimate_size_in_bytes
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if size(key, b"x" * mid, []) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


@cache
def _registered() -> frozenset[str]:
    return frozenset(load_registry())


Recipe = Callable[[random.Random, dict, bytes, str], tuple[bytes | None, str, str]]


def deep_nesting(rng: random.Random, event: dict, key: bytes, fresh_id: str) -> tuple[bytes | None, str, str]:
    depth = _log_uniform(rng, 1_200, 100_000)  # always past the recursion limit (1,000)
    variant = rng.randrange(5)
    if variant == 0:
        return b"[" * depth + b"]" * depth, "malformed_json", "arrays"
    if variant == 1:
        return b'{"a":' * depth + b"1" + b"}" * depth, "malformed_json", "objects"
    if variant == 2:
        field = rng.choice(_STRING_FIELDS)
        nested = b"[" * depth + b'"x"' + b"]" * depth
        return _with_raw(_fresh(event, fresh_id), field, nested), "malformed_json", f"in {field}"
    if variant == 3:
        return b"[{" + b'"a":[{' * depth, "malformed_json", "unclosed"
    nested = b'{"b":[' * depth + b"null" + b"]}" * depth
    return _with_raw(_fresh(event, fresh_id), "extra", nested), "malformed_json", "in an extra field"


def huge_number(rng: random.Random, event: dict, key: bytes, fresh_id: str) -> tuple[bytes | None, str, str]:
    digits = _log_uniform(rng, 4_301, 60_000)  # int() refuses more than 4,300 digits
    number = str(rng.randrange(1, 10)).encode() + b"".join(
        str(rng.randrange(10)).encode() for _ in range(min(digits - 1, 64))
    )
    number = (number * (digits // len(number) + 1))[:digits]
    variant = rng.randrange(4)
    if variant == 0:
        return _with_raw(_fresh(event, fresh_id), "version", number), "malformed_json", "version"
    if variant == 1:
        return number, "malformed_json", "alone"
    if variant == 2:
        field = rng.choice(_STRING_FIELDS)
        return _with_raw(_fresh(event, fresh_id), field, b"-" + number), "malformed_json", f"in {field}"
    return _with_raw(_fresh(event, fresh_id), "count", number), "malformed_json", "in an extra field"


def invalid_utf8(rng: random.Random, event: dict, key: bytes, fresh_id: str) -> tuple[bytes | None, str, str]:
    bad = rng.choice(_BAD_UTF8)
    variant = rng.randrange(3)
    if variant == 0:
        field = rng.choice(_STRING_FIELDS)
        text = str(event[field]).encode()
        at = rng.randrange(len(text) + 1)
        raw = b'"' + text[:at] + bad + text[at:] + b'"'
        return _with_raw(_fresh(event, fresh_id), field, raw), "malformed_json", f"in {field}"
    if variant == 1:
        return bad + _dumps(_fresh(event, fresh_id)), "malformed_json", "before the object"
    raw = _dumps(_fresh(event, fresh_id))
    return raw[:-1] + b',"note":"' + bad + b'"}', "malformed_json", "in an extra field"


def nul_bytes(rng: random.Random, event: dict, key: bytes, fresh_id: str) -> tuple[bytes | None, str, str]:
    variant = rng.randrange(6)
    if variant == 0:
        return b"\x00" * rng.randrange(1, 4096), "malformed_json", "only NULs"
    if variant == 1:
        field = rng.choice(_STRING_FIELDS)
        text = str(event[field]).encode()
        at = rng.randrange(len(text) + 1)
        raw = b'"' + text[:at] + b"\x00" + text[at:] + b'"'
        return _with_raw(_fresh(event, fresh_id), field, raw), "malformed_json", f"raw NUL in {field}"
    if variant == 2:
        field = rng.choice(_STRING_FIELDS)
        text = str(event[field])
        at = rng.randrange(len(text) + 1)
        value = _dumps(_fresh(event, fresh_id, **{field: text[:at] + "\x00" + text[at:]}))
        return value, _FIELD_REASON[field], f"escaped NUL in {field}"
    if variant == 3:
        return _dumps(_fresh(event, fresh_id)) + b"\x00", "malformed_json", "after the object"
    if variant == 4:
        return b"\x00" + _dumps(_fresh(event, fresh_id)), "malformed_json", "before the object"
    return _dumps({**_fresh(event, fresh_id), "\x00": 1}), "unknown_field", "NUL as a field name"


class _HugeStrings:
    """Huge strings; every :data:`NEAR_LIMIT_EVERY`-th one (the first included) as large as
    the events topic takes a message."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(
        self, rng: random.Random, event: dict, key: bytes, fresh_id: str
    ) -> tuple[bytes | None, str, str]:
        near_limit = self.made % NEAR_LIMIT_EVERY == 0
        self.made += 1
        size = 0 if near_limit else _log_uniform(rng, 1_000, 256_000)
        variant = rng.randrange(7)
        if variant == 6:
            value, reason, name = None, "not_an_object", "a JSON string"
            template = b'"' + b"%s" + b'"'
        else:
            name = ("event_id", "checkpoint_id", "direction", "occurred_at", "nationality", "comment")[
                variant
            ]
            reason = _FIELD_REASON.get(name, "unknown_field")
            template = _with_raw(_fresh(event, fresh_id), name, b'"%s"')
        if near_limit:
            size = _largest_value(key) - (len(template) - 2)
        filler = (rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") * size).encode()
        value = template.replace(b"%s", filler, 1)
        return value, reason, ("near the topic's limit: " if near_limit else "") + name


def wrong_type(rng: random.Random, event: dict, key: bytes, fresh_id: str) -> tuple[bytes | None, str, str]:
    base = _fresh(event, fresh_id)
    options: list[tuple[bytes, str, str]] = [
        (_dumps([base]), "not_an_object", "an array"),
        (b'"' + fresh_id.encode() + b'"', "not_an_object", "a string"),
        (b"42", "not_an_object", "a number"),
        (b"null", "not_an_object", "null"),
        (b"true", "not_an_object", "true"),
        (_dumps({**base, "version": "1"}), "unsupported_version", "version as a string"),
        (_dumps({**base, "version": None}), "unsupported_version", "version null"),
        (_dumps({**base, "version": [1]}), "unsupported_version", "version as a list"),
        (_dumps({**base, "event_id": rng.randrange(10**9)}), "wrong_type", "event_id as a number"),
        (_dumps({**base, "event_id": None}), "wrong_type", "event_id null"),
        (_dumps({**base, "event_id": [fresh_id]}), "wrong_type", "event_id as a list"),
        (_dumps({**base, "checkpoint_id": 7}), "wrong_type", "checkpoint_id as a number"),
        (_dumps({**base, "occurred_at": 1_709_280_000}), "wrong_type", "occurred_at as epoch seconds"),
        (_dumps({**base, "occurred_at": {"t": 1}}), "wrong_type", "occurred_at as an object"),
        (_dumps({**base, "nationality": 860}), "wrong_type", "nationality as a number"),
        (_dumps({**base, "direction": 1}), "unknown_enum", "direction as a number"),
        (_dumps({**base, "purpose": None}), "unknown_enum", "purpose null"),
        (_dumps({**base, "mode": False}), "unknown_enum", "mode false"),
        (_dumps({**base, "outcome": {}}), "unknown_enum", "outcome as an object"),
    ]
    return rng.choice(options)


def empty_value(rng: random.Random, event: dict, key: bytes, fresh_id: str) -> tuple[bytes | None, str, str]:
    return rng.choice(
        (
            (b"", "malformed_json", "empty"),
            (None, "malformed_json", "null value (tombstone)"),
            (b" \n\t", "malformed_json", "whitespace"),
            (b"{}", "missing_field", "empty object"),
        )
    )


def unknown_checkpoint(
    rng: random.Random, event: dict, key: bytes, fresh_id: str
) -> tuple[bytes | None, str, str]:
    variant = rng.randrange(4)
    if variant == 0:
        bogus = rng.choice(_BOGUS_CHECKPOINTS)
    elif variant == 1:  # well-formed, never registered
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
        bogus = "".join(rng.choice(alphabet) for _ in range(rng.randrange(2, 65)))
    elif variant == 2:  # a registered id, in the wrong case: fails the id pattern
        bogus = event["checkpoint_id"].upper()
    else:  # too short for the id pattern
        bogus = rng.choice("abcxyz")
    if bogus in _registered():
        bogus += "-0"
    return (
        _dumps(_fresh(event, fresh_id, checkpoint_id=bogus)),
        "unknown_checkpoint",
        ("pool", "random", "upper case", "one letter")[variant],
    )


def schema_violation(
    rng: random.Random, event: dict, key: bytes, fresh_id: str
) -> tuple[bytes | None, str, str]:
    base = _fresh(event, fresh_id)
    variant = rng.randrange(7)
    if variant == 0:
        field = rng.choice(_REQUIRED)
        return _dumps({k: v for k, v in base.items() if k != field}), "missing_field", f"no {field}"
    if variant == 1:
        extra = rng.choice(("comment", "Event_ID", "gate", "version2"))
        return _dumps({**base, extra: "x"}), "unknown_field", f"extra {extra}"
    if variant == 2:
        version = rng.choice((0, 2, 99, -1))
        return _dumps({**base, "version": version}), "unsupported_version", f"version {version}"
    if variant == 3:
        field, bad = rng.choice(
            (
                ("direction", "in"),
                ("direction", "ENTRY"),
                ("purpose", "smuggling"),
                ("mode", "horse"),
                ("outcome", "escaped"),
            )
        )
        return _dumps({**base, field: bad}), "unknown_enum", f"{field} {bad}"
    if variant == 4:
        bad = rng.choice(("QQQ", "ZZZ", "Uzb", "UZ", "UZBK", "", "U2B"))
        return _dumps({**base, "nationality": bad}), "bad_nationality", f"nationality {bad!r}"
    if variant == 5:
        bad = rng.choice(("", "has space", "x" * 129, "id/with/slash", "émigré"))
        return _dumps({**base, "event_id": bad}), "bad_event_id", f"event_id {bad[:12]!r}"
    raw = str(base["occurred_at"])
    bad = rng.choice(
        (
            raw[:19],  # naive
            raw[:10] + " " + raw[11:],
            "2024-02-30T10:00:00Z",
            "1969-12-31T23:59:59Z",
            "yesterday",
            raw[:16] + "+05:00",
        )
    )
    return _dumps({**base, "occurred_at": bad}), "bad_timestamp", f"occurred_at {bad!r}"


def near_event_limit(
    rng: random.Random, event: dict, key: bytes, fresh_id: str, partitions: int, registry_ids: Sequence[str]
) -> Outgoing:
    """A valid event padded (JSON whitespace) to a size around the event bound, keyed right,
    wrong or not at all: counted where it belongs, forwarded there if its copy fits the
    bound, dead-lettered ``oversize`` if it or its copy would not."""
    home = partition_for(key, partitions)
    how = rng.choice(("right key", "wrong key", "null key"))
    if how == "right key":
        out_key: bytes | None = key
        partition = home
    elif how == "wrong key":
        out_key = rng.choice([c for c in registry_ids if c != event["checkpoint_id"]]).encode()
        partition = partition_for(out_key, partitions)
    else:
        out_key, partition = None, rng.randrange(partitions)
    forwarded = partition != home
    copy = len(key) + FORWARD_OVERHEAD if forwarded else 0
    size = rng.choice(
        (
            MAX_EVENT_BYTES - copy,  # the largest that is counted (forwarded: its copy just fits)
            MAX_EVENT_BYTES - copy + 1,
            MAX_EVENT_BYTES,
            MAX_EVENT_BYTES + 1,
            MAX_EVENT_BYTES - rng.randrange(1, 200),
        )
    )
    body = _dumps(_fresh(event, fresh_id))
    value = body[:-1] + b" " * max(size - len(body), 0) + b"}"
    too_big = len(value) > MAX_EVENT_BYTES or (forwarded and len(value) + copy > MAX_EVENT_BYTES)
    return Outgoing(
        out_key,
        value,
        partition,
        "near_event_limit",
        "oversize" if too_big else None,
        variant=f"{how}, {len(value):,} B",
    )


def near_letter_limit(
    rng: random.Random, event: dict, key: bytes, partitions: int, registry_ids: Sequence[str]
) -> Outgoing:
    """A message that is no event (a log line, say), its key and value together around the
    dead-letter bound, keyed right, wrong or not at all: dead-lettered ``oversize`` where it
    was sent, whole up to the bound and cut (with its size and digest) above it."""
    how = rng.choice(("right key", "wrong key", "null key"))
    if how == "right key":
        out_key: bytes | None = key
        partition = partition_for(key, partitions)
    elif how == "wrong key":
        out_key = rng.choice([c for c in registry_ids if c != event["checkpoint_id"]]).encode()
        partition = partition_for(out_key, partitions)
    else:
        out_key, partition = None, rng.randrange(partitions)
    total = DEAD_LETTER_MAX_BYTES + rng.choice((-1, 0, 1, 2, -rng.randrange(2, 4096), rng.randrange(3, 4096)))
    size = total - len(out_key or b"")
    line = b"2024-03-01T09:15:03Z gate 4 log: " + bytes(rng.choice(b"abcdef0123456789") for _ in range(64))
    value = (line * (size // len(line) + 1))[:size]
    return Outgoing(out_key, value, partition, "near_letter_limit", "oversize", variant=f"{how}, {total:,} B")


def recipes() -> dict[str, Recipe]:
    """The recipes of the kinds judged on the value alone (a fresh set: huge strings count)."""
    return {
        "deep_nesting": deep_nesting,
        "huge_number": huge_number,
        "invalid_utf8": invalid_utf8,
        "nul_bytes": nul_bytes,
        "huge_string": _HugeStrings(),
        "wrong_type": wrong_type,
        "empty_value": empty_value,
        "unknown_checkpoint": unknown_checkpoint,
        "schema_violation": schema_violation,
    }


# --------------------------------------------------------------------------- the mixer


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_ts(raw: str) -> float:
    return datetime.fromisoformat(raw).timestamp()


def mix(
    traffic: Iterable,
    *,
    bad: int,
    valid: int,
    partitions: int,
    seed: int,
    now_ms: int,
    horizon_s: float = 72 * 3600.0,
    max_skew_s: float = 900.0,
    batch_bound: int = BATCH_BOUND,
) -> Iterator[Outgoing]:
    """``valid`` messages of ``traffic`` (scenario records: their ``kind`` in
    :data:`VALID_KINDS`, others skipped) with ``bad`` hostile ones spread among them at
    random, every kind of :data:`KINDS` about equally often.

    ``now_ms`` is the record timestamp given to future-stamped events (it must not be
    ahead of the broker's clock when they are sent)."""
    rng = random.Random(f"hostile:{seed}")
    registry_ids = sorted(_registered())
    make = recipes()
    plan = [KINDS[i % len(KINDS)] for i in range(bad)]
    rng.shuffle(plan)
    newest: dict[int, float] = {}  # the newest event time counted, by partition
    stream_ts: dict[int, float] = {}  # the agreed clock, by partition
    latest: dict[int, list[float]] = {p: [] for p in range(partitions)}
    strays: dict[int, list[bool]] = {p: [] for p in range(partitions)}  # which of latest
    recent: dict[int, deque[Counted]] = {p: deque(maxlen=RECENT) for p in range(partitions)}
    serial = 0
    bombs = 0
    traffic_iter = (r for r in traffic if r.kind in VALID_KINDS)
    remaining_valid, remaining_bad = valid, bad

    def fresh_id() -> str:
        nonlocal serial
        serial += 1
        return f"fz{seed}-{serial:07d}"

    def clock(message: Outgoing) -> Outgoing:
        """Move the partition's clock as the worker will for ``message``: the events it
        counts as they were sent to it take part in the agreement, not copies, not those
        dead-lettered, not those forwarded to it from another partition."""
        if message.reason is not None or message.kind in ("duplicate", "resent_duplicate"):
            return message
        event = json.loads(message.value)
        if message.partition != partition_for(event["checkpoint_id"].encode(), partitions):
            return message  # forwarded to its checkpoint's partition: counted there, no vote
        ts = _parse_ts(event["occurred_at"])
        window, stray = latest[message.partition], strays[message.partition]
        window.append(ts)
        stray.append(message.kind == "stamped_now")
        del window[:-AGREEMENT], stray[:-AGREEMENT]
        now = stream_ts.get(message.partition)
        if len(window) == AGREEMENT:
            agreed = sorted(window)[AGREEMENT // 2]
            if now is None or agreed > now:
                stream_ts[message.partition] = agreed
        return message

    def template() -> Counted | None:
        partitions_with = [p for p, seen in recent.items() if seen]
        if not partitions_with:
            return None
        return rng.choice(recent[rng.choice(partitions_with)])

    def copyable(partition: int) -> Counted | None:
        """A recently counted event of ``partition`` that is not too late to be judged a copy."""
        seen = recent[partition]
        latest = newest.get(partition)
        if not seen or latest is None:
            return None
        for _ in range(8):
            counted = seen[rng.randrange(len(seen))]
            if counted.ts >= latest - RECENT_WITHIN_S:
                return counted
        return None

    def hostile(kind: str) -> Outgoing | None:
        base = template()
        if base is None:
            return None
        event, key = base.event, base.key
        home = partition_for(key, partitions)
        if kind in make:
            value, reason, variant = make[kind](rng, event, key, fresh_id())
            if kind == "unknown_checkpoint":
                key = json.loads(value)["checkpoint_id"].encode()  # keyed like a real producer
            if value is not None and len(value) > MAX_EVENT_BYTES:
                reason = "oversize"  # never decoded
            return Outgoing(key, value, partition_for(key, partitions), kind, reason, variant=variant)
        if kind == "near_event_limit":
            return near_event_limit(rng, event, key, fresh_id(), partitions, registry_ids)
        if kind == "near_letter_limit":
            return near_letter_limit(rng, event, key, partitions, registry_ids)
        if kind == "null_record":
            # Neither key nor value: other clients send it (a delete marker). Its dead
            # letter once failed every commit of its partition (the client would not send
            # a record without both); dead-lettered where it was sent.
            return Outgoing(
                None, None, rng.randrange(partitions), kind, "malformed_json", variant="no key, no value"
            )
        if kind == "compressed_bomb":
            nonlocal bombs
            bombs += 1
            if bombs <= FULL_BOMBS:
                # Around the batch bound: its record batch (the value, the key and ~20 bytes)
                # just under it is read, and the message dead-lettered cut; over it, refused.
                size = (batch_bound - 4096, batch_bound + 1, 9 * 2**20)[bombs % 3]
            else:
                size = _log_uniform(rng, 70 * 2**10, 2**20)
            filler = rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
            value = bytes([filler]) * size  # ~size/1000 bytes on the wire, gzip-compressed
            refused = size > batch_bound
            return Outgoing(
                key,
                value,
                home,
                kind,
                "oversize",
                variant=f"{size:,} bytes decompressed" + (", batch refused" if refused else ""),
                refused_batch=refused,
            )
        if kind == "null_key":
            value = _dumps(_fresh(event, fresh_id()))
            # Counted once, at its checkpoint's partition (forwarded there if the producer
            # put it elsewhere). Stamped like a counted event of that partition, so it never
            # moves a clock the mixer does not know of.
            return Outgoing(None, value, rng.randrange(partitions), kind, None, variant="valid event")
        if kind == "wrong_key":
            other = rng.choice([c for c in registry_ids if c != event["checkpoint_id"]])
            value = _dumps(_fresh(event, fresh_id()))
            wrong = other.encode()
            return Outgoing(
                wrong, value, partition_for(wrong, partitions), kind, None, variant="another checkpoint"
            )
        if kind == "future_timestamp":
            ahead = rng.choice(
                (
                    0.001,
                    1.0,
                    rng.uniform(1, 3600),
                    rng.uniform(3600, 86400 * 30),
                    rng.uniform(86400 * 30, 86400 * 3650),
                )
            )
            occurred = now_ms / 1000 + max_skew_s + ahead
            stamp = _utc(occurred)
            if rng.random() < 0.5:  # the same instant at another UTC offset
                stamp = (
                    datetime.fromtimestamp(occurred, UTC)
                    .astimezone(_offset(rng))
                    .isoformat(timespec="microseconds")
                )
            value = _dumps(_fresh(event, fresh_id(), occurred_at=stamp))
            return Outgoing(key, value, home, kind, "future_timestamp", now_ms, f"{ahead:.3f}s past the skew")
        if kind == "too_late":
            partition = home
            now = stream_ts.get(partition)
            if now is None:
                return None
            behind = rng.choice((0.001, 1.0, rng.uniform(1, 3600), rng.uniform(3600, 86400 * 30)))
            stamp = _utc(now - horizon_s - behind)
            value = _dumps(_fresh(event, fresh_id(), occurred_at=stamp))
            return Outgoing(
                key, value, partition, kind, "too_late", variant=f"{behind:.3f}s past the horizon"
            )
        if kind == "stamped_now":
            # History sent now: its broker timestamps say nothing of when the crossings
            # happened, so one stamped in the present passes the skew check. Counted on the
            # day it says; the partition's clock must go on with the real events.
            if sum(strays[home][-(AGREEMENT - 1) :]) >= 2:
                return None  # a third in five would outvote the real events
            stamp = _utc(now_ms / 1000 - rng.uniform(0, 6 * 3600))
            value = _dumps(_fresh(event, fresh_id(), occurred_at=stamp))
            return Outgoing(key, value, home, kind, None, variant="stamped in the present")
        if kind in ("duplicate_conflict", "resent_duplicate"):
            counted = copyable(home)
            if counted is None:
                return None
            original = counted.event
            if kind == "resent_duplicate":
                variant = rng.randrange(3)
                if variant == 0:
                    value, how = counted.value, "byte for byte"
                elif variant == 1:
                    value, how = json.dumps(dict(reversed(list(original.items())))).encode(), "keys reversed"
                else:
                    value = _dumps({**original, "occurred_at": _utc(counted.ts)})
                    how = "instant in UTC"
                return Outgoing(counted.key, value, home, kind, None, variant=how)
            field = rng.choice(("direction", "nationality", "purpose", "mode", "outcome"))
            other = {
                "direction": ("entry", "exit"),
                "nationality": ("UZB", "KAZ", "TJK", "KGZ", "RUS", "CHN", "XXA"),
                "purpose": ("labour", "transit", "tourist", "business", "private", "other"),
                "mode": ("pedestrian", "car", "bus", "truck", "rail"),
                "outcome": ("admitted", "refused", "detained"),
            }[field]
            changed = rng.choice([v for v in other if v != original[field]])
            value = _dumps({**original, field: changed})
            return Outgoing(counted.key, value, home, kind, "duplicate_conflict", variant=f"another {field}")
        raise ValueError(kind)

    deferred: list[str] = []  # kinds drawn that could not be made yet
    planned = iter(plan)
    while remaining_valid or remaining_bad:
        if remaining_bad and rng.random() < remaining_bad / (remaining_bad + remaining_valid):
            drawn = next(planned, None)
            if drawn is not None:
                deferred.append(drawn)
            made = None
            for i, kind in enumerate(deferred):
                made = hostile(kind)
                if made is not None:
                    del deferred[i]
                    break
            if made is not None:
                remaining_bad -= 1
                yield clock(made)
                continue
            # Nothing counted yet to build on: a valid one first, the kind later.
            if not remaining_valid:
                raise RuntimeError(
                    "hostile kinds left that need counted events first: " + ", ".join(deferred)
                )
        record = next(traffic_iter, None)
        if record is None:
            raise ValueError(f"the traffic ran out with {remaining_valid} valid messages still wanted")
        remaining_valid -= 1
        partition = partition_for(record.key, partitions)
        if record.kind != "duplicate":
            event = json.loads(record.value)
            ts = _parse_ts(event["occurred_at"])
            if ts > newest.get(partition, -math.inf):
                newest[partition] = ts
            recent[partition].append(Counted(record.key, record.value, event, ts))
        yield clock(Outgoing(record.key, record.value, partition, record.kind))


def _offset(rng: random.Random) -> timezone:
    return timezone(timedelta(minutes=rng.choice((-720, -300, 0, 180, 300, 360, 345, 840))))


def expected_duplicates(messages: Sequence[Outgoing]) -> int:
    """Messages the worker must drop as re-sent copies (scenario retries and ours)."""
    return sum(1 for m in messages if m.kind in ("duplicate", "resent_duplicate"))


#: Valid events sent under a null or another checkpoint's key: counted once, not dead-lettered.
MISKEYED_KINDS = ("null_key", "wrong_key")
#: Hostile kinds that are valid events, counted once where they belong.
COUNTED_KINDS = (*MISKEYED_KINDS, "stamped_now", "near_event_limit")


def expected_rekeyed(messages: Sequence[Outgoing], partitions: int) -> int:
    """Messages the worker must forward to their checkpoint's partition (sent elsewhere)."""
    return sum(
        1
        for m in messages
        if (m.kind in MISKEYED_KINDS or (m.kind == "near_event_limit" and m.reason is None))
        and m.partition != partition_for(json.loads(m.value)["checkpoint_id"].encode(), partitions)  # type: ignore[arg-type]
    )
