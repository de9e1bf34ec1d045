"""A worker's first start on a new broker, read as a newcomer reads it (issue 20, findings 3
and 5): the default log says what the worker does and where, with no Kafka client chatter,
no harmless ERROR and no traceback; a second worker on the same /metrics port stops at
once, in one line naming CROSSINGS_WEB_PORT and the address."""

from __future__ import annotations

import os
import subprocess
import sys

from load_tests.harness import WorkerProcess, free_port, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams.ops.topics import ensure_topics
from streams.settings import load_settings


def test_first_start_logs_where_and_a_second_worker_on_its_port_says_what_to_set(
    kafka_bootstrap, tmp_path
) -> None:
    namespace = f"it-first-{free_port()}"
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_APP_ID": namespace,  # a new consumer group: its coordinator is new too
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
    }
    env_without_level = {k: v for k, v in os.environ.items() if k != "CROSSINGS_LOG_LEVEL"}
    settings = load_settings(env)
    ensure_topics(settings)
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(env, free_port(), log_path)
    worker.start()
    try:
        stats = replay(
            list(Scenario(ScenarioSpec(days=2, other_scale=0.1)).records()),
            kafka_bootstrap,
            settings.topics.events,
            progress=False,
        )
        worker.wait_handled(stats.sent, timeout=300)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=120)
        second = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker"],
            env={
                **env_without_level,
                **env,
                "CROSSINGS_HOME": str(tmp_path / "second"),
                "CROSSINGS_WEB_PORT": str(worker.web_port),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        assert worker.stop() == 0, log_path.read_text()[-3000:]
    assert second.returncode == 1
    said = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
    assert len(said) == 1, said
    assert "CROSSINGS_WEB_PORT" in said[0] and f"127.0.0.1:{worker.web_port}" in said[0]

    lines = log_path.read_text().splitlines()
    assert f"lake {tmp_path / 'home' / 'data'}" in lines[0]
    assert f"metrics http://127.0.0.1:{worker.web_port}/metrics" in lines[0]
    assert any("partition 0 open" in line for line in lines)
    assert not [line for line in lines if " kafka." in line or " ERROR " in line or "Traceback" in line]
    assert not [line for line in lines if "overlapping" in line or "]: Starting..." in line]
    assert len(lines) < 30, lines
