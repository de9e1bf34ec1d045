"""SIGKILL workers while traffic flows; once the group drains, the lake is exact.

A week of scenario traffic (valid, late, re-sent duplicates, invalid) plus extra re-sent
copies, against the session's broker; the kills alternate between random moments and
right after a commit's first Parquet file lands (between the files and the Kafka
transaction). Several workers share a DuckLake lake through a PostgreSQL catalog: here
with its files in one folder (one host), in ``test_crash_ducklake_s3.py`` on an S3 store
with three workers, one joining mid-run and one stalled into a zombie.
The long version is ``python -m load_tests.crash_test``.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from load_tests.crash_test import run
from load_tests.scenario import DEFAULT_START, ScenarioSpec, closure, labour_surge

pytestmark = pytest.mark.integration


def _check(result, kills: int) -> None:
    summary = json.dumps(result.summary(), indent=2, default=str)
    print(summary)  # shown with -s or -rA: what the kills hit and the figures
    assert result.kills == kills, summary
    assert not result.not_drained, summary
    # events rows == unique valid events sent, and no event_id twice
    assert result.event_rows == result.unique_valid_events, summary
    assert result.distinct_event_ids == result.event_rows, summary
    assert result.missing_event_ids == [] and result.doubled_event_ids == {}, summary
    # sum of daily_counts per checkpoint, local day and direction == the oracle
    assert result.count_mismatches == {}, summary
    # every invalid message dead-lettered exactly once (read_committed)
    assert result.dead_letter_mismatch == 0, summary
    # lake rows are staged and published every 2 s: nothing left staged after the stop
    assert result.staged_left == 0 and result.event_files > 0, summary
    assert result.exact, summary


#: 17 days of two checkpoints: past the detector's 14-day warm-up, a UZB labour surge at
#: Zhibek Zholy on the last two days and Korday silent on the last one, so alerts are raised
#: by workers restarted after kills (their detectors restored from the changelog). Three
#: kills land anywhere in the traffic; one more lands inside a commit whose transaction
#: carries alerts (held open there by load_tests/alert_hold until the kill).
LAST_DAY = DEFAULT_START + timedelta(days=16)
ALERTING = ScenarioSpec(
    days=17,
    checkpoints=("zhibek-zholy", "korday"),
    anomalies=(
        labour_surge(DEFAULT_START + timedelta(days=15), LAST_DAY, "UZB labour entries x3 for two days"),
        closure("korday", LAST_DAY, LAST_DAY, "Korday silent on the last day"),
    ),
)


def test_alerts_are_raised_exactly_once_across_kills(kafka_bootstrap, tmp_path):
    # The alerts topic (read_committed) and the lake's alerts/ each hold every alert of an
    # uninterrupted run of the same core over the same topic (``crossings replay``), once.
    # The idle timer (wall clock: a killed worker's partitions fall silent) is out of it.
    result = run(
        kafka_bootstrap,
        tmp_path,
        events=None,
        spec=ALERTING,
        kills=3,
        workers=1,
        seed=14,
        drain_timeout=300,
        check_alerts=True,
        alert_kills=1,
        extra_env={"CROSSINGS_IDLE_AFTER_SECONDS": "86400"},
    )
    summary = json.dumps(result.summary(), indent=2, default=str)
    _check(result, kills=3)
    assert result.alerts_reference >= 3, summary
    assert result.alert_mismatches == {}, summary
    # The kill inside an alert's transaction: the broker held its alerts (aborted copies,
    # seen read_uncommitted), and each is on the topic, in the lake and in the reference once.
    assert result.alert_kills_missed == 0 and len(result.alert_kill_log) == 1, summary
    (held,) = result.alert_kill_log
    alerts = len(held["alert_ids"])
    assert alerts >= 1 and held["aborted_copies"] >= alerts, summary
    assert held["committed_copies"] == held["in_lake"] == held["in_reference"] == alerts, summary


def test_alerts_once_across_kills_with_the_ducklake_catalog_ahead_of_kafka(kafka_bootstrap, tmp_path):
    # As above, writing DuckLake, and the held commit is killed after its catalog commit:
    # the restarted worker undoes that commit (its alerts and events deleted, daily counts
    # restored) and writes the records again, each alert once.
    result = run(
        kafka_bootstrap,
        tmp_path,
        events=None,
        spec=ALERTING,
        kills=1,
        workers=1,
        seed=15,
        drain_timeout=300,
        check_alerts=True,
        alert_kills=1,
        extra_env={
            "CROSSINGS_IDLE_AFTER_SECONDS": "86400",
            "CROSSINGS_LAKE": "ducklake",
            "CROSSINGS_TEST_ALERT_HOLD_AFTER_FILES": "1",
        },
    )
    summary = json.dumps(result.summary(), indent=2, default=str)
    _check(result, kills=1)
    assert result.alert_mismatches == {}, summary
    assert result.alert_kills_missed == 0 and len(result.alert_kill_log) == 1, summary
    (held,) = result.alert_kill_log
    assert held["committed_copies"] == held["in_lake"] == held["in_reference"] == len(held["alert_ids"]), (
        summary
    )
    logs = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))
    assert f"partition {held['partition']}: undid lake commit {held['commit_seq']}," in logs, summary


@pytest.mark.parametrize(
    ("env", "lake"),
    [
        # The default lake (DuckLake, SQLite catalog under the data folder): half of the kills
        # right after a catalog commit, where the catalog is ahead of Kafka until the
        # restarted worker undoes it.
        ({}, "ducklake:sqlite:"),
        # The Parquet lake: kills among its staged and published files.
        ({"CROSSINGS_LAKE": "parquet"}, "parquet:"),
    ],
    ids=["ducklake", "parquet"],
)
def test_one_worker_killed_three_times(kafka_bootstrap, tmp_path, env, lake):
    result = run(
        kafka_bootstrap,
        tmp_path,
        events=None,
        days=7,
        kills=3,
        workers=1,
        seed=11,
        drain_timeout=300,
        extra_env=env,
    )
    _check(result, kills=3)
    assert result.lake.startswith(lake)


def test_one_of_two_workers_killed_with_mis_keyed_traffic(kafka_bootstrap, tmp_path, folder_pg_lake):
    # A tenth of the valid records carry a null key: those the producer puts on the wrong
    # partition are forwarded inside the commit's transaction, across the kills.
    result = run(
        kafka_bootstrap,
        tmp_path,
        events=None,
        days=7,
        kills=2,
        workers=2,
        seed=12,
        drain_timeout=300,
        miskeyed=0.1,
        # Two workers, one lake: DuckLake with a PostgreSQL catalog and its files in one
        # folder (the default's SQLite catalog takes one writing process).
        extra_env=folder_pg_lake,
    )
    _check(result, kills=2)
    assert result.lake.startswith("ducklake:postgres:")
