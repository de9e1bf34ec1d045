"""De-duplication with a bounded memory never counts an event twice.

Ids are forgotten once they fall behind their partition's stream time by the horizon; an
event that old is refused as ``too_late`` rather than counted, so a replay is either a
duplicate or dead-lettered, never a second count. Checked against a brute-force oracle
that remembers every id forever.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import event_bytes

from streams.metrics import WorkerMetrics
from streams.parquet_sink import ParquetSink
from streams.pipeline import Pipeline, PipelineTables

HORIZON = timedelta(hours=2)
T0 = datetime(2024, 3, 1, 6, 0, tzinfo=timezone.utc)

# A replay carries the same event as the original, so each id has one time (minutes after
# T0, spread over ~3 horizons); few ids so that replays are common.
times_of_ids = st.lists(st.integers(0, 400), min_size=13, max_size=13)
arrivals = st.lists(st.integers(0, 12), min_size=1, max_size=80)


def message(event_id: int, minutes: int) -> bytes:
    return event_bytes(f"ev-{event_id}", T0 + timedelta(minutes=minutes))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(times_of_ids, arrivals, st.integers(1, 5))
def test_outcomes_match_an_oracle_with_unbounded_memory(tmp_path, times, sequence, prune_batch):
    tables = PipelineTables({}, {}, {})
    pipeline = Pipeline(
        tables,
        ParquetSink(tmp_path, "dedup"),
        WorkerMetrics(),
        dedup_horizon=HORIZON,
        prune_batch=prune_batch,
    )
    counted: set[int] = set()
    newest: datetime | None = None
    for offset, event_id in enumerate(sequence):
        minutes = times[event_id]
        occurred = T0 + timedelta(minutes=minutes)
        if newest is not None and occurred < newest - HORIZON:
            expected = "invalid"
        elif event_id in counted:
            expected = "duplicate"
        else:
            expected = "counted"
            counted.add(event_id)
            newest = occurred if newest is None else max(newest, occurred)
        outcome = pipeline.process(message(event_id, minutes), partition=0, offset=offset)
        assert outcome.status == expected, (offset, event_id, minutes)
        if expected == "invalid":
            assert outcome.error is not None and outcome.error.reason == "too_late"
    assert sum(p["total"] for p in tables.profiles.values()) == len(counted)
    # Memory stays bounded: after a prune nothing older than the horizon is kept.
    pipeline.prune_seen(0)
    assert newest is not None
    assert all(ts >= (newest - HORIZON).timestamp() for ts, _ in tables.seen.values())


def test_a_restarted_pipeline_resumes_the_clock_from_the_remembered_ids(tmp_path):
    """The stream clock is process memory; the ``seen`` table (a changelog in the worker)
    is what survives, and a new process must judge lateness by it from its first event."""
    tables = PipelineTables({}, {}, {})
    first = Pipeline(tables, ParquetSink(tmp_path, "a"), WorkerMetrics(), dedup_horizon=HORIZON)
    assert first.process(message(1, 0), partition=0, offset=0).status == "counted"
    assert first.process(message(2, 300), partition=0, offset=1).status == "counted"
    first.prune_seen(0)
    assert "ev-1" not in tables.seen

    second = Pipeline(tables, ParquetSink(tmp_path, "b"), WorkerMetrics(), dedup_horizon=HORIZON)
    replay = second.process(message(1, 0), partition=0, offset=0)
    assert replay.status == "invalid" and replay.error is not None and replay.error.reason == "too_late"
    assert second.process(message(2, 300), partition=0, offset=1).status == "duplicate"
    # Another partition's clock is its own: nothing there yet, so the old event counts.
    assert second.process(message(1, 0), partition=1, offset=0).status == "counted"


def test_ids_are_forgotten_as_traffic_flows_so_memory_stays_bounded(tmp_path):
    """No sweep over the table: each event forgets a few expired ids, oldest first."""
    tables = PipelineTables({}, {}, {})
    pipeline = Pipeline(
        tables, ParquetSink(tmp_path, "w"), WorkerMetrics(), dedup_horizon=HORIZON, prune_batch=2
    )
    sizes = []
    for minute in range(600):  # one event a minute for ten hours, five horizons
        assert pipeline.process(message(minute, minute), partition=0, offset=minute).status == "counted"
        sizes.append(len(tables.seen))
    # Ids are forgotten before an event moves the clock, so the horizon as of the previous
    # event (121 one-minute-apart ids, both ends included) plus the newest one is kept.
    assert max(sizes) == 122
    oldest = min(ts for ts, _ in tables.seen.values())
    assert oldest == (T0 + timedelta(minutes=598) - HORIZON).timestamp()
