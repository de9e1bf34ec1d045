"""SIGKILL workers that share nothing but Kafka, an S3 store and a PostgreSQL catalog (a
home and a data folder each, as on two hosts): the DuckLake lake is exact
(``load_tests/crash_test.py``, as ``test_crash.py``).

Both services are real and started by the project (SeaweedFS, PostgreSQL; fixtures in
``conftest.py``, ``shared_lake`` among them); each test gets a database of its own and a
prefix of the bucket. Two
workers commit to the same catalog: a kill moves partitions to the other worker, whose
opening fences the dead one's epoch and undoes a catalog commit Kafka did not make.
"""

from __future__ import annotations

import json

import pytest
from test_crash import _check

from load_tests.crash_test import run

pytestmark = pytest.mark.integration


def test_one_of_two_workers_on_s3_and_postgres_killed(kafka_bootstrap, tmp_path, shared_lake):
    result = run(
        kafka_bootstrap,
        tmp_path,
        events=None,
        days=7,
        kills=2,
        workers=2,
        seed=12,
        drain_timeout=300,
        extra_env=shared_lake,
    )
    print(json.dumps(result.summary(), default=str)[:200])
    _check(result, kills=2)
    assert result.lake.startswith("ducklake:postgres:") and "s3://" in result.lake
    # Two hosts: each worker its own home and data folder, and no lake file in either.
    assert len(set(result.worker_data_dirs)) == 2 and result.local_lake_files == []


def test_three_workers_one_joining_one_stalling_on_s3_and_postgres(kafka_bootstrap, tmp_path, shared_lake):
    # A worker stopped past its session timeout is a zombie when it resumes: its partitions
    # were taken (their lake epochs raised); whatever it commits is refused and it lets go.
    result = run(
        kafka_bootstrap,
        tmp_path,
        events=None,
        days=7,
        kills=2,
        workers=3,
        pauses=1,
        seed=13,
        drain_timeout=300,
        extra_env=shared_lake,
    )
    _check(result, kills=2)
    assert result.partitions == 6 and [entry["worker"] for entry in result.join_log] == [2]
    assert len(result.pause_log) == 1
