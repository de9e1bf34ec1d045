"""A real worker process against the real broker: counts, alerts, dead letters, Parquet,
/metrics, and state surviving a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date

import pytest
from kafka import KafkaConsumer, KafkaProducer

from load_tests.harness import WorkerProcess, free_port, scrape, scrape_text, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams import query
from streams.domain.event import REASONS
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

# Enough weeks for a baseline, the surge, the crackdown and the closure; four checkpoints.
SPEC = ScenarioSpec(days=38, checkpoints=("zhibek-zholy", "korday", "kazygurt", "dostyk"))


def read_all(bootstrap: str, topic: str, **options) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=4000,
        **options,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def run(kafka_bootstrap, tmp_path_factory):
    namespace = f"it-worker-{free_port()}"
    home = tmp_path_factory.mktemp("home")
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        # The default lake, nothing else set: what a new user runs and reads while it runs.
    }
    settings = load_settings(env)
    ensure_topics(settings)
    worker = WorkerProcess(env, free_port(), home / "worker.log")
    worker.start()
    try:
        scenario = Scenario(SPEC)
        records = list(scenario.records())
        stats = replay(records, kafka_bootstrap, settings.topics.events, progress=False)
        worker.wait_handled(stats.sent, timeout=900)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=120)
        # Read as a user reads it with the worker still running (issue 19, item 7): the
        # alerts topic first, so that every alert it holds was committed to the lake before.
        committed = read_all(kafka_bootstrap, settings.topics.alerts, isolation_level="read_committed")
        topic_alerts = [json.loads(m.value)["alert_id"] for m in committed]
        live = {
            name: json.loads(_cli(env, *command).stdout)
            for name, command in {
                "alerts": ("report", "alerts", "--format", "json"),
                "events": ("sql", "SELECT count(*) AS n FROM events", "--format", "json"),
            }.items()
        }
        metrics_text = scrape_text(worker.metrics_url)
        web = {path: _status(worker.metrics_url.replace("/metrics", path)) for path in WEB_PATHS}
    finally:
        assert worker.stop() == 0, (home / "worker.log").read_text()[-3000:]
    # What the first worker left, read now: the restart test (any order) adds to the lake
    # and the topics, and each test asserts on this run alone.
    root = settings.data_dir
    return {
        "env": env,
        "settings": settings,
        "manifest": scenario.manifest,
        "records": records,
        "stats": stats,
        "metrics": metrics_text,
        "web": web,
        "home": home,
        "events_count": query.events_count(root),
        "daily_totals": {
            (row["checkpoint_id"], row["local_day"].isoformat(), row["direction"]): row["total"]
            for row in query.daily_totals(root)
            if row["total"]  # days without crossings inside a span are listed at 0 (test_report)
        },
        "reconcile": query.reconcile(root),
        "dead_letters": read_all(kafka_bootstrap, settings.topics.dead_letter),
        "alert_messages": [json.loads(m.value) for m in read_all(kafka_bootstrap, settings.topics.alerts)],
        "lake_alert_ids": sorted(a["alert_id"] for a in query.alerts(root)),
        "live": live,
        "live_topic_alerts": topic_alerts,
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``crossings ARGS`` as its own process with the worker's settings."""
    outside = {k: v for k, v in os.environ.items() if not k.startswith(("CROSSINGS_", "KAFKA_"))}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**outside, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_default_lake_shows_every_event_and_alert_while_the_worker_runs(run):
    """Every committed row is visible at once: the events and the alerts the worker
    published, read by ``crossings sql`` and ``crossings report`` before it stopped (the
    Parquet lake kept them staged for up to an hour)."""
    assert run["live"]["events"] == [{"n": run["events_count"]}]
    assert run["events_count"] == run["manifest"].unique_events
    in_lake = {a["alert_id"] for a in run["live"]["alerts"]}
    assert run["live_topic_alerts"] and set(run["live_topic_alerts"]) <= in_lake
    assert in_lake <= {m["alert_id"] for m in run["alert_messages"]}


#: What the worker's port answers: /metrics, the "/" status and the health checks (ready:
#: the group assigned partitions and none is being recovered), none of Faust's own views.
WEB_PATHS = (
    "/metrics",
    "/",
    "/healthz",
    "/readyz",
    "/router/",
    "/table/",
    "/graph/",
    "/stats/",
    "/performance/",
)
SERVED = ("/metrics", "/", "/healthz", "/readyz")


def _status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_only_metrics_and_status_are_served(run):
    """Faust's views would leak counts (/table) and routing (/router) to anyone on the port."""
    assert run["web"] == {path: 200 if path in SERVED else 404 for path in WEB_PATHS}


