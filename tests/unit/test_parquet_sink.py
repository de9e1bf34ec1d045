"""ParquetSink: what lands on disk, and what a DuckDB reader sees of it."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import parquet_sink
from streams.parquet_sink import (
    ALERTS_SCHEMA,
    DAILY_COUNTS_SCHEMA,
    EVENTS_SCHEMA,
    EventRow,
    ParquetSink,
)

UTC = timezone.utc
ALMATY = ZoneInfo("Asia/Almaty")
PROCESSED_AT = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)


def event(
    number: int,
    checkpoint_id: str = "zhibek-zholy",
    occurred_at: datetime = datetime(2025, 3, 1, 20, 30, tzinfo=UTC),
    direction: str = "entry",
    nationality: str = "UZB",
    purpose: str = "labour",
) -> EventRow:
    local = occurred_at.astimezone(ALMATY)
    return EventRow(
        event_id=f"ev-{number}",
        checkpoint_id=checkpoint_id,
        local_day=local.date(),
        direction=direction,
        occurred_at=occurred_at,
        local_hour=local.hour,
        nationality=nationality,
        purpose=purpose,
        mode="car",
        outcome="admitted",
        kafka_partition=number % 4,
        kafka_offset=number,
        processed_at=PROCESSED_AT,
    )


def alert(number: int, checkpoint_id: str = "korday", local_day: str = "2025-03-02") -> dict:
    return {
        "version": 1,
        "alert_id": f"alert-{number}",
        "episode_id": f"{checkpoint_id}:entry:surge:{local_day}T09",
        "status": "firing",
        "kind": "surge",
        "checkpoint_id": checkpoint_id,
        "checkpoint_name": "Korday",
        "direction": "entry",
        "local_day": local_day,
        "window": "running_day",
        "as_of": f"2025-03-02T0{number}:00:00Z",
        "raised_at": "2025-03-02T10:00:00.123456+00:00",
        "observed": 3980,
        "expected": 1510.0,
        "ratio": 2.64,
        "score": 7.5,
        "drivers": [
            {"nationality": "UZB", "purpose": "labour", "observed": 2800, "expected": 450.0, "delta": 2350}
        ],
        "summary": "surge at Korday entry: 3,980 vs 1,510 expected (x2.64); UZB labour +2,350",
    }


def all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def read(root: Path, dataset: str, sql: str = "SELECT * FROM history") -> list[tuple]:
    """What an analyst's DuckDB sees through the usual hive glob."""
    scan = (
        "SELECT * FROM read_parquet($path, hive_partitioning = true,"
        " hive_types = {'date': DATE, 'checkpoint': VARCHAR})"
    )
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        path = str(root / dataset / "**" / "*.parquet")
        return connection.execute(f"WITH history AS ({scan}) {sql}", {"path": path}).fetchall()


