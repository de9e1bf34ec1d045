"""Broker outages mid-run, end to end: two workers, the broker stopped for 20 s and for
longer than the commits' transaction timeout (30 s) while traffic flows. Afterwards the
lake and the counts are exact, and the dead letters, forwarded copies and alerts on Kafka
appear once each (read_committed). The broker is this test's own (it is stopped)."""

from __future__ import annotations

import json

import pytest

from load_tests.crash_test import run
from load_tests.harness import free_broker_port
from streams.ops import broker

pytestmark = pytest.mark.integration


def test_two_workers_ride_out_broker_outages_exactly(tmp_path, folder_pg_lake):
    kafka_dir = tmp_path / "kafka"
    port = free_broker_port()
    status = broker.up(kafka_dir, port, timeout=180)
    try:
        result = run(
            status.bootstrap,
            tmp_path / "run",
            events=None,
            days=5,
            kills=0,
            workers=2,
            seed=21,
            miskeyed=0.1,
            outages=(20.0, 45.0),
            broker_control=(lambda: broker.down(kafka_dir), lambda: broker.up(kafka_dir, port, timeout=180)),
            # Two workers, one lake: DuckLake with a PostgreSQL catalog (the default's
            # SQLite catalog takes one writing process).
            extra_env={"CROSSINGS_TRANSACTION_TIMEOUT_SECONDS": "30", **folder_pg_lake},
            drain_timeout=600,
        )
    finally:
        broker.down(kafka_dir)
    summary = json.dumps(result.summary(), indent=2, default=str)
    print(summary)
    assert [o["seconds"] for o in result.outage_log] == [20.0, 45.0], summary
    assert not result.not_drained, summary
    assert result.event_rows == result.distinct_event_ids == result.unique_valid_events, summary
    assert result.count_mismatches == {} and result.dead_letter_mismatch == 0, summary
    assert result.forwards_found > 0 and result.forwards_doubled == 0, summary
    assert result.alerts_doubled == 0, summary
    assert result.exact, summary
