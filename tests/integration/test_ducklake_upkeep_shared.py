"""The lake's upkeep on the several-host lake: a PostgreSQL catalog and an S3 store (both
real, started by the project: ``conftest.py``), with a reader querying throughout.

As ``tests/unit/test_ducklake_upkeep.py`` on SQLite: small commits inlined in the catalog,
then compaction writes them out to the bucket, merges and expires, round after round; every
answer of a reader running all along is exactly what the lake held. Then retention, seen
by the reader as the lake before it or after it, never a mix.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from streams.settings.lake import load_lake
from streams.sinks.ducklake import upkeep
from streams.sinks.ducklake.read import attach
from streams.sinks.ducklake.sink import location_of, open_lake

pytestmark = pytest.mark.integration

TODAY = date(2026, 3, 10)
DAYS = [TODAY - timedelta(days=n) for n in range(6)]


def _totals(where: str = "TRUE") -> str:
    """A count and sums over every table: one query, one snapshot."""
    return (
        f"SELECT (SELECT count(*) FROM lake.events WHERE {where}), "
        f"(SELECT sum(kafka_offset) FROM lake.events WHERE {where}), "
        f"(SELECT count(*) FROM lake.alerts WHERE {where}), "
        f"(SELECT sum(count) FROM lake.daily_counts WHERE {where})"
    )


TOTALS = _totals()
ROUNDS = 4
#: A column of each table the commits fill (the others are left null).
COLUMNS = {"events": "kafka_offset", "alerts": "kafka_partition", "daily_counts": "count"}


@pytest.fixture
def shared_lake(s3_store, pg_catalog, monkeypatch):
    """The lake's setting, on a database and a bucket prefix of this test's own."""
    name = f"upkeep_{uuid.uuid4().hex[:8]}"
    catalog = pg_catalog.create_database(name).libpq
    credentials = {
        "AWS_ACCESS_KEY_ID": s3_store.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_store.secret_key,
        "AWS_ENDPOINT_URL": f"http://{s3_store.endpoint}",
    }
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)
    return load_lake(
        {
            "CROSSINGS_LAKE": f"ducklake:postgres:{catalog}",
            "CROSSINGS_LAKE_DATA_PATH": f"s3://{s3_store.bucket}/{name}/",
            "CROSSINGS_LAKE_INLINE_ROWS": "1000",
            **credentials,
        }
    )


def _commit(con: duckdb.DuckDBPyConnection, first: int, rows: int, seq: int) -> None:
    days = ", ".join(f"DATE '{d}'" for d in DAYS)
    con.execute("BEGIN")
    for table, column in COLUMNS.items():
        con.execute(
            f"INSERT INTO lake.{table} (local_day, checkpoint_id, {column}, commit_seq) "
            f"SELECT ([{days}])[1 + i % 6], 'CP' || (i % 4), i, ? FROM range(?, ?) t(i)",
            [seq, first, first + rows],
        )
    con.execute("COMMIT")


def test_a_reader_counts_exactly_through_upkeep_on_s3_and_postgres(shared_lake, tmp_path):
    writer = open_lake(location_of(shared_lake, tmp_path), dead_letters=True)  # inlines
    con = upkeep.open_for_upkeep(location_of(shared_lake, tmp_path))
    reader = attach(shared_lake, tmp_path)  # read-only, as an analyst's DuckDB
    first = 0
    for seq in range(6):  # files in the bucket
        _commit(writer, first, 5_000, seq)
        first += 5_000
    # What a read may answer: the lake's totals, or (during retention) before or after it.
    expected = [{writer.execute(TOTALS).fetchall()[0]}]
    lock = threading.Lock()
    seen: list[tuple[set, tuple]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                with lock:
                    want = expected[-1]
                    seen.append((want, reader.execute(TOTALS).fetchall()[0]))
        except BaseException as error:
            errors.append(error)

    def wait_for(reads: int) -> None:
        while len(seen) < reads and thread.is_alive():
            threading.Event().wait(0.005)

    thread = threading.Thread(target=read)
    thread.start()
    during = []
    for round_ in range(ROUNDS):
        with lock:  # the worker's small commits, inlined: the reader expects them after
            for seq in range(10):
                _commit(writer, first, 20, 100 + round_ * 10 + seq)
                first += 20
            expected.append({writer.execute(TOTALS).fetchall()[0]})
        reads = len(seen)
        stats = upkeep.compact(con, keep=timedelta(0))
        assert stats.inlined_rows_flushed == 10 * 20 * 3
        during.append(len(seen) - reads)
        wait_for(len(seen) + 1)
    # Retention: the reader sees the lake before it or after it, never a mix.
    kept = writer.execute(_totals(f"local_day >= DATE '{TODAY - timedelta(days=3)}'")).fetchall()[0]
    with lock:
        expected.append(expected[-1] | {kept})
    upkeep.expire(con, 3, TODAY)
    with lock:
        expected.append({kept})
    wait_for(len(seen) + 1)
    stop.set()
    thread.join(60)

    assert not errors, errors
    print("reads during each compaction", during, "reads", len(seen))
    assert all(during), during
    wrong = [(want, got) for want, got in seen if got not in want]
    assert not wrong, f"{len(wrong)} of {len(seen)} reads off, e.g. {wrong[:3]}"
    assert seen[-1][1] == kept
    # Later, past the grace: the unlinked objects and the written-out rows go; rows stay.
    later = upkeep.compact(con, keep=timedelta(0), now=datetime.now(timezone.utc) + timedelta(hours=2))
    assert later.files_deleted > 0 and later.inlined_rows_purged > 0
    assert con.execute(TOTALS).fetchall()[0] == kept
