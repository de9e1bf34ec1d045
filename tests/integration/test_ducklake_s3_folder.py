"""A data folder holding the default catalog whose files are on S3 (``CROSSINGS_LAKE_DATA_PATH
=s3://...``, issue 19): readers given only the folder (``streams.query``, the replay's and
the backtest's lake source) read it with the store the settings name, as the worker wrote
it. Before, they attached it with the bare default and had no way into the bucket."""

from __future__ import annotations

import uuid

import duckdb
import pytest

from streams import query
from streams.replay.sources import ducklake_events
from streams.settings.lake import load_lake
from streams.sinks.ducklake.sink import location_of, open_lake

pytestmark = pytest.mark.integration

ROWS = 120


@pytest.fixture
def folder_on_s3(s3_store, tmp_path, monkeypatch):
    """A data folder whose catalog is the default ``lake.sqlite``, its rows in files on S3."""
    env = {
        "AWS_ACCESS_KEY_ID": s3_store.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_store.secret_key,
        "AWS_ENDPOINT_URL": f"http://{s3_store.endpoint}",
        "CROSSINGS_LAKE_DATA_PATH": f"s3://{s3_store.bucket}/folder_{uuid.uuid4().hex[:8]}/",
        "CROSSINGS_LAKE_INLINE_ROWS": "0",  # every row in a file in the bucket
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CROSSINGS_LAKE", raising=False)
    data = tmp_path / "data"
    con = open_lake(location_of(load_lake(env), data))
    con.execute(
        "INSERT INTO lake.events (local_day, checkpoint_id, kafka_partition, kafka_offset, commit_seq) "
        "SELECT DATE '2026-03-10', 'CP' || (i % 3), 0, i, 1 FROM range(?) t(i)",
        [ROWS],
    )
    con.close()
    assert (data / "lake.sqlite").is_file()
    assert not list(data.rglob("*.parquet"))  # the rows are in the bucket, not here
    return data


def test_a_report_given_the_folder_reads_the_rows_in_the_bucket(folder_on_s3) -> None:
    assert query.events_count(folder_on_s3) == ROWS
    assert query.events_count(folder_on_s3, checkpoint="CP1") == ROWS // 3


def test_the_replay_source_given_the_folder_reads_the_rows_in_the_bucket(folder_on_s3) -> None:
    with duckdb.connect() as connection:
        events = ducklake_events(connection, folder_on_s3)
        assert connection.sql(f"SELECT count(*), sum(kafka_offset) FROM {events}").fetchall() == [
            (ROWS, sum(range(ROWS)))
        ]