def test_counts_in_parquet_equal_events_sent_minus_invalid_and_duplicates(run):
    manifest = run["manifest"]
    assert run["events_count"] == run["stats"].sent - manifest.sent["invalid"] - manifest.sent["duplicate"]
    assert run["daily_totals"] == {key: n for key, n in manifest.expected_counts.items() if n}
    assert run["reconcile"]["agree"]


def test_dead_letter_topic_has_every_invalid_message_with_its_reason(run):
    settings = run["settings"]
    dead = run["dead_letters"]
    sent_invalid = Counter(r.value for r in run["records"] if r.kind == "invalid")
    assert Counter(m.value for m in dead) == sent_invalid  # original bytes, each exactly once
    for message in dead:
        headers = dict(message.headers)
        assert headers["crossings.dlq.reason"].decode() in REASONS
        assert headers["crossings.dlq.detail"]
        assert headers["crossings.dlq.topic"].decode() == settings.topics.events


def test_surge_raises_an_alert_and_the_quiet_weeks_do_not(run):
    messages = run["alert_messages"]
    surge = next(a for a in SPEC.anomalies if a.checkpoint_id == "zhibek-zholy")
    first_anomaly = min(a.starts for a in SPEC.anomalies)
    jj = [m for m in messages if m["checkpoint_id"] == "zhibek-zholy"]
    opened = [m for m in jj if m["status"] == "firing" and m["window"] != "full_day"]
    assert len(opened) == 1
    assert (opened[0]["kind"], opened[0]["direction"]) == ("surge", "entry")
    assert date.fromisoformat(opened[0]["local_day"]) >= surge.starts
    assert opened[0]["drivers"][0]["nationality"] == "UZB"
    assert [m for m in messages if date.fromisoformat(m["local_day"]) < first_anomaly] == []
    # Kafka and the Parquet history carry the same alerts.
    assert sorted(m["alert_id"] for m in messages) == run["lake_alert_ids"]


def test_metrics_endpoint_serves_the_expected_series(run):
    text = run["metrics"]
    for series in (
        'crossings_events_processed_total{checkpoint="zhibek-zholy",direction="entry"}',
        'crossings_events_invalid_total{reason="malformed_json"}',
        "crossings_events_duplicate_total",
        'crossings_today_crossings{checkpoint="zhibek-zholy",direction="entry"}',
        'crossings_band_expected{checkpoint="zhibek-zholy",direction="entry"}',
        'crossings_band_upper{checkpoint="zhibek-zholy",direction="entry"}',
        "crossings_consumer_lag_messages{partition=",
        "crossings_state_restore_remaining_records{partition=",
        "crossings_state_restored_records_total{partition=",
        'crossings_alerts_raised_total{checkpoint="zhibek-zholy",direction="entry",kind="surge"}',
        "crossings_arrival_to_processed_seconds_bucket",
        "crossings_event_time_to_processed_seconds_bucket",
        "crossings_stream_time_seconds",
    ):
        assert series in text, series
    assert 'nationality="' not in text  # bounded label cardinality: no nationality label
    assert "_created" not in text
    processed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("crossings_events_processed_total{")
    )
    assert processed == run["manifest"].unique_events


@pytest.fixture(scope="module")
def restarted(run):
    """A second worker, after the first, sent nine records of its own (seven fresh, the
    newest and the oldest of Dostyk's again): what it saw and what the lake holds after."""
    env, settings, manifest = run["env"], run["settings"], run["manifest"]
    last_day = SPEC.end.isoformat()
    before = manifest.expected_counts[("dostyk", last_day, "entry")]
    dostyk = [r for r in run["records"] if r.kind == "valid" and r.key == b"dostyk"]
    oldest, newest = json.loads(dostyk[0].value), json.loads(dostyk[-1].value)
    fresh = [
        {**oldest, "event_id": f"restart-{n}", "occurred_at": f"{last_day}T12:00:{n:02d}+05:00"}
        for n in range(7)
    ]
    events_before = query.events_count(settings.data_dir)
    worker = WorkerProcess(env, free_port(), run["home"] / "worker-2.log")
    worker.start(timeout=300)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap)
        # Both replays were counted by the first worker; the oldest is weeks behind.
        for payload in [*fresh, newest, oldest]:
            producer.send(settings.topics.events, key=b"dostyk", value=json.dumps(payload).encode())
        producer.flush()
        producer.close()
        wait_committed(settings.bootstrap, settings.app_id, settings.topics.events, timeout=300)
        totals_seen = scrape(worker.metrics_url)
        metrics = scrape_text(worker.metrics_url)
    finally:
        assert worker.stop() == 0, (run["home"] / "worker-2.log").read_text()[-3000:]
    return {
        "before": before,
        "fresh": fresh,
        "oldest": oldest,
        "events_before": events_before,
        "totals_seen": totals_seen,
        "metrics": metrics,
        "sent": len(fresh) + 2,
    }


