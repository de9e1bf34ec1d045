"""Validation of crossing events: every failure has a bounded reason and a clear detail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timezone

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import GOOD_EVENT

from streams.domain.event import REASONS, CrossingEvent, EventDecoder, InvalidEvent
from streams.domain.registry import load_registry
from streams.schemas import load_json

DECODER = EventDecoder(load_registry())


def decode_event(raw: bytes | None) -> CrossingEvent:
    return DECODER.decode(raw, datetime.now(UTC))


GOOD = GOOD_EVENT


def encode(payload) -> bytes:
    return json.dumps(payload).encode()


def reason_of(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw)
    assert caught.value.reason in REASONS
    assert caught.value.detail
    return caught.value.reason


def test_good_event_decodes_to_an_aware_instant():
    event = decode_event(encode(GOOD))
    assert event.checkpoint_id == "zhibek-zholy"
    assert event.occurred_at == datetime(2024, 3, 1, 4, 15, 3, tzinfo=timezone.utc)


def test_utc_z_suffix_is_accepted():
    assert decode_event(encode({**GOOD, "occurred_at": "2024-03-01T04:15:03Z"})).occurred_at.hour == 4


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        ({"version": 2}, "unsupported_version"),
        ({"direction": "sideways"}, "unknown_enum"),
        ({"purpose": "smuggling"}, "unknown_enum"),
        ({"nationality": "QQQ"}, "bad_nationality"),
        ({"nationality": "uzb"}, "bad_nationality"),
        ({"checkpoint_id": "atlantis"}, "unknown_checkpoint"),
        ({"occurred_at": "2024-03-01T09:15:03"}, "bad_timestamp"),
        ({"occurred_at": "yesterday"}, "bad_timestamp"),
        ({"occurred_at": "2024-02-30T09:15:03+05:00"}, "bad_timestamp"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "future_timestamp"),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "bad_timestamp"),
        ({"occurred_at": "1969-12-31T23:59:59Z"}, "bad_timestamp"),
        ({"event_id": ""}, "bad_event_id"),
        ({"event_id": 42}, "wrong_type"),
        ({"colour": "red"}, "unknown_field"),
    ],
)
def test_each_kind_of_bad_event_has_its_reason(mutation, reason):
    assert reason_of(encode({**GOOD, **mutation})) == reason


def test_missing_field_and_garbage():
    payload = dict(GOOD)
    del payload["outcome"]
    assert reason_of(encode(payload)) == "missing_field"
    assert reason_of(b"{not json") == "malformed_json"
    assert reason_of(b"\xff\xfe") == "malformed_json"
    assert reason_of(b"[1, 2]") == "not_an_object"
    with pytest.raises(InvalidEvent):
        decode_event(None)


def test_stateless_and_refugee_document_codes_are_nationalities():
    for code in ("XXA", "XXB", "AFG", "TJK"):
        assert decode_event(encode({**GOOD, "nationality": code})).nationality == code


schema = load_json("crossing_event.v1.json")
reference = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            key: st.one_of(st.just(value), st.text(max_size=12), st.integers(), st.none())
            for key, value in GOOD.items()
        },
    )
)
def test_never_accepts_what_the_reference_validator_rejects(payload):
    """Oracle: the JSON Schema reference implementation. Anything it rejects we reject too,
    and we never raise anything but InvalidEvent."""
    raw = encode(payload)
    try:
        decode_event(raw)
    except InvalidEvent:
        return
    assert reference.is_valid(payload)
