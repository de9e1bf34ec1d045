"""Additive schema changes: the lake's readers read files of an older version beside files of
the newer one (a column a file lacks reads null), and a reader of the older version is
unaffected by the newer files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streams.backtest.lake import lake_records
from streams.core.effects import CommitBatch, EventColumns, MetricDeltas
from streams.domain import rows
from streams.domain.alert_type import alert_from_dict
from streams.domain.registry import load_registry
from streams.query.lake import open_lake, query
from streams.query.reports import alerts as alerts_report
from streams.replay.sources import parquet_records
from streams.sinks.parquet.layout import ALERTS, ALERTS_SCHEMA, EVENTS, arrow_schema, partition_dir
from streams.sinks.parquet.sink import LakeSink, _alerts_table, _events_table

DAY = date(2024, 3, 4)
CHECKPOINTS = sorted(load_registry())[:2]


def _alert(alert_id: str, **extra: object) -> dict:
    return {
        "version": 1,
        "alert_id": alert_id,
        "episode_id": f"{CHECKPOINTS[0]}:entry:surge:2024-03-04T0900",
        "status": "firing",
        "kind": "surge",
        "checkpoint_id": CHECKPOINTS[0],
        "checkpoint_name": "A post",
        "direction": "entry",
        "local_day": DAY.isoformat(),
        "window": "running_day",
        "as_of": f"2024-03-04T0{alert_id[-1]}:00:00+00:00",
        "raised_at": "2024-03-04T09:00:01+00:00",
        "observed": 3980,
        "expected": 1510.0,
        "ratio": 2.64,
        "score": 9.1,
        "drivers": [
            {"nationality": "UZB", "purpose": "labour", "observed": 3400, "expected": 1050.0, "delta": 1}
        ],
        "summary": "surge",
        **extra,
    }


def _write(root: Path, dataset: str, checkpoint: str, name: str, table: pa.Table) -> None:
    folder = partition_dir(root, dataset, DAY, checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name)


def _v1_alerts(alerts: list[dict]) -> pa.Table:
    """What the writer of version 1 wrote: the columns of v1 only."""
    return (
        _alerts_table([alert_from_dict(a) for a in alerts])
        .select(arrow_schema(rows.ALERT, 1).names)
        .cast(arrow_schema(rows.ALERT, 1))
    )


def test_a_view_has_a_new_column_even_when_every_file_is_older(tmp_path: Path) -> None:
    _write(tmp_path, ALERTS, CHECKPOINTS[0], "p000-1.parquet", _v1_alerts([_alert("a1")]))
    with open_lake(tmp_path, load_registry()) as connection:
        found = query(connection, "SELECT alert_id, cause, scope FROM alerts").to_pylist()
    assert found == [{"alert_id": "a1", "cause": None, "scope": None}]


def test_old_and_new_alert_files_read_side_by_side(tmp_path: Path) -> None:
    _write(tmp_path, ALERTS, CHECKPOINTS[0], "p000-1.parquet", _v1_alerts([_alert("a1")]))
    new = _alerts_table(
        [
            alert_from_dict(_alert("a2", cause="group", scope="UZB")),
            alert_from_dict(_alert("a3", cause="level")),
        ]
    )
    _write(tmp_path, ALERTS, CHECKPOINTS[0], "p000-2.parquet", new)
    with open_lake(tmp_path, load_registry()) as connection:
        found = query(connection, "SELECT alert_id, cause, scope FROM alerts ORDER BY alert_id").to_pylist()
    assert found == [
        {"alert_id": "a1", "cause": None, "scope": None},
        {"alert_id": "a2", "cause": "group", "scope": "UZB"},
        {"alert_id": "a3", "cause": "level", "scope": None},
    ]
    # A reader of version 1 (the alerts report names v1's columns) reads both unchanged.
    report = alerts_report(tmp_path)
    assert [r["alert_id"] for r in report] == ["a1", "a2", "a3"]
    assert all(r["drivers"][0]["nationality"] == "UZB" for r in report)


def _events(checkpoint: str, offsets: range) -> pa.Table:
    columns = EventColumns()
    for offset in offsets:
        columns.event_id.append(f"{checkpoint}-{offset}")
        columns.direction.append("entry")
        columns.occurred_at_us.append(1_709_542_800_000_000 + offset * 1_000_000)
        columns.local_hour.append(9)
        columns.nationality.append("UZB")
        columns.purpose.append("labour")
        columns.mode.append("car")
        columns.outcome.append("admitted")
        columns.kafka_partition.append(0)
        columns.kafka_offset.append(offset)
        columns.kafka_timestamp_ms.append(1_709_542_800_000 + offset * 1000)
    return _events_table(columns)


def _lake_of_events(root: Path, *, v2: bool) -> Path:
    """Two files; with ``v2`` the first (in name order) has a column added since v1."""
    newer = _events(CHECKPOINTS[0], range(0, 3))
    if v2:
        newer = newer.append_column(pa.field("lane", pa.string(), nullable=True), pa.array(["A", None, "B"]))
    _write(root, EVENTS, CHECKPOINTS[0], "p000-0000000002-o0-2.parquet", newer)
    _write(root, EVENTS, CHECKPOINTS[1], "p000-0000000001-o3-5.parquet", _events(CHECKPOINTS[1], range(3, 6)))
    return root


def test_replay_and_backtest_read_a_newer_file_beside_older_ones(tmp_path: Path) -> None:
    old, new = _lake_of_events(tmp_path / "v1", v2=False), _lake_of_events(tmp_path / "v2", v2=True)
    replayed = [list(parquet_records([root / EVENTS], 3)) for root in (old, new)]
    assert sum(len(batch) for batch in replayed[0]) == 6
    assert replayed[1] == replayed[0]
    backtested = [list(lake_records(root)) for root in (old, new)]
    assert backtested[1] == backtested[0] and sum(len(b) for b in backtested[0]) == 6
    with open_lake(new, load_registry()) as connection:
        found = query(connection, "SELECT count(*) AS n, count(lane) AS lanes FROM events").to_pylist()
    assert found == [{"n": 6, "lanes": 2}]


def _commit(seq: int, alerts: list[dict], *, publish: bool) -> CommitBatch:
    return CommitBatch(
        partition=0,
        commit_seq=seq,
        first_offset=seq,
        last_offset=seq,
        events={},
        alerts=[alert_from_dict(a) for a in alerts],
        snapshots=[],
        dead_letters=[],
        changes=[],
        metrics=MetricDeltas(),
        expired_buckets=[],
        expired_profiles=[],
        publish=publish,
    )


def test_alerts_staged_by_the_older_version_are_published_beside_newer_ones(tmp_path: Path) -> None:
    """A worker upgraded while alerts of v1 wait in staging publishes them with the next
    commit: the older rows read null in the newer columns (not a failed commit)."""
    sink = LakeSink(tmp_path, roll_seconds=3600)
    sink.flush(_commit(1, [_alert("a1")], publish=False))
    sink.committed(0, 1)
    (staged,) = (tmp_path / "_staging").rglob("alerts/**/*.parquet")
    pq.write_table(pq.read_table(staged).select(arrow_schema(rows.ALERT, 1).names), staged)  # as v1 wrote it
    sink.flush(_commit(2, [_alert("a2", cause="group", scope="UZB")], publish=True))
    sink.committed(0, 2)
    (published,) = (tmp_path / ALERTS).rglob("*.parquet")
    table = pq.read_table(published, schema=ALERTS_SCHEMA)
    assert table.select(["alert_id", "cause", "scope"]).to_pylist() == [
        {"alert_id": "a1", "cause": None, "scope": None},
        {"alert_id": "a2", "cause": "group", "scope": "UZB"},
    ]