def test_counts_and_dedup_survive_a_restart(run, restarted):
    """A second worker restores the tables from their changelogs: new events add to the
    restored counts, a replayed recent event is still recognised as a duplicate, and a
    replayed event older than the de-duplication horizon is dead-lettered as too late."""
    settings = run["settings"]
    last_day = SPEC.end.isoformat()
    before, fresh, oldest = restarted["before"], restarted["fresh"], restarted["oldest"]
    events_before, totals_seen, metrics = (
        restarted["events_before"],
        restarted["totals_seen"],
        restarted["metrics"],
    )
    # Delivery is at-least-once: a rebalance as the worker starts can hand it the nine
    # messages twice. Whatever the number of deliveries, the fresh ones count once, the
    # recent replay is a duplicate and the old one is refused as too late.
    deliveries = totals_seen["crossings_events_invalid_total"]
    assert deliveries >= 1, metrics
    assert totals_seen["crossings_events_processed_total"] == len(fresh), metrics
    duplicates = totals_seen["crossings_events_duplicate_total"]
    assert 1 <= duplicates <= 1 + (deliveries - 1) * (len(fresh) + 1), metrics  # a re-delivery repeats a tail
    assert f'crossings_events_invalid_total{{reason="too_late"}} {deliveries}' in metrics
    assert query.events_count(settings.data_dir) == events_before + len(fresh)
    totals = {
        row["direction"]: row["total"]
        for row in query.daily_totals(settings.data_dir, checkpoint="dostyk", since=last_day, until=last_day)
    }
    assert totals["entry"] == before + len(fresh)
    dead = read_all(settings.bootstrap, settings.topics.dead_letter)
    late = [m for m in dead if dict(m.headers)["crossings.dlq.reason"] == b"too_late"]
    assert {json.loads(m.value)["event_id"] for m in late} == {oldest["event_id"]}


def _lake(root):
    """Everything in a lake that must not depend on who wrote it, nor in which format
    (the worker's default DuckLake, the replay's Parquet here): events, count sums, alerts,
    read through ``crossings sql``'s views."""
    from streams.domain.registry import load_registry
    from streams.query.lake import open_lake
    from streams.settings.lake import LakeConfig, reading_lake

    with open_lake(root, load_registry(), reading_lake(LakeConfig(), root)) as connection:

        def rows(sql: str) -> list:
            return sorted(connection.execute(sql).fetchall())

        events = rows(
            "SELECT event_id, local_day, checkpoint_id, direction, occurred_at, nationality, purpose, "
            "kafka_partition, kafka_offset, kafka_timestamp FROM events"
        )
        counts = rows(
            "SELECT local_day, checkpoint_id, direction, nationality, purpose, sum(count) "
            "FROM daily_counts GROUP BY ALL"
        )
        alerts = rows(
            'SELECT alert_id, episode_id, status, kind, local_day, checkpoint_id, direction, "window", '
            "as_of, raised_at, observed, expected, ratio, score, drivers_json, summary FROM alerts"
        )
    return events, counts, alerts


def test_replay_of_the_topic_writes_the_same_lake_as_the_worker(run, restarted, tmp_path):
    """``crossings replay`` is the same core: over the same records it writes the same
    events, the same counts and byte-identical alerts (ids, times, words). After the
    restart (``restarted``), so the topic and the lake both hold its records, whatever
    the order the tests run in."""
    import asyncio

    from streams.replay.run import replay as core_replay
    from streams.replay.sources import kafka_records

    settings = run["settings"]
    stats = asyncio.run(
        core_replay(
            kafka_records(settings.bootstrap, settings.topics.events),
            partitions=settings.partitions,
            data_dir=tmp_path / "data",
            state_dir=tmp_path / "state",
        )
    )
    assert stats.records >= run["stats"].sent + restarted["sent"]
    worker_lake, replay_lake = _lake(settings.data_dir), _lake(tmp_path / "data")
    assert replay_lake[0] == worker_lake[0]
    assert replay_lake[1] == worker_lake[1]
    assert replay_lake[2] == worker_lake[2]
    assert len(worker_lake[2]) > 0
