"""The lake's services start as the project starts them: SeaweedFS's S3 and a PostgreSQL catalog.

Real servers on 127.0.0.1 (never a mock): a Parquet file goes to the bucket and back, a
wrong secret is refused, and the PostgreSQL cluster keeps its data across down and up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from streams.ops.lakestore import ServiceError, postgres, seaweedfs

pytestmark = pytest.mark.integration


def _s3(store: seaweedfs.S3Store, secret: str | None = None) -> fs.S3FileSystem:
    return fs.S3FileSystem(
        endpoint_override=store.endpoint,
        scheme="http",
        access_key=store.access_key,
        secret_key=store.secret_key if secret is None else secret,
        region="us-east-1",
        retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


def test_a_parquet_file_goes_to_the_bucket_and_back(s3_store):
    assert s3_store.endpoint.startswith("127.0.0.1:")
    table = pa.table({"checkpoint_id": ["dostyk", "khorgos"], "count": [3, 4]})
    path = f"{s3_store.bucket}/it/{os.getpid()}/counts.parquet"
    pq.write_table(table, path, filesystem=_s3(s3_store))
    assert pq.read_table(path, filesystem=_s3(s3_store)).equals(table)
    assert s3_store.secret_key not in repr(s3_store)


def test_a_wrong_secret_is_refused(s3_store):
    with pytest.raises(OSError):
        pq.write_table(
            pa.table({"a": [1]}), f"{s3_store.bucket}/it/wrong.parquet", filesystem=_s3(s3_store, "x" * 40)
        )


def test_the_store_refuses_a_port_in_use(s3_store, tmp_path):
    _host, port = s3_store.endpoint.rsplit(":", 1)
    with pytest.raises(ServiceError, match="already in use"):
        seaweedfs.up(tmp_path / "second", int(port))


def _psql(catalog: postgres.Catalog, sql: str) -> str:
    done = subprocess.run(
        [
            str(postgres.bin_dir() / "psql"),
            "-h",
            catalog.host,
            "-p",
            str(catalog.port),
            "-U",
            catalog.user,
            "-d",
            catalog.database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_the_catalog_server_answers_on_loopback(pg_catalog):
    assert pg_catalog.host == "127.0.0.1"
    assert _psql(pg_catalog, "SELECT current_database()") == "lake"
    assert _psql(pg_catalog, "SHOW listen_addresses") == "127.0.0.1"


def test_a_cluster_keeps_its_data_across_down_and_up(pg_catalog):
    port = pg_catalog.port + 1  # the session's cluster proves the package is there; this one is its own
    directory = Path(tempfile.mkdtemp(prefix="crossings-test-pg-"))
    os.chmod(directory, 0o755)
    try:
        catalog = postgres.up(directory / "cluster", port)
        _psql(
            catalog,
            "CREATE TABLE offsets (kafka_partition int, commit_seq bigint);"
            " INSERT INTO offsets VALUES (0, 7)",
        )
        assert postgres.status(directory / "cluster", port).running
        postgres.down(directory / "cluster")
        assert not postgres.status(directory / "cluster", port).running
        catalog = postgres.up(directory / "cluster", port)
        assert _psql(catalog, "SELECT commit_seq FROM offsets WHERE kafka_partition = 0") == "7"
    finally:
        postgres.down(directory / "cluster")
        shutil.rmtree(directory, ignore_errors=True)
