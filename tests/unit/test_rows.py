"""One definition of each row (``streams.domain.rows``): what spells a row out agrees with it,
and the lake's columns only ever grow (``schemas/lake.json``)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from datetime import UTC, date, datetime

import msgspec
import pyarrow as pa
import pytest

from streams.core.effects import EventColumns
from streams.domain import rows
from streams.domain.alert import alert_message
from streams.domain.alert_type import Alert, alert_to_dict, decode_alert
from streams.domain.detect.assess import Assessment, Driver
from streams.domain.detect.episodes import Episode, Transition
from streams.domain.event import CrossingEvent, EventDecoder, _WireEvent
from streams.domain.registry import load_registry
from streams.notify.message import _validate as _validate_alert
from streams.schemas import load_json, schemas_dir
from streams.sinks.parquet import layout
from streams.worker.kafka_outputs import alert_bytes


def _published() -> dict:
    return json.loads((schemas_dir() / "lake.json").read_text())


def test_the_published_lake_versions_are_the_definitions_and_only_grow() -> None:
    assert rows.contract_problems(_published()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda row: [c for c in row if c.name != "kafka_offset"], "events v1 is published"),
        (
            lambda row: [dataclasses.replace(c, type="int16") if c.name == "local_hour" else c for c in row],
            "v1",
        ),
        (lambda row: [dataclasses.replace(c, nullable=True) if c.name == "mode" else c for c in row], "v1"),
        (lambda row: [*row, rows.Column("lane", "string", nullable=True, since=2)], "events v2 is not in"),
    ],
    ids=["removed", "retyped", "made-nullable", "added-unpublished"],
)
def test_a_change_to_a_published_row_is_caught(monkeypatch, change, expected) -> None:
    monkeypatch.setitem(rows.DATASETS, "events", tuple(change(rows.EVENT)))
    problems = rows.contract_problems(_published())
    assert any(expected in p for p in problems), problems
    if expected.endswith("is not in"):  # an addition: `make schemas` publishes it
        assert rows.contract_problems(rows.updated_contract(_published())) == []
    else:
        with pytest.raises(ValueError, match="cannot change"):
            rows.updated_contract(_published())


def test_breaking_changes_between_versions() -> None:
    v1 = rows.lake_columns(rows.EVENT)
    assert rows.breaking_changes(v1, [*v1, rows.Column("lane", "string", nullable=True, since=2)]) == []
    assert rows.breaking_changes(v1, v1[1:]) == ["event_id (string) was removed"]
    retyped = [dataclasses.replace(c, type="int64") if c.name == "local_hour" else c for c in v1]
    assert rows.breaking_changes(v1, retyped) == ["local_hour (int8) is now int64"]
    required = [*v1, rows.Column("lane", "string")]
    assert rows.breaking_changes(v1, required) == ["lane was added but is required: files without it break"]
    with pytest.raises(ValueError, match="must be nullable"):
        rows.Column("lane", "string", since=2)


def test_a_published_version_with_a_breaking_successor_is_caught() -> None:
    published = _published()
    v1 = published["alerts"]["1"]
    published["alerts"]["2"] = [c for c in published["alerts"]["2"] if c[0] != "summary"]
    assert any("alerts v2: summary (string) was removed" in p for p in rows.contract_problems(published))
    assert published["alerts"]["1"] == v1


def test_the_arrow_schemas_are_the_definitions() -> None:
    """v1 of each dataset is byte for byte the schema files were written with before."""
    assert layout.EVENTS_SCHEMA.names == [c.lake_name for c in rows.lake_columns(rows.EVENT)]
    assert layout.arrow_schema(rows.ALERT, 1).names == [
        "version", "alert_id", "episode_id", "status", "kind", "checkpoint_name", "direction", "window",
        "as_of", "raised_at", "observed", "expected", "ratio", "score", "drivers_json", "summary",
    ]  # fmt: skip
    assert layout.ALERTS_SCHEMA.names[-2:] == ["cause", "scope"]
    assert layout.ALERTS_SCHEMA.field("cause").nullable and not layout.ALERTS_SCHEMA.field("summary").nullable
    assert layout.EVENTS_SCHEMA.field("kafka_timestamp").type == pa.timestamp("ms", tz="UTC")


@pytest.mark.parametrize(
    ("row", "name"), [(rows.EVENT, "crossing_event.v1.json"), (rows.ALERT, "alert.v1.json")]
)
def test_the_json_schemas_are_the_wire_fields(row, name) -> None:
    schema = load_json(name)
    wire = rows.wire_fields(row)
    assert set(schema["properties"]) == {c.name for c in wire}
    assert set(schema["required"]) == {c.name for c in wire if not c.nullable}


def test_the_typed_structs_are_the_event_definition() -> None:
    wire = [c.name for c in rows.wire_fields(rows.EVENT)]
    assert [f.name for f in msgspec.structs.fields(_WireEvent)] == wire
    assert [f.name for f in msgspec.structs.fields(CrossingEvent)] == [*wire[1:], "occurred_ts", "version"]
    units = {"timestamp[us]": "_us", "timestamp[ms]": "_ms"}
    buffers = [c.name + units.get(c.type, "") for c in rows.lake_columns(rows.EVENT)]
    assert [f.name for f in dataclasses.fields(EventColumns)] == buffers
    # The decoder's checks take the wire fields, in order, by position.
    checked = list(inspect.signature(EventDecoder._checked).parameters)[1:-1]
    assert [name.replace("occurred_raw", "occurred_at") for name in checked] == wire[1:]


def test_an_alert_message_has_the_alert_fields() -> None:
    checkpoint = next(iter(load_registry().values()))
    assessment = Assessment(
        "running_day", date(2024, 3, 4), 3980, 1510.0, 2.64, "surge", (Driver("UZB", "labour", 3400, 1050.0),)
    )
    episode = Episode("x:entry:surge:2024-03-04T0900", "surge", "running_day", "2024-03-04T09:00:00+00:00")
    at = datetime(2024, 3, 4, 9, tzinfo=UTC)
    message = alert_message(
        checkpoint, "entry", Transition("firing", episode, assessment, at, True), raised_at=at
    )
    assert isinstance(message, Alert)
    assert set(alert_to_dict(message)) == {c.name for c in rows.wire_fields(rows.ALERT)}
    # What the worker publishes is an alert of the schema, and notify reads back the same value.
    published = alert_bytes(message)
    _validate_alert()(json.loads(published))
    assert decode_alert(published) == message
    assert alert_to_dict(decode_alert(published)) == json.loads(published)
    assert [f.name for f in msgspec.structs.fields(Alert)] == [c.name for c in rows.wire_fields(rows.ALERT)]


def test_the_typed_alert_reads_a_message_of_v1_and_refuses_a_wrong_type() -> None:
    nullable = [c for c in rows.wire_fields(rows.ALERT) if c.nullable]
    assert {c.name for c in nullable} >= {"cause", "scope"}
    v1 = {
        "version": 1,
        "alert_id": "a",
        "episode_id": "e",
        "status": "firing",
        "kind": "surge",
        "checkpoint_id": "korday",
        "checkpoint_name": "Korday",
        "direction": "entry",
        "local_day": "2024-03-04",
        "window": "full_day",
        "as_of": "2024-03-04T19:00:00+00:00",
        "raised_at": "2024-03-04T19:00:01+00:00",
        "observed": 10,
        "expected": 4.0,
        "ratio": 2.5,
        "score": 5.0,
        "drivers": [],
        "summary": "s",
        "a_field_of_a_later_version": {"any": "thing"},
    }
    typed = decode_alert(json.dumps(v1).encode())
    assert all(getattr(typed, c.name) is None for c in nullable)
    assert (typed.observed, typed.ratio, typed.drivers) == (10, 2.5, [])
    with pytest.raises(msgspec.ValidationError, match="observed"):
        decode_alert(json.dumps({**v1, "observed": "ten"}).encode())
    with pytest.raises(msgspec.ValidationError, match="summary"):
        decode_alert(json.dumps({k: v for k, v in v1.items() if k != "summary"}).encode())
