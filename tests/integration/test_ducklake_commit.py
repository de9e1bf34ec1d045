"""DuckLake on the real S3 store with a PostgreSQL catalog keeps the commit protocol's promises.

Rows and the partition's (commit sequence, last offset) land in one catalog transaction;
the same sequence again adds nothing; a writer whose epoch is stale (the partition was
taken by another) is refused, also when the takeover lands in the middle of its commit.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from pyarrow import fs

from streams.sinks.ducklake.commit import (
    Fenced,
    LakeLocation,
    PartitionWriter,
    S3Access,
    connect,
    ensure_table,
)

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("event_id", pa.string()), ("checkpoint_id", pa.string()), ("kafka_offset", pa.int64())])


def rows(first: int, count: int) -> pa.Table:
    return pa.table(
        {
            "event_id": [f"e-{o}" for o in range(first, first + count)],
            "checkpoint_id": ["dostyk" if o % 2 else "khorgos" for o in range(first, first + count)],
            "kafka_offset": list(range(first, first + count)),
        },
        schema=SCHEMA,
    )


@pytest.fixture
def lake(s3_store, pg_catalog) -> tuple[LakeLocation, str]:
    """A lake of its own: a prefix of the bucket and a schema of the catalog database."""
    prefix = f"ducklake_{uuid.uuid4().hex[:8]}"
    location = LakeLocation(
        catalog=f"postgres:{pg_catalog.libpq}",
        data_path=f"s3://{s3_store.bucket}/{prefix}/",
        s3=S3Access(s3_store.endpoint, s3_store.access_key, s3_store.secret_key),
        inline_rows=10,  # commits of more rows are Parquet objects in the bucket
        metadata_schema=prefix,
    )
    return location, prefix


def _writer(location: LakeLocation, partition: int) -> PartitionWriter:
    con = connect(location)
    ensure_table(con, "events", SCHEMA, ["checkpoint_id"])
    return PartitionWriter(con, partition)


def _state(con, partition: int) -> tuple[int, tuple[int, int, int]]:
    count = con.execute("SELECT count(*) FROM lake.events").fetchone()[0]
    offsets = con.execute(
        "SELECT commit_seq, last_offset, epoch FROM lake.commits WHERE kafka_partition = ?", [partition]
    ).fetchone()
    return count, offsets


def test_a_commit_is_idempotent_by_partition_and_sequence_and_a_stale_epoch_is_refused(lake, s3_store):
    location, prefix = lake
    owner = _writer(location, 0)
    assert owner.open() == (0, -1)
    assert owner.commit(1, 99, {"events": rows(0, 100)}) == "committed"
    assert owner.commit(1, 99, {"events": rows(0, 100)}) == "duplicate"  # a retry of an unknown outcome
    assert _state(owner.con, 0) == (100, (1, 99, 1))

    successor = _writer(location, 0)
    assert successor.open() == (1, 99)  # resumes where the lake says
    with pytest.raises(Fenced):
        owner.commit(2, 199, {"events": rows(100, 100)})
    assert successor.commit(2, 199, {"events": rows(100, 100)}) == "committed"
    assert _state(successor.con, 0) == (200, (2, 199, 2))

    s3 = fs.S3FileSystem(
        endpoint_override=s3_store.endpoint,
        scheme="http",
        access_key=s3_store.access_key,
        secret_key=s3_store.secret_key,
        region="us-east-1",
    )
    objects = s3.get_file_info(fs.FileSelector(f"{s3_store.bucket}/{prefix}", recursive=True))
    assert any(info.path.endswith(".parquet") for info in objects)  # the rows are on S3


def test_a_takeover_in_the_middle_of_a_commit_refuses_the_zombie(lake):
    location, _prefix = lake
    zombie = _writer(location, 3)
    zombie.open()
    assert zombie.commit(1, 9, {"events": rows(0, 10)}) == "committed"
    successor = _writer(location, 3)

    def takeover() -> None:  # the zombie has read epoch 1 and written its rows, not yet committed
        successor.open()
        assert successor.commit(2, 19, {"events": rows(10, 10)}) == "committed"

    with pytest.raises(Fenced):
        zombie.commit(2, 29, {"events": rows(1000, 20)}, before_commit=takeover)
    count, offsets = _state(successor.con, 3)
    assert (count, offsets) == (20, (2, 19, 2))  # the zombie's 20 rows are nowhere


def test_another_partitions_commit_landing_first_is_retried_not_lost(lake):
    location, _prefix = lake
    first, second = _writer(location, 5), _writer(location, 6)
    first.open()
    second.open()

    def meanwhile() -> None:
        assert first.commit(1, 9, {"events": rows(0, 10)}) == "committed"

    assert second.commit(1, 109, {"events": rows(100, 10)}, before_commit=meanwhile) == "committed"
    assert second.retries >= 1  # the catalog refused the first attempt; the second landed
    assert first.con.execute("SELECT count(*) FROM lake.events").fetchone()[0] == 20
