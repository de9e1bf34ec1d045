"""Bad input never raises out of the pipeline: it comes back as an invalid outcome."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import GOOD_EVENT

from streams.events import REASONS
from streams.metrics import WorkerMetrics
from streams.parquet_sink import ParquetSink
from streams.pipeline import Pipeline, PipelineTables

GOOD = GOOD_EVENT

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
    ]
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda key, value: json.dumps({**GOOD, key: value}).encode(),
        st.sampled_from(sorted(GOOD)),
        json_values | timestamps,
    ),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(payloads)
def test_process_never_raises(tmp_path, raw):
    pipeline = Pipeline(PipelineTables({}, {}, {}), ParquetSink(tmp_path, "fuzz"), WorkerMetrics())
    outcome = pipeline.process(raw, partition=0, offset=0)
    assert outcome.status in {"counted", "invalid"}
    if outcome.status == "invalid":
        assert outcome.error is not None and outcome.error.reason in REASONS
    pipeline.flush()
