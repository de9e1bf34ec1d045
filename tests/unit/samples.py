"""A valid crossing event, shared by tests that mutate it."""

import json
from datetime import datetime

GOOD_EVENT = {
    "version": 1,
    "event_id": "zz-000000001",
    "checkpoint_id": "zhibek-zholy",
    "direction": "entry",
    "occurred_at": "2024-03-01T09:15:03+05:00",
    "nationality": "UZB",
    "purpose": "labour",
    "mode": "bus",
    "outcome": "admitted",
}


def event_bytes(event_id: str, occurred_at: datetime, **fields: object) -> bytes:
    """GOOD_EVENT as a Kafka message value, with its id, time and any other field replaced."""
    return json.dumps(
        {**GOOD_EVENT, "event_id": event_id, "occurred_at": occurred_at.isoformat(), **fields}
    ).encode()


def exported_metric_names(registry) -> set[str]:
    """Every sample name a prometheus_client registry serves: a counter as ``_total``, a
    histogram as ``_bucket``/``_sum``/``_count``, a gauge as itself."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes.get(family.type, ("",))
    }
