"""The worker's own upkeep of the DuckLake lake (``streams.worker.lake_upkeep``): it runs on
its interval only while this worker leads, records what it did in ``crossings_lake_*``,
and a failed run is counted, not raised."""

from __future__ import annotations

import threading
from datetime import timedelta

import duckdb
from prometheus_client import CollectorRegistry, generate_latest
from test_ducklake_upkeep import ROWS_PER_COMMIT, TODAY, _commit, _lake, _upkeep

from streams.settings import Settings
from streams.settings.lake import LakeConfig
from streams.settings.lake_upkeep import UpkeepConfig
from streams.worker.faust_app import lake_upkeep
from streams.worker.lake_upkeep import LakeUpkeep, LakeUpkeepMetrics
from streams.worker.metrics import WorkerMetrics


def _value(registry: CollectorRegistry, line: str) -> float:
    for text in generate_latest(registry).decode().splitlines():
        if text.startswith(line + " "):
            return float(text.split()[-1])
    raise AssertionError(f"{line} not exposed")


def test_a_run_compacts_expires_and_is_measured(tmp_path):
    con = _lake(tmp_path)
    for seq in range(4):
        _commit(con, seq * ROWS_PER_COMMIT, ROWS_PER_COMMIT, seq=seq)
    old = con.execute("SELECT count(*) FROM lake.events WHERE local_day < ?", [TODAY - timedelta(days=2)])
    old_events = old.fetchall()[0][0]
    con.close()
    registry = CollectorRegistry()
    upkeep = LakeUpkeep(
        lambda: _upkeep(tmp_path),
        retention_days=2,
        interval=3600,
        metrics=LakeUpkeepMetrics(registry),
        today=lambda: TODAY,
    )

    assert upkeep.run_once()

    assert _value(registry, 'crossings_lake_compactions_total{outcome="done"}') == 1
    assert _value(registry, 'crossings_lake_expired_rows_total{table="events"}') == old_events > 0
    assert _value(registry, "crossings_lake_files") == 3  # one file a table
    con = _lake(tmp_path)
    assert con.execute("SELECT min(local_day) FROM lake.events").fetchall()[0][0] == TODAY - timedelta(days=2)


def test_a_failed_run_is_counted_not_raised(tmp_path):
    registry = CollectorRegistry()

    def broken() -> duckdb.DuckDBPyConnection:
        raise duckdb.IOException("catalog unreachable (injected)")

    upkeep = LakeUpkeep(broken, retention_days=0, interval=3600, metrics=LakeUpkeepMetrics(registry))
    assert not upkeep.run_once()
    assert _value(registry, 'crossings_lake_compactions_total{outcome="failed"}') == 1


def test_the_thread_runs_only_while_the_worker_leads(tmp_path):
    _lake(tmp_path).close()
    leading = threading.Event()
    asked = threading.Semaphore(0)
    runs: list[int] = []

    def leads() -> bool:
        asked.release()
        return leading.is_set()

    upkeep = LakeUpkeep(
        lambda: _lake(tmp_path),
        retention_days=0,
        interval=0.01,
        metrics=LakeUpkeepMetrics(CollectorRegistry()),
        leads=leads,
    )
    upkeep.run_once = lambda: runs.append(1) or True  # type: ignore[method-assign]
    upkeep.start()
    for _ in range(3):
        assert asked.acquire(timeout=30)
    assert runs == []
    leading.set()
    for _ in range(3):
        assert asked.acquire(timeout=30)
    upkeep.stop()
    assert runs


def test_the_worker_keeps_only_a_ducklake_lake(tmp_path):
    metrics = WorkerMetrics()
    parquet = Settings(data_dir=tmp_path, lake=LakeConfig("parquet"))
    assert lake_upkeep(parquet, metrics, leads=lambda: True) is None
    ducklake = LakeConfig("ducklake")
    off = Settings(data_dir=tmp_path, lake=ducklake, lake_upkeep=UpkeepConfig(interval_seconds=0))
    assert lake_upkeep(off, metrics, leads=lambda: True) is None
    on = Settings(data_dir=tmp_path, lake=ducklake, lake_upkeep=UpkeepConfig(retention_days=30))
    upkeep = lake_upkeep(on, metrics, leads=lambda: True)
    assert upkeep is not None and upkeep.retention_days == 30 and upkeep.interval == 3600
    assert b"crossings_lake_files" in metrics.exposition()
    # Its connection inlines nothing: the rows compaction writes out of the catalog go to a file.
    con = upkeep._connect()
    con.execute(
        "INSERT INTO lake.events (local_day, checkpoint_id, kafka_offset, commit_seq) VALUES (?, 'CP', 1, 1)",
        [TODAY],
    )
    assert con.execute("SELECT count(*) FROM ducklake_list_files('lake', 'events')").fetchall() == [(1,)]
