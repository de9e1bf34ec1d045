"""After a rebalance a worker forgets the partitions it lost and rebuilds any it regains
from the changelogged tables, never from a stale copy of its own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prometheus_client.parser import text_string_to_metric_families
from samples import event_bytes

from streams import report
from streams.metrics import WorkerMetrics
from streams.parquet_sink import ParquetSink
from streams.pipeline import Pipeline, PipelineTables

T0 = datetime(2024, 3, 1, 6, 0, tzinfo=timezone.utc)


def message(event_id: str, checkpoint_id: str, at: datetime) -> bytes:
    return event_bytes(event_id, at, checkpoint_id=checkpoint_id)


def series(metrics: WorkerMetrics, name: str) -> set[tuple[str, ...]]:
    """Label values of the exported samples of one metric."""
    return {
        tuple(sample.labels.values())
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name == name
    }


def test_lost_partitions_are_forgotten_and_regained_ones_rebuilt_from_the_tables(tmp_path):
    tables = PipelineTables({}, {}, {})
    metrics = WorkerMetrics()
    pipeline = Pipeline(tables, ParquetSink(tmp_path, "w"), metrics, dedup_horizon=timedelta(hours=2))
    pipeline.process(message("a-1", "zhibek-zholy", T0), partition=0, offset=0)
    pipeline.process(message("k-1", "korday", T0 + timedelta(hours=5)), partition=1, offset=0)
    pipeline.process(message("k-2", "korday", T0 + timedelta(hours=6)), partition=1, offset=1)
    assert ("korday", "entry") in series(metrics, "crossings_today_count")

    pipeline.keep_partitions({0})
    assert set(pipeline.stream_time) == {0}
    assert set(pipeline.partition_clocks()) == {0}
    assert series(metrics, "crossings_today_count") == {("zhibek-zholy", "entry")}
    assert series(metrics, "crossings_stream_time_seconds") == {("0",)}

    # Regained: the clock comes back from the seen table (so lateness is judged at once)...
    late = pipeline.process(message("k-0", "korday", T0 + timedelta(hours=3)), partition=1, offset=2)
    assert late.status == "invalid" and late.error is not None and late.error.reason == "too_late"
    assert pipeline.stream_time[1] == T0 + timedelta(hours=6)
    # ...and ids counted before the move are still duplicates.
    assert pipeline.process(
        message("k-2", "korday", T0 + timedelta(hours=6)), partition=1, offset=3
    ).status == ("duplicate")


def test_keeping_every_partition_changes_nothing(tmp_path):
    tables = PipelineTables({}, {}, {})
    pipeline = Pipeline(tables, ParquetSink(tmp_path, "w"), WorkerMetrics())
    pipeline.process(message("a-1", "zhibek-zholy", T0), partition=0, offset=0)
    before = dict(pipeline.stream_time)
    pipeline.keep_partitions({0, 1, 2, 3})
    assert pipeline.stream_time == before


def test_snapshots_of_moved_checkpoint_days_are_written_before_they_are_forgotten(tmp_path):
    tables = PipelineTables({}, {}, {})
    pipeline = Pipeline(tables, ParquetSink(tmp_path, "w"), WorkerMetrics())
    pipeline.process(message("k-1", "korday", T0), partition=1, offset=0)
    pipeline.process(message("k-2", "korday", T0 + timedelta(minutes=1)), partition=1, offset=1)
    assert report.daily_totals(tmp_path) == []  # nothing flushed yet
    pipeline.keep_partitions({0})
    assert [(r["checkpoint_id"], r["total"]) for r in report.daily_totals(tmp_path)] == [("korday", 2)]
    assert report.events_count(tmp_path) == 2
