"""The built wheel, installed in a fresh virtualenv outside the checkout, runs the whole
loop from another folder: ``crossings kafka up`` (Maven resolves the jars from the pom
inside the package), ``crossings worker`` on a few events, ``crossings report`` and
``crossings sql`` on the lake it wrote, ``crossings kafka down``. State must land under
the working folder (``./.crossings``), never in site-packages.

Needs PyPI for the wheel's dependencies (pinned by requirements.lock; pip's cache makes a
second run quick) and Maven Central or ~/.m2 for the Kafka jars.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 40


def _free_pair() -> int:
    """A port p with p + 1 free too (the embedded broker's controller takes p + 1)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port >= 65534:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _events() -> list[tuple[bytes, bytes]]:
    start = datetime.now(UTC) - timedelta(hours=2)
    records = []
    for n in range(EVENTS):
        checkpoint = "zhibek-zholy" if n % 2 else "korday"
        event = {
            "version": 1,
            "event_id": f"wheel-{n:04d}",
            "checkpoint_id": checkpoint,
            "direction": "entry" if n % 3 else "exit",
            "occurred_at": (start + timedelta(seconds=30 * n)).isoformat(),
            "nationality": "UZB" if n % 4 else "KAZ",
            "purpose": "labour",
            "mode": "bus",
            "outcome": "admitted",
        }
        records.append((checkpoint.encode(), json.dumps(event).encode()))
    return records


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv with only the built wheel (and its pinned dependencies) installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp / "dist").glob("crossings-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "requirements.lock"),
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    return venv


def test_installed_wheel_runs_from_another_folder(installed: Path, tmp_path: Path) -> None:
    crossings = str(installed / "bin" / "crossings")
    work = tmp_path / "elsewhere"
    work.mkdir()
    kafka_port, web_port = _free_pair(), _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CROSSINGS_") and k not in ("KAFKA_BOOTSTRAP", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        {
            "PATH": f"{installed / 'bin'}:{env.get('PATH', '')}",
            "CROSSINGS_KAFKA_PORT": str(kafka_port),
            "CROSSINGS_WEB_PORT": str(web_port),
            "CROSSINGS_PARTITIONS": "2",
            "CROSSINGS_COMMIT_INTERVAL": "1",
            "CROSSINGS_LOG_FORMAT": "json",
        }
    )
    python = str(installed / "bin" / "python")
    where = _run([python, "-c", "import streams; print(streams.__file__)"], work, env)
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout

    up = _run([crossings, "kafka", "up", "--timeout", "240"], work, env, timeout=600)
    home = work / ".crossings"
    worker = None
    try:
        assert (home / "kafka" / "libs" / ".installed").is_file()
        logs = [json.loads(line) for line in up.stderr.splitlines() if line.startswith("{")]
        assert any("Kafka jars" in line["message"] for line in logs), up.stderr
        assert all({"time", "level", "logger", "message"} <= set(line) for line in logs)
        _run([crossings, "topics"], work, env, timeout=120)

        log_path = tmp_path / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [crossings, "worker"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{web_port}"
        _wait(lambda: _get(f"{base}/readyz")[0] == 200, 180, worker, log_path, "ready")
        assert _get(f"{base}/healthz")[0] == 200

        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{kafka_port}", acks="all")
        for key, value in _events():
            producer.send("crossings.events.v1", key=key, value=value)
        producer.flush(30)
        producer.close()

        def counted() -> bool:
            _, text = _get(f"{base}/metrics")
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("crossings_events_processed_total{")
            )
            commits = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("crossings_commit_seconds_count")
            )
            return total >= EVENTS and commits > 0

        _wait(counted, 180, worker, log_path, f"{EVENTS} events counted")
        time.sleep(3)  # the next commit writes the snapshots of the last batch
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(90) == 0, log_path.read_text()[-3000:]
        worker_lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        assert worker_lines and all(line.startswith("{") for line in worker_lines[:5]), worker_lines[:5]

        report = _run([crossings, "report", "daily", "--format", "json"], work, env)
        assert sum(row["total"] for row in json.loads(report.stdout)) == EVENTS
        reconcile = _run([crossings, "report", "reconcile", "--format", "json"], work, env)
        assert json.loads(reconcile.stdout)["agree"] is True
        sql = _run(
            [
                crossings,
                "sql",
                "SELECT count(*) AS n FROM events JOIN checkpoints USING (checkpoint_id)",
                "--format",
                "json",
            ],
            work,
            env,
        )
        assert json.loads(sql.stdout) == [{"n": EVENTS}]
        chart = _run([crossings, "report", "chart", "--checkpoint", "korday"], work, env)
        assert "korday-daily.png" in chart.stdout
        assert (work / "korday-daily.png").stat().st_size > 10_000
        assert "<svg" in (work / "korday-daily.html").read_text()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(10)
        _run([crossings, "kafka", "down"], work, env, timeout=120)
    site = next((installed / "lib").glob("python3*/site-packages"))
    assert not list(site.rglob(".local")) and not list(site.rglob(".crossings"))
    assert not (ROOT / "elsewhere").exists()


def _wait(check, timeout: float, worker: subprocess.Popen, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"worker exited {worker.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not {what} within {timeout}s:\n{log_path.read_text()[-3000:]}")
