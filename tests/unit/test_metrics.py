"""Bulk histogram observation is exactly per-value observation, in the exposition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.worker.metrics import observe_many

BUCKETS = (0.5, 1.0, 5.0, 30.0, 300.0)
amounts = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, *BUCKETS]),
    max_size=60,
)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("lag_seconds", "Lag.", buckets=BUCKETS, registry=registry)


def _without_created(exposition: bytes) -> list[bytes]:
    return [line for line in exposition.splitlines() if b"_created" not in line]


@given(st.lists(amounts, max_size=4))
def test_observe_many_equals_observing_one_by_one(commits):
    one_registry, one = _histogram()
    many_registry, many = _histogram()
    for values in commits:
        for value in values:
            one.observe(value)
        observe_many(many, values)
    assert _without_created(generate_latest(many_registry)) == _without_created(generate_latest(one_registry))
