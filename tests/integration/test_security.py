"""Kafka security end to end: the embedded broker with a SASL_PLAINTEXT SCRAM-SHA-512
listener (its own port and folder), the project's commands and a real worker process
against it with the right credentials, and with wrong ones: a quick exit that says
authentication failed and which setting to check, without the password.

The broker is started with ``crossings kafka up`` under the same settings the other
commands read, so the CLI path that makes a SCRAM broker is the one tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from load_tests.harness import WorkerProcess, free_port
from streams import query
from streams.ops.security import client_kwargs
from streams.settings import load_settings

pytestmark = pytest.mark.integration

PORT = int(os.environ.get("CROSSINGS_TEST_SCRAM_KAFKA_PORT", "19892"))
USER = "crossings-it"
PASSWORD = f"it-{uuid.uuid4().hex}"
WRONG = f"wrong-{uuid.uuid4().hex}"
EVENTS = 12
#: Wrong credentials must stop a command within this many seconds (brief: 60 s).
FAIL_FAST_S = 60


def crossings(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def scram(tmp_path_factory):
    """A SCRAM broker started by ``crossings kafka up``; the settings every command shares
    (password from a file, as a deployment would mount it)."""
    home = tmp_path_factory.mktemp("scram-home")
    password_file = home / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    namespace = f"it-sec-{uuid.uuid4().hex[:8]}"
    env = {
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_KAFKA_PORT": str(PORT),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        # Every commit publishes its lake rows: the test reads the lake while the worker runs.
        "CROSSINGS_LAKE_ROLL_SECONDS": "0",
        "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CROSSINGS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CROSSINGS_KAFKA_SASL_USERNAME": USER,
        "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": str(password_file),
    }
    for name in ("KAFKA_BOOTSTRAP", "CROSSINGS_KAFKA_SASL_PASSWORD"):
        env[name] = ""  # whatever the caller's shell has: this test's broker, from the file
    up = crossings(env, "kafka", "up", "--timeout", "240", timeout=600)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert PASSWORD not in up.stdout + up.stderr
        yield {"env": env, "home": home, "settings": load_settings({k: v for k, v in env.items() if v})}
    finally:
        down = crossings(env, "kafka", "down", timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr


def wrong(env: dict[str, str], **changes: str) -> dict[str, str]:
    return {
        **env,
        "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": "",
        "CROSSINGS_KAFKA_SASL_PASSWORD": WRONG,
        **changes,
    }


def events(n: int) -> list[bytes]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        json.dumps(
            {
                "version": 1,
                "event_id": f"sec-{uuid.uuid4().hex}",
                "checkpoint_id": "zhibek-zholy",
                "direction": "entry",
                "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "nationality": "UZB",
                "purpose": "labour",
                "mode": "car",
                "outcome": "admitted",
            }
        ).encode()
        for i in range(n)
    ]


def test_the_broker_listener_asks_for_scram(scram):
    properties = (scram["home"] / "kafka" / "config" / "server.properties").read_text()
    assert f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{PORT}" in properties
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in properties
    # The listener refuses a client that does not authenticate.
    plaintext = {**scram["env"], "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    plaintext |= {name: "" for name in plaintext if name.startswith("CROSSINGS_KAFKA_SASL_")}
    started = time.monotonic()
    refused = crossings(plaintext, "topics", timeout=FAIL_FAST_S + 30)
    assert refused.returncode != 0
    assert time.monotonic() - started < FAIL_FAST_S
    assert "CROSSINGS_KAFKA_SECURITY_PROTOCOL" in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    ("command", "changes"),
    [
        (("topics",), {}),
        (("worker",), {}),
        (("replay", "--data", "{home}/wrong-lake"), {}),
        (("topics",), {"CROSSINGS_KAFKA_SASL_USERNAME": "nobody", "CROSSINGS_KAFKA_SASL_PASSWORD": ""}),
    ],
    ids=["topics", "worker", "replay", "unknown-user"],
)
def test_wrong_credentials_stop_the_command_quickly_naming_the_setting(scram, command, changes):
    env = wrong(scram["env"], **changes)
    if changes.get("CROSSINGS_KAFKA_SASL_USERNAME"):  # the right password for a user that does not exist
        env["CROSSINGS_KAFKA_SASL_PASSWORD"] = PASSWORD
    if command[0] == "worker":
        env["CROSSINGS_WEB_PORT"] = str(free_port())
    args = [arg.format(home=scram["home"]) for arg in command]
    started = time.monotonic()
    result = crossings(env, *args, timeout=FAIL_FAST_S + 60)
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert took < FAIL_FAST_S, f"{took:.0f}s\n{output}"
    assert "refused authentication" in output, output
    assert "CROSSINGS_KAFKA_SASL_PASSWORD" in output, output
    assert WRONG not in output and PASSWORD not in output


@pytest.fixture(scope="module")
def counted(scram):
    """``crossings topics``, a worker with the right credentials, events sent over SCRAM."""
    env, settings = scram["env"], scram["settings"]
    topics = crossings(env, "topics")
    assert topics.returncode == 0, topics.stdout + topics.stderr
    assert PASSWORD not in topics.stdout + topics.stderr
    log = scram["home"] / "worker.log"
    worker = WorkerProcess({k: v for k, v in env.items()}, free_port(), log)
    worker.start(timeout=240)
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap,
            acks="all",
            **client_kwargs(settings.security, "kafka-python"),
        )
        for value in events(EVENTS):
            producer.send(settings.topics.events, key=b"zhibek-zholy", value=value)
        producer.flush()
        producer.close()
        worker.wait_handled(EVENTS, timeout=300)
        deadline = time.monotonic() + 120
        while query.events_count(settings.data_dir) < EVENTS and time.monotonic() < deadline:
            time.sleep(1)
        handled = worker.handled()
    finally:
        stopped = worker.stop()
    return {"handled": handled, "stopped": stopped, "log": Path(log).read_text(errors="replace")}


def test_the_worker_counts_events_over_scram(scram, counted):
    assert counted["stopped"] == 0, counted["log"][-3000:]
    assert counted["handled"] == EVENTS
    assert query.events_count(scram["settings"].data_dir) == EVENTS


def test_the_password_is_not_in_the_worker_log(counted):
    assert counted["log"]  # the worker did log
    assert PASSWORD not in counted["log"]


def test_replay_reads_the_topic_over_scram(scram, counted, tmp_path):
    result = crossings(
        scram["env"], "replay", "--data", str(tmp_path / "lake"), "--state", str(tmp_path / "st")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"replayed {EVENTS} records" in result.stdout
    assert query.events_count(tmp_path / "lake") == EVENTS
    assert PASSWORD not in result.stdout + result.stderr
