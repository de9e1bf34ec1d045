"""``crossings replay`` over files: NDJSON history and a lake's own Parquet events give the
lake the worker's core writes from the same records (no broker needed)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import duckdb
import pytest

from load_tests.backtest import backtest, scenario_records
from load_tests.scenario import ScenarioSpec
from streams.replay.run import replay
from streams.replay.sources import ndjson_records, parquet_records

SPEC = ScenarioSpec(days=36, other_scale=0.3)
PARTITIONS = 3
SCAN = "read_parquet('{}/{}/*/*/*.parquet', hive_partitioning = true)"


def _rows(sql: str) -> list:
    return sorted(duckdb.sql(sql).fetchall())


def _events(root: Path) -> list:
    """Every counted event, without the source positions (a file has its own numbering)."""
    return _rows(
        "SELECT event_id, date, checkpoint, direction, occurred_at, local_hour, nationality, purpose, "
        f"mode, outcome FROM {SCAN.format(root, 'events')}"
    )


def _counts(root: Path) -> list:
    return _rows(
        "SELECT date, checkpoint, direction, nationality, purpose, sum(count) "
        f"FROM {SCAN.format(root, 'daily_counts')} GROUP BY ALL"
    )


def _alerts(root: Path) -> list:
    return _rows(
        'SELECT alert_id, episode_id, status, kind, date, checkpoint, direction, "window", as_of, '
        "raised_at, observed, expected, ratio, score, drivers_json, summary "
        f"FROM {SCAN.format(root, 'alerts')}"
    )


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """The scenario through the core, as the worker would have written it."""
    logging.getLogger("streams.core.processor").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("original")
    backtest(SPEC, root, partitions=PARTITIONS)
    return root / "data"


def _replay(source, root: Path):
    return asyncio.run(
        replay(source, partitions=PARTITIONS, data_dir=root / "data", state_dir=root / "state")
    )


def test_replaying_a_lake_rebuilds_its_counts_and_alerts(original, tmp_path):
    stats = _replay(parquet_records([original / "events"], PARTITIONS), tmp_path)
    assert stats.dead_letters == 0 and stats.duplicates == 0
    assert _events(tmp_path / "data") == _events(original)
    assert _counts(tmp_path / "data") == _counts(original)
    alerts = _alerts(original)
    assert alerts, "the scenario's surges raise alerts"
    assert _alerts(tmp_path / "data") == alerts


def test_replaying_ndjson_history_counts_what_the_core_counts(original, tmp_path):
    records, _ = scenario_records(SPEC, PARTITIONS)
    history = tmp_path / "history.ndjson"
    with open(history, "wb") as out:
        for record in records:
            # Scenario values are one JSON document each, valid or not; a line holds one.
            out.write(record.value.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n")
    stats = _replay(ndjson_records([history], PARTITIONS), tmp_path)
    assert stats.records == sum(1 for line in history.read_bytes().split(b"\n") if line.strip())
    assert _events(tmp_path / "data") == _events(original)
    assert _counts(tmp_path / "data") == _counts(original)


def test_a_lake_kept_to_some_partitions_gives_their_records_unchanged(original):
    """A replay job reads only its checkpoints' folders; its records (offsets included)
    are those a whole-lake read gives its partitions."""
    everything = [r for batch in parquet_records([original / "events"], PARTITIONS) for r in batch]
    for keep in ({0, 2}, {1}):
        kept = [r for batch in parquet_records([original / "events"], PARTITIONS, keep) for r in batch]
        assert kept and kept == [r for r in everything if r.partition in keep]


def test_a_lake_without_events_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no \.parquet files"):
        parquet_records([tmp_path], PARTITIONS)


def test_the_lake_is_sorted_within_a_bounded_memory(original, monkeypatch, tmp_path):
    """A lake's rows are sorted before the first comes out; the sort is held to
    ``SORT_MEMORY`` (spilling to TMPDIR), not DuckDB's default of most of the machine,
    which let the reader of a 100 M-event year grow to 17 GB. Too small a bound to sort
    even this lake fails, so the bound is on; a spill folder is used and removed."""
    import tempfile

    import streams.replay.sources as sources

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    monkeypatch.setattr(sources, "SORT_MEMORY", "256KB")
    with pytest.raises(duckdb.OutOfMemoryException):
        next(iter(parquet_records([original / "events"], PARTITIONS)))
    monkeypatch.setattr(sources, "SORT_MEMORY", "64MB")
    records = [r for batch in parquet_records([original / "events"], PARTITIONS) for r in batch]
    assert len(records) == len(_events(original))
    assert [r.timestamp_ms for r in records] == sorted(r.timestamp_ms for r in records)
    assert list(tmp_path.iterdir()) == []  # the spill folder went with the reader
