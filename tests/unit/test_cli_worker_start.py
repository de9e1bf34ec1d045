"""``crossings worker`` as a newcomer starts it: a second worker on a taken /metrics port,
and the lines the default log level shows.

Issue 20, findings 3 and 5: a second worker exited after a 99-line log and a traceback
that buried "address already in use" and never named CROSSINGS_WEB_PORT; every command
logged a score of ``kafka.net`` INFO lines, an ERROR GroupCoordinatorNotAvailableError at
each first start and "Timer ... is overlapping" warnings.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_second_worker_on_a_taken_port_says_what_to_set(tmp_path: Path) -> None:
    with socket.socket() as first_worker:
        first_worker.bind(("127.0.0.1", 0))
        first_worker.listen()
        port = first_worker.getsockname()[1]
        env = {
            **os.environ,
            "CROSSINGS_HOME": str(tmp_path),
            "CROSSINGS_WEB_PORT": str(port),
            # No broker there: the port is checked before Kafka is asked anything.
            "CROSSINGS_KAFKA_PORT": str(port - 1),
        }
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "CROSSINGS_WEB_PORT" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr


EMIT = textwrap.dedent(
    """
    import logging
    from streams.cli.logs import configure
    configure()
    logging.getLogger("kafka.net.manager").info("Attempting bootstrap to bootstrap-0")
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError")
    logging.getLogger("mode.timers").warning(
        "Timer %s is overlapping (interval=%r runtime=%r)", "judge_idle_partitions", 1.0, 1.2)
    logging.getLogger("streams.worker.consumer").info("[^--ReadCommittedConsumer]: Starting...")
    logging.getLogger("faust.worker").info("[^Worker]: Starting...")
    logging.getLogger("faust.worker").info("[^Worker]: Ready")
    logging.getLogger("aiokafka.consumer.group_coordinator").warning("Heartbeat failed: REAL")
    logging.getLogger("streams.cli.worker").info("worker: lake /data; metrics http://x/metrics")
    """
)


def emitted(level: str | None) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "CROSSINGS_LOG_LEVEL"}
    if level:
        env["CROSSINGS_LOG_LEVEL"] = level
    result = subprocess.run([sys.executable, "-c", EMIT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.split(" ", 3)[3] for line in result.stderr.splitlines()]


def test_the_default_level_shows_what_the_worker_does_and_what_needs_action() -> None:
    assert emitted(None) == [
        "faust.worker: [^Worker]: Ready",
        "aiokafka.consumer.group_coordinator: Heartbeat failed: REAL",
        "streams.cli.worker: worker: lake /data; metrics http://x/metrics",
    ]


def test_warning_level_keeps_only_warnings() -> None:
    assert emitted("WARNING") == ["aiokafka.consumer.group_coordinator: Heartbeat failed: REAL"]


def test_debug_shows_everything() -> None:
    assert len(emitted("DEBUG")) == 8
