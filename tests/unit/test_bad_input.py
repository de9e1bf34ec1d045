"""Bad input never raises out of the core, and both decode paths give the same verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import GOOD_EVENT

from streams.core.processor import PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import REASONS, EventDecoder, InvalidEvent
from streams.domain.registry import load_registry

GOOD = GOOD_EVENT
REGISTRY = load_registry()
DECODER = EventDecoder(REGISTRY)
NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
timestamps = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-12:00",
        "2024-02-29T23:30:00+06:00",
        "2024-13-01T00:00:00Z",
        "2024-03-01T24:00:00Z",
        "2024-03-01T09:15:03.123456789+05:00",
        "2024-03-01T09:15:03.123+05:00",
        "2024-03-03T09:15:03Z",
        # The limits, to the microsecond: NOW + 15 min is the latest accepted, 1970 the earliest.
        "2024-03-01T12:15:00Z",
        "2024-03-01T12:15:00.000001Z",
        "2024-03-01T18:14:59.999999+06:00",
        "2024-03-01T12:14:59.5Z",
        "2024-03-02T12:00:00Z",
        "1970-01-01T00:00:00Z",
        "1970-01-01T05:00:00+05:00",
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01T00:00:00.5+00:01",
    ]
)
nearly_valid_text = st.sampled_from(
    [
        "zhibek-zholy",
        "zhibek-zholy\n",
        "UZB",
        "uzb",
        "UZB\n",
        "entry",
        "Entry",
        "abc",
        "",
        "a" * 129,
        "x:y.z_1-2",
    ]
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda key, value: json.dumps({**GOOD, key: value}).encode(),
        st.sampled_from(sorted(GOOD)),
        json_values | timestamps | nearly_valid_text | st.sampled_from([1, 1.0, True, 2]),
    ),
    st.builds(
        lambda key: json.dumps({k: v for k, v in GOOD.items() if k != key}).encode(),
        st.sampled_from(sorted(GOOD)),
    ),
    st.just(json.dumps(GOOD).encode()),
    # Inputs that once crashed a decoder: depth, huge numbers, bad UTF-8, NUL, size.
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            json.dumps(GOOD).encode().replace(b'"version": 1', b'"version": ' + b"9" * 5000),
            b"9" * 5000,
            json.dumps(GOOD).encode().replace(b"UZB", b"\xff\xfe"),
            json.dumps(GOOD).encode().replace(b"UZB", rb"U\u0000B"),
            b'{"event_id": "\xc3\x28"}',
            json.dumps({**GOOD, "event_id": "x" * 1_000_000}).encode(),
            json.dumps({**GOOD, "purpose": ["labour"] * 10_000}).encode(),
            b"",
            b"\x00" * 64,
        ]
    ),
    st.just(json.dumps(GOOD).encode().replace(b"{", b'{"version": 2, ', 1)),  # a duplicate key
)


def _verdict(decode) -> tuple:
    try:
        return ("valid", decode())
    except InvalidEvent as error:
        return ("invalid", error.reason, error.detail)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_fast_path_agrees_with_the_reference_path(raw):
    """The msgspec fast path may only accept what the JSON Schema path accepts, and every
    refusal carries the reference path's reason and detail."""
    fast = _verdict(lambda: DECODER.decode(raw, NOW))
    reference = _verdict(lambda: DECODER._reference(raw, NOW))
    assert fast == reference
    if fast[0] == "invalid":
        assert fast[1] in REASONS


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads | st.none(), max_size=12))
def test_batch_decoding_agrees_with_decoding_one_by_one(raws):
    """``decode_all`` (the hot path's inlined checks) gives each value ``decode``'s verdict."""
    batch = DECODER.decode_all(raws, [NOW.timestamp()] * len(raws))
    assert len(batch) == len(raws)
    for raw, got in zip(raws, batch, strict=True):
        one = _verdict(lambda raw=raw: DECODER.decode(raw, NOW))
        if isinstance(got, InvalidEvent):
            assert one == ("invalid", got.reason, got.detail)
        else:
            assert one == ("valid", got)
            assert got.occurred_ts == got.occurred_at.timestamp()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(payloads, min_size=1, max_size=20))
def test_processing_never_raises(tmp_path_factory, raws):
    store = LocalStore(tmp_path_factory.mktemp("state"))
    try:
        processor = PartitionProcessor(0, PartitionState(0), store, REGISTRY, ["zhibek-zholy"], DECODER)
        records = [SourceRecord(0, offset, 0, b"k", raw) for offset, raw in enumerate(raws)]
        processor.process(records, NOW)
        effects = processor.effects
        counted = sum(len(columns) for columns in effects.events.values())
        assert counted + effects.metrics.duplicates + len(effects.dead_letters) == len(raws)
        assert all(letter.reason in REASONS for letter in effects.dead_letters)
        processor.prepare_commit()
    finally:
        store.close()
