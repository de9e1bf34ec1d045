"""The lake's object store and its catalog going away mid-run, end to end: two workers on
the DuckLake lake (SeaweedFS for the files, PostgreSQL for the catalog, both this test's
own: they are stopped), the object store stopped for 20 s and then the catalog's server
for 20 s while traffic flows, shut down cleanly or crashed (SeaweedFS killed, PostgreSQL's
immediate shutdown: connections cut mid-statement, the catalog recovered from its WAL).
The workers ride it out without a restart (their commits held back as storage faults,
retried until the service is back), and afterwards the lake holds every event once and
the daily counts agree with what was sent."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import PG_PORT, _need_service

from load_tests.crash_test import run

pytestmark = pytest.mark.integration

#: Past the session's own services (S3 at PORT + 4..8, PostgreSQL at PG_PORT and + 1).
S3_PORT = PG_PORT + 2
OWN_PG_PORT = PG_PORT + 7


class _Services:
    """Stop and start the object store and the catalog in turn: the first outage takes the
    object store away, the second the catalog's server."""

    def __init__(self, s3_dir: Path, pg_dir: Path, *, crash: bool) -> None:
        from streams.ops.lakestore import postgres, seaweedfs

        self.s3_dir, self.pg_dir = s3_dir, pg_dir
        self.turns = [
            (
                "object store",
                lambda: seaweedfs.down(s3_dir, crash=crash),
                lambda: seaweedfs.up(s3_dir, S3_PORT),
            ),
            (
                "catalog",
                lambda: postgres.down(pg_dir, crash=crash),
                lambda: postgres.up(pg_dir, OWN_PG_PORT),
            ),
        ]
        self.stopped: list[str] = []
        self._up = None

    def stop(self) -> None:
        name, down, up = self.turns[len(self.stopped)]
        self.stopped.append(name)
        self._up = up
        down()

    def start(self) -> None:
        assert self._up is not None
        self._up()


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "crashed"])
def test_two_workers_ride_out_the_object_store_and_the_catalog_going_away(kafka_bootstrap, tmp_path, crash):
    from streams.ops.lakestore import ServiceError, postgres, seaweedfs

    try:
        seaweedfs.install()
        postgres.bin_dir()
    except ServiceError as error:
        _need_service("SeaweedFS and PostgreSQL", error)
    s3_dir = tmp_path / "s3"
    # Not under pytest's tmp dirs: those are mode 0700, and the server runs as 'postgres'.
    pg_root = Path(tempfile.mkdtemp(prefix="crossings-test-pg-outage-"))
    os.chmod(pg_root, 0o755)
    pg_dir = pg_root / "cluster"
    try:
        store = seaweedfs.up(s3_dir, S3_PORT)
        catalog = postgres.up(pg_dir, OWN_PG_PORT)
        credentials = {
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            "AWS_ENDPOINT_URL": f"http://{store.endpoint}",
        }
        os.environ.update(credentials)  # the lake is read here too, after the run
        services = _Services(s3_dir, pg_dir, crash=crash)
        result = run(
            kafka_bootstrap,
            tmp_path / "run",
            events=None,
            days=5,
            kills=0,
            workers=2,
            seed=31,
            outages=(20.0, 20.0),
            broker_control=(services.stop, services.start),
            outage_of="lake service",
            extra_env={
                "CROSSINGS_LAKE": f"ducklake:postgres:{catalog.libpq}",
                "CROSSINGS_LAKE_DATA_PATH": f"s3://{store.bucket}/outage/",
                # Small: most commits write Parquet objects to the bucket, not inlined rows.
                "CROSSINGS_LAKE_INLINE_ROWS": "50",
                **credentials,
            },
            drain_timeout=600,
        )
    finally:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
            os.environ.pop(key, None)
        seaweedfs.down(s3_dir)
        postgres.down(pg_dir)
        shutil.rmtree(pg_root, ignore_errors=True)
    summary = json.dumps(result.summary(), indent=2, default=str)
    print(summary)
    assert services.stopped == ["object store", "catalog"], summary
    assert [o["seconds"] for o in result.outage_log] == [20.0, 20.0], summary
    # Neither worker died or was restarted: both stopped by the test's SIGTERM, cleanly.
    assert result.kills == 0 and result.worker_exit_codes == [0, 0], summary
    assert not result.not_drained, summary
    assert result.event_rows == result.distinct_event_ids == result.unique_valid_events, summary
    assert result.count_mismatches == {} and result.dead_letter_mismatch == 0, summary
    assert result.exact, summary
    # The commits that met each outage were held back as storage faults (the lake away),
    # not as a record's fault: no operator is told to move a record aside.
    worker_logs = sorted((tmp_path / "run").glob("worker-*.log"))
    logs = "".join(path.read_text(errors="replace") for path in worker_logs)
    held = re.findall(r"partition \d+ (?:held back|QUARANTINED) \((\w+)", logs)
    assert held and set(held) == {"storage"}, held
    assert "Unable to connect to Postgres" in logs and "Could not connect to server" in logs