def test_events_land_in_local_day_folders_and_a_reader_sees_every_row(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    # 20:30 UTC on 1 March is 01:30 on 2 March in Almaty: the folder is the local day.
    late_evening = [event(n) for n in range(3)]
    other_checkpoint = [event(n, "korday", datetime(2025, 3, 1, 10, tzinfo=UTC)) for n in range(3, 5)]
    for row in late_evening + other_checkpoint:
        sink.add_event(row)
    assert sink.pending() == 5

    stats = sink.flush()

    assert stats.events_rows == 5
    assert stats.events_files == 2
    assert sink.pending() == 0
    files = [path.relative_to(tmp_path).as_posix() for path in all_files(tmp_path)]
    assert files == [
        "events/date=2025-03-01/checkpoint=korday/part-worker-1-00000000.parquet",
        "events/date=2025-03-02/checkpoint=zhibek-zholy/part-worker-1-00000000.parquet",
    ]
    table = pq.read_table(tmp_path / files[1], partitioning=None)
    assert table.schema.equals(EVENTS_SCHEMA, check_metadata=False)
    assert pq.ParquetFile(tmp_path / files[1]).metadata.row_group(0).column(0).compression == "ZSTD"

    rows = read(
        tmp_path,
        "events",
        "SELECT date, checkpoint, event_id, occurred_at, local_hour FROM history ORDER BY event_id",
    )
    assert rows == [
        (date(2025, 3, 2), "zhibek-zholy", "ev-0", datetime(2025, 3, 1, 20, 30, tzinfo=UTC), 1),
        (date(2025, 3, 2), "zhibek-zholy", "ev-1", datetime(2025, 3, 1, 20, 30, tzinfo=UTC), 1),
        (date(2025, 3, 2), "zhibek-zholy", "ev-2", datetime(2025, 3, 1, 20, 30, tzinfo=UTC), 1),
        (date(2025, 3, 1), "korday", "ev-3", datetime(2025, 3, 1, 10, 0, tzinfo=UTC), 15),
        (date(2025, 3, 1), "korday", "ev-4", datetime(2025, 3, 1, 10, 0, tzinfo=UTC), 15),
    ]


def test_each_flush_appends_a_new_part_and_a_restart_does_not_reuse_names(tmp_path: Path) -> None:
    first = ParquetSink(tmp_path, "worker-1")
    first.add_event(event(1))
    first.flush()
    first.add_event(event(2))
    first.flush()
    # another writer whose id merely starts with the same text keeps its own numbering
    other = ParquetSink(tmp_path, "worker-10")
    other.add_event(event(3))
    other.flush()
    restarted = ParquetSink(tmp_path, "worker-1")
    restarted.add_event(event(4))
    restarted.flush()

    folder = tmp_path / "events/date=2025-03-02/checkpoint=zhibek-zholy"
    assert sorted(path.name for path in folder.iterdir()) == [
        "part-worker-1-00000000.parquet",
        "part-worker-1-00000001.parquet",
        "part-worker-1-00000002.parquet",
        "part-worker-10-00000000.parquet",
    ]
    assert read(tmp_path, "events", "SELECT event_id FROM history ORDER BY 1") == [
        ("ev-1",),
        ("ev-2",),
        ("ev-3",),
        ("ev-4",),
    ]


def test_counts_snapshot_is_replaced_and_last_put_wins(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    day = date(2025, 3, 2)
    as_of = datetime(2025, 3, 2, 4, tzinfo=UTC)
    sink.put_daily_counts("korday", day, [("entry", "KGZ", "labour", 1)], as_of)
    sink.put_daily_counts("korday", day, [("entry", "KGZ", "labour", 2)], as_of + timedelta(minutes=1))
    assert sink.pending() == 1
    assert sink.flush().daily_counts_files == 1
    assert read(tmp_path, "daily_counts", "SELECT count FROM history") == [(2,)]

    # a late event re-opens the day: the new snapshot replaces the old file as a whole
    late_as_of = datetime(2025, 3, 3, 8, tzinfo=UTC)
    sink.put_daily_counts(
        "korday", day, [("entry", "KGZ", "labour", 3), ("exit", "KAZ", "tourist", 5)], late_as_of
    )
    stats = sink.flush()

    assert stats.daily_counts_rows == 2
    folder = tmp_path / "daily_counts/date=2025-03-02/checkpoint=korday"
    assert [path.name for path in folder.iterdir()] == ["counts.parquet"]
    table = pq.read_table(folder / "counts.parquet", partitioning=None)
    assert table.schema.equals(DAILY_COUNTS_SCHEMA, check_metadata=False)
    assert read(
        tmp_path,
        "daily_counts",
        "SELECT date, checkpoint, direction, nationality, purpose, count, as_of FROM history ORDER BY 3",
    ) == [
        (day, "korday", "entry", "KGZ", "labour", 3, late_as_of),
        (day, "korday", "exit", "KAZ", "tourist", 5, late_as_of),
    ]


def test_alerts_keep_schema_fields_with_drivers_as_json(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    sink.add_alert(alert(1))
    sink.add_alert(alert(2))
    assert sink.flush().alerts_rows == 2

    path = tmp_path / "alerts/date=2025-03-02/checkpoint=korday/part-worker-1-00000000.parquet"
    table = pq.read_table(path, partitioning=None)
    assert table.schema.equals(ALERTS_SCHEMA, check_metadata=False)
    first = table.to_pylist()[0]
    assert "checkpoint_id" not in first and "local_day" not in first
    assert json.loads(first["drivers_json"]) == alert(1)["drivers"]
    assert first["as_of"] == datetime(2025, 3, 2, 1, tzinfo=UTC)
    assert first["raised_at"] == datetime(2025, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
    assert read(tmp_path, "alerts", "SELECT date, checkpoint, alert_id FROM history ORDER BY 3") == [
        (date(2025, 3, 2), "korday", "alert-1"),
        (date(2025, 3, 2), "korday", "alert-2"),
    ]


def test_failed_flush_raises_keeps_the_rest_buffered_and_a_retry_writes_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    for number in range(6):
        checkpoint_id = ("korday", "kegen", "dostyk")[number % 3]
        sink.add_event(event(number, checkpoint_id))
    sink.put_daily_counts("korday", date(2025, 3, 2), [("entry", "UZB", "labour", 2)], PROCESSED_AT)
    sink.add_alert(alert(1))
    assert sink.pending() == 8

    real_replace = os.replace
    calls = []

    def replace_then_fail(source: str, target: str) -> None:
        calls.append(target)
        if len(calls) == 2:  # the first folder lands, the second write fails
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(parquet_sink.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="No space left"):
        sink.flush()

    assert sink.pending() == 8 - 2  # the first folder's two events were written
    assert not [path for path in all_files(tmp_path) if path.name.startswith(".")]

    # events arriving after the failure are written together with the leftovers
    sink.add_event(event(6, "korday"))
    monkeypatch.setattr(parquet_sink.os, "replace", real_replace)
    stats = sink.flush()

    assert stats.events_rows == 5 and stats.alerts_rows == 1 and stats.daily_counts_files == 1
    assert sink.pending() == 0
    ids = [row[0] for row in read(tmp_path, "events", "SELECT event_id FROM history")]
    assert sorted(ids) == [f"ev-{number}" for number in range(7)]
    assert read(tmp_path, "alerts", "SELECT count(*) FROM history") == [(1,)]
    assert read(tmp_path, "daily_counts", "SELECT count FROM history") == [(2,)]
    assert not [path for path in all_files(tmp_path) if path.name.startswith(".")]


def test_failure_before_anything_lands_keeps_the_whole_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    sink.add_event(event(1))
    sink.add_alert(alert(1))

    def broken_write(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(parquet_sink.pq, "write_table", broken_write)
    with pytest.raises(OSError):
        sink.flush()
    assert sink.pending() == 2
    assert all_files(tmp_path) == []

    monkeypatch.undo()
    assert sink.flush().files == 2


def test_crash_leftover_temp_file_is_invisible_to_readers_and_cleaned_on_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    sink.add_event(event(1))
    sink.flush()

    # simulate a crash between writing the temporary file and renaming it
    def crash(source: str, target: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(parquet_sink.os, "replace", crash)
    monkeypatch.setattr(parquet_sink, "_discard", lambda path: None)
    sink.add_event(event(2))
    with pytest.raises(KeyboardInterrupt):
        sink.flush()
    monkeypatch.undo()

    folder = tmp_path / "events/date=2025-03-02/checkpoint=zhibek-zholy"
    leftovers = [path for path in folder.iterdir() if path.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")
    assert pq.read_table(leftovers[0], partitioning=None).num_rows == 1  # a complete Parquet file
    # the broadest *.parquet glob DuckDB users write does not pick it up
    assert read(tmp_path, "events", "SELECT event_id FROM history") == [("ev-1",)]

    restarted = ParquetSink(tmp_path, "worker-1")
    restarted.add_event(event(2))
    restarted.flush()
    assert sorted(path.name for path in folder.iterdir()) == [
        "part-worker-1-00000000.parquet",
        "part-worker-1-00000001.parquet",
    ]


@pytest.mark.parametrize("checkpoint_id", ["../etc", "a/b", "Korday", "x", "", "x' OR 1=1 --", "a" * 65])
def test_checkpoint_ids_that_are_not_path_safe_are_refused(tmp_path: Path, checkpoint_id: str) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    with pytest.raises(ValueError, match="checkpoint_id"):
        sink.add_event(event(1, checkpoint_id))
    with pytest.raises(ValueError, match="checkpoint_id"):
        sink.put_daily_counts(checkpoint_id, date(2025, 3, 2), [], PROCESSED_AT)
    with pytest.raises(ValueError, match="checkpoint_id"):
        sink.add_alert(alert(1, checkpoint_id=checkpoint_id))
    assert sink.pending() == 0


def test_bad_values_are_refused_when_added_not_when_flushed(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    good = event(1)
    naive = datetime(2025, 3, 1, 20, 30)
    bad_rows = [
        EventRow(**{**_fields(good), "occurred_at": naive}),
        EventRow(**{**_fields(good), "local_day": datetime(2025, 3, 2, tzinfo=UTC)}),
        EventRow(**{**_fields(good), "local_hour": 24}),
        EventRow(**{**_fields(good), "kafka_offset": "7"}),
        EventRow(**{**_fields(good), "nationality": None}),
    ]
    for row in bad_rows:
        with pytest.raises(ValueError):
            sink.add_event(row)
    with pytest.raises(ValueError, match="as_of"):
        sink.put_daily_counts("korday", date(2025, 3, 2), [], naive)
    with pytest.raises(ValueError, match="count"):
        sink.put_daily_counts("korday", date(2025, 3, 2), [("entry", "KAZ", "labour", -1)], PROCESSED_AT)
    with pytest.raises(ValueError, match="summary"):
        sink.add_alert({key: value for key, value in alert(1).items() if key != "summary"})
    with pytest.raises(ValueError, match="as_of"):
        sink.add_alert({**alert(1), "as_of": "2025-03-02T01:00:00"})
    with pytest.raises(ValueError, match="writer_id"):
        ParquetSink(tmp_path, "../w")
    assert sink.pending() == 0
    stats = sink.flush()
    assert stats.files == 0 and stats.events_rows == 0
    assert all_files(tmp_path) == []


def _fields(row: EventRow) -> dict:
    return {name: getattr(row, name) for name in EventRow.__dataclass_fields__}


CHECKPOINTS = ["zhibek-zholy", "korday", "nur-zholy", "ala-airport"]
START = datetime(2025, 3, 1, tzinfo=UTC)

event_specs = st.lists(
    st.tuples(
        st.sampled_from(CHECKPOINTS),
        st.integers(min_value=0, max_value=4 * 24 * 60 - 1),  # minutes into a 4-day window
        st.sampled_from(["entry", "exit"]),
        st.sampled_from(["KAZ", "UZB", "KGZ"]),
    ),
    max_size=60,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=event_specs, flushes=st.integers(min_value=1, max_value=3))
def test_duckdb_group_counts_equal_the_rows_added(specs: list[tuple], flushes: int) -> None:
    expected: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sink = ParquetSink(root, "prop")
        for number, (checkpoint_id, minute, direction, nationality) in enumerate(specs):
            row = event(number, checkpoint_id, START + timedelta(minutes=minute), direction, nationality)
            sink.add_event(row)
            expected[(row.local_day, checkpoint_id, direction, nationality)] += 1
            if flushes > 1 and number % flushes == 0:
                sink.flush()
        sink.flush()
        if not specs:
            assert all_files(root) == []
            return
        observed = read(
            root,
            "events",
            "SELECT date, checkpoint, direction, nationality, count(*) FROM history GROUP BY ALL",
        )
    assert {key[:4]: key[4] for key in observed} == dict(expected)


def test_aware_datetimes_in_any_zone_are_stored_as_the_same_instant_in_utc(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, "worker-1")
    local_time = datetime(2025, 3, 2, 1, 30, tzinfo=ALMATY)  # 20:30 UTC the day before
    sink.add_event(event(1, occurred_at=local_time))
    sink.flush()
    assert read(tmp_path, "events", "SELECT date, occurred_at FROM history") == [
        (date(2025, 3, 2), datetime(2025, 3, 1, 20, 30, tzinfo=UTC))
    ]
