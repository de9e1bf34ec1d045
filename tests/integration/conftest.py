"""One real Kafka broker (the project's own, from its Maven jars) for the integration tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from streams.ops import broker

PORT = int(os.environ.get("CROSSINGS_TEST_KAFKA_PORT", "19492"))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    """Bootstrap of a broker for this session: $CROSSINGS_TEST_BOOTSTRAP, or one started here."""
    external = os.environ.get("CROSSINGS_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    kafka_dir = Path(tmp_path_factory.mktemp("kafka"))
    status = broker.up(kafka_dir, PORT, timeout=180)
    try:
        yield status.bootstrap
    finally:
        broker.down(kafka_dir)


@pytest.fixture
def namespace() -> str:
    """Topic namespace and app id unique to one test, so tests sharing the broker never mix."""
    return f"it-{uuid.uuid4().hex[:10]}"


# The lake's services (issue 19): ports next to the broker's, so helpers and CI runs that
# pick their own CROSSINGS_TEST_KAFKA_PORT do not collide. SeaweedFS takes S3_PORT..+4
# and the same +10,000 for gRPC; PostgreSQL PG_PORT and PG_PORT + 1.
S3_PORT = int(os.environ.get("CROSSINGS_TEST_S3_PORT", str(PORT + 4)))
PG_PORT = int(os.environ.get("CROSSINGS_TEST_PG_PORT", str(PORT + 9)))


def _need_service(what: str, error: Exception) -> None:
    """A service the project cannot install here: skip, or fail where CI says it must run."""
    message = f"{what}: {error}"
    if os.environ.get("CROSSINGS_REQUIRE_SYSTEM_PACKAGES") == "1":
        pytest.fail(message + "; CROSSINGS_REQUIRE_SYSTEM_PACKAGES=1 says it must be there")
    pytest.skip(message)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    """A real S3 object store (SeaweedFS, built once from the Go module proxy) with bucket ``lake``."""
    from streams.ops.lakestore import ServiceError, seaweedfs

    directory = Path(tmp_path_factory.mktemp("s3"))
    try:
        seaweedfs.install()
    except ServiceError as error:
        _need_service("SeaweedFS", error)
    store = seaweedfs.up(directory, S3_PORT)
    try:
        yield store
    finally:
        seaweedfs.down(directory)


@pytest.fixture(scope="session")
def pg_catalog():
    """A throwaway PostgreSQL cluster (Debian's package) with database ``lake``."""
    import shutil
    import tempfile

    from streams.ops.lakestore import ServiceError, postgres

    try:
        postgres.bin_dir()
    except ServiceError as error:
        _need_service("PostgreSQL", error)
    # Not under pytest's tmp dirs: those are mode 0700, and the server runs as 'postgres'.
    directory = Path(tempfile.mkdtemp(prefix="crossings-test-pg-"))
    os.chmod(directory, 0o755)
    try:
        yield postgres.up(directory / "cluster", PG_PORT)
    finally:
        postgres.down(directory / "cluster")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def shared_lake(s3_store, pg_catalog, monkeypatch) -> dict[str, str]:
    """CROSSINGS_LAKE and the store's credentials, for the workers and for this process."""
    name = f"lake_{uuid.uuid4().hex[:8]}"
    catalog = pg_catalog.create_database(name).libpq
    credentials = {
        "AWS_ACCESS_KEY_ID": s3_store.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_store.secret_key,
        "AWS_ENDPOINT_URL": f"http://{s3_store.endpoint}",
    }
    for key, value in credentials.items():  # the lake is read here too
        monkeypatch.setenv(key, value)
    return {
        "CROSSINGS_LAKE": f"ducklake:postgres:{catalog}",
        "CROSSINGS_LAKE_DATA_PATH": f"s3://{s3_store.bucket}/{name}/",
        # Small: most commits write Parquet objects to the bucket, not inlined rows.
        "CROSSINGS_LAKE_INLINE_ROWS": "50",
        **credentials,
    }


@pytest.fixture
def folder_pg_lake(pg_catalog, tmp_path_factory) -> dict[str, str]:
    """CROSSINGS_LAKE for several workers on one host: DuckLake with a PostgreSQL catalog
    (a database of this test's own) and its files in one folder every worker writes, as
    the compose stack runs it."""
    name = f"lake_{uuid.uuid4().hex[:8]}"
    catalog = pg_catalog.create_database(name).libpq
    files = Path(tmp_path_factory.mktemp("lake-files"))
    return {"CROSSINGS_LAKE": f"ducklake:postgres:{catalog}", "CROSSINGS_LAKE_DATA_PATH": f"{files}/"}
