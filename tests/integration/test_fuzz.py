"""Hostile messages of every kind mixed into valid traffic, against a running worker.

2,000 bad messages (every kind of ``load_tests/hostile.py``: deep nesting, huge numbers,
invalid UTF-8, NUL bytes, huge strings up to the events topic's size limit, wrong types,
null and wrong keys, empty values, future-stamped and too-late events, unknown
checkpoints, schema violations, conflicting and re-sent copies, valid events around the
event bound and other messages around the dead-letter bound under right, wrong and null
keys, gzip bombs on both sides of the decompression bound, records with neither key nor
value) among 5,000 messages of scenario traffic, on the session's broker. The long version is
``python -m load_tests.fuzz --bad 50000``.
"""

from __future__ import annotations

import json

import pytest

from load_tests import hostile
from load_tests.fuzz import run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("lake", ["parquet", "ducklake", "ducklake-s3"])
def test_every_bad_message_is_dead_lettered_with_its_reason_and_every_valid_one_counted_once(
    kafka_bootstrap, tmp_path, lake, request
):
    # ducklake-s3: a PostgreSQL catalog and the files on the S3 store (``shared_lake``).
    env = request.getfixturevalue("shared_lake") if lake == "ducklake-s3" else {"CROSSINGS_LAKE": lake}
    result = run(
        kafka_bootstrap,
        tmp_path,
        bad=2000,
        valid=5000,
        seed=5,
        drain_timeout=300,
        extra_env=env,
    )
    figures = json.dumps(result.figures(), indent=1, default=str)
    print(result.table())  # shown with -s or -rA
    assert not result.not_drained, figures
    assert result.bad_sent == 2000 and set(result.kinds) == set(hostile.KINDS), figures
    assert all(f.sent > 0 for f in result.kinds.values()), figures
    # every bad message dead-lettered exactly once, with the reason it deserves, unchanged
    assert result.missing_dead_letters == [] and result.wrong_reasons == [], figures
    assert result.repeated_dead_letters == [] and result.unexpected_dead_letters == [], figures
    assert result.altered_dead_letters == [], figures
    for kind, f in result.kinds.items():
        assert f.dead_lettered == f.reason_ok == f.expected_dead_letters, (kind, figures)
    # every valid event counted exactly once; re-sent copies dropped and counted as such
    assert result.event_rows == result.distinct_event_ids == result.unique_valid_events, figures
    assert result.count_mismatches == {} and result.metric_mismatches == {}, figures
    assert all(f["expected"] == f["once"] > 0 for f in result.by_partition.values()), figures
    # one worker process from start to end, no traceback, clean stop
    assert result.worker_alive_at_end and result.worker_pid_at_end == result.worker_pid, figures
    assert result.worker_trouble == [] and result.worker_exit_code == 0, figures
    assert result.ok, figures
