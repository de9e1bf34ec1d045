"""``crossings backtest`` on the demo's lake gives the episodes of the demo's alerts topic.

The demo's traffic (``make demo``: six weeks, fourteen posts, the Jibek Joly surge, the
Kazygurt crackdown, the Korday closure, late uploads, duplicates, invalid messages) goes
through a real worker process on the real broker, with the demo's settings; the worker's
records reach it as the broker delivers them, its commits fall where its timer puts them.
Then the backtest reads only the lake the worker left, and must give the episodes the
alerts topic holds (read committed): the same ids, kinds, causes, openings and ends.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer

from load_tests.harness import WorkerProcess, free_port, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams import query
from streams.cli.main import cli
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration


def _committed_messages(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[dict]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=3000,
    )
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = [json.loads(m.value) for m in consumer]
            messages += batch
            if not batch and len(messages) >= expected:
                break
    finally:
        consumer.close()
    return messages


def _episodes(alerts: list[dict]) -> dict[str, tuple]:
    """episode id -> (checkpoint, direction, kind, cause, opened, resolved or None) in UTC."""
    found: dict[str, list] = {}
    for alert in sorted(alerts, key=lambda a: datetime.fromisoformat(a["as_of"])):
        as_of = datetime.fromisoformat(alert["as_of"]).astimezone(UTC)
        what = [alert["checkpoint_id"], alert["direction"], alert["kind"], alert.get("cause", "level")]
        entry = found.setdefault(alert["episode_id"], [*what, as_of, None])
        if alert["status"] == "resolved":
            entry[5] = as_of
    return {episode: tuple(entry) for episode, entry in found.items()}


def test_backtest_of_the_demos_lake_gives_the_alerts_topics_episodes(kafka_bootstrap, tmp_path):
    namespace = f"it-demo-lake-{free_port()}"
    home = tmp_path / "home"
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "5",  # as make demo
    }
    settings = load_settings(env)
    ensure_topics(settings)
    worker = WorkerProcess(env, free_port(), home / "worker.log")
    worker.start()
    try:
        stats = replay(
            Scenario(ScenarioSpec()).records(), kafka_bootstrap, settings.topics.events, progress=False
        )
        worker.wait_handled(stats.sent, timeout=900)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=120)
    finally:
        assert worker.stop() == 0, (home / "worker.log").read_text()[-3000:]
    lake = settings.data_dir
    in_lake = query.alerts(lake)
    topic = _committed_messages(kafka_bootstrap, settings.topics.alerts, expected=len(in_lake))
    assert sorted(a["alert_id"] for a in topic) == sorted(a["alert_id"] for a in in_lake)
    worker_episodes = _episodes(topic)
    stories = {(c, d, k) for c, d, k, *_ in worker_episodes.values()}
    assert {("zhibek-zholy", "entry", "surge"), ("korday", "both", "drop")} <= stories

    result = CliRunner().invoke(cli, ["backtest", str(lake), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    backtest = {
        row["episode"]: (
            row["checkpoint"],
            row["direction"],
            row["kind"],
            row["cause"],
            datetime.fromisoformat(row["start"]).astimezone(UTC),
            datetime.fromisoformat(row["end"]).astimezone(UTC) if row["end"] else None,
        )
        for row in map(json.loads, result.stdout.splitlines())
    }
    assert backtest == worker_episodes
