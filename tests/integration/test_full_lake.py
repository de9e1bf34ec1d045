"""A full or read-only lake volume: the worker keeps its place, says so, and goes on by itself.

The lake is a size-limited tmpfs: it fills up, then is made larger; then it is made
read-only, then writable again. Meanwhile the worker holds the partitions whose commits
fail (``crossings_partition_quarantined{cause="storage"}``, ``/readyz``), and afterwards
the lake holds every event exactly once and the daily counts agree with what was sent.
Needs ``mount`` (root, or passwordless sudo): skipped, saying so, where it cannot mount.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

from load_tests.harness import WorkerProcess, free_port, scrape
from streams.domain.registry import load_registry
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

CHECKPOINTS = sorted(load_registry())[:8]


def _mount(*args: str) -> None:
    command = ["mount", *args]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture
def small_lake(tmp_path: Path):
    lake = tmp_path / "lake"
    lake.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a size-limited lake volume")
    try:
        _mount("-t", "tmpfs", "-o", "size=192k", "tmpfs", str(lake))
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        pytest.skip(f"cannot mount a tmpfs here (needs root or passwordless sudo): {error}")
    try:
        yield lake
    finally:
        subprocess.run(
            ["umount", "-l", str(lake)] if os.geteuid() == 0 else ["sudo", "-n", "umount", "-l", str(lake)]
        )


def _event(event_id: str, checkpoint_id: str, at: datetime) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "event_id": event_id,
            "checkpoint_id": checkpoint_id,
            "direction": "exit" if hash(event_id) % 2 else "entry",
            "occurred_at": at.isoformat(),
            "nationality": "UZB",
            "purpose": "labour",
            "mode": "bus",
            "outcome": "admitted",
        }
    ).encode()


def _send(bootstrap: str, topic: str, prefix: str, per_checkpoint: int, start: datetime) -> list[str]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    ids = []
    for n in range(per_checkpoint):
        for checkpoint_id in CHECKPOINTS:
            event_id = f"{prefix}-{checkpoint_id}-{n}"
            producer.send(
                topic,
                _event(event_id, checkpoint_id, start + timedelta(seconds=5 * n)),
                key=checkpoint_id.encode(),
            )
            ids.append(event_id)
        if n % 50 == 0:
            producer.flush()
    producer.flush()
    producer.close()
    return ids


def _wait(condition, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout}s; worker log tail:\n{log.read_text()[-4000:]}")


def _held(port: int) -> list[dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return json.loads(response.read())["held"]
    except urllib.error.HTTPError as error:
        return json.loads(error.read())["held"]


def test_a_full_then_read_only_lake_holds_partitions_until_it_is_writable(
    kafka_bootstrap, namespace, tmp_path, small_lake
):
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_DATA_DIR": str(small_lake),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_PARTITIONS": "4",
        "CROSSINGS_COMMIT_INTERVAL": "0.5",
        "CROSSINGS_LAKE": "parquet",  # the Parquet lake's own files fill the volume
        "CROSSINGS_LAKE_ROLL_SECONDS": "0",  # every commit writes visible files: the lake fills
    }
    settings = load_settings(env)
    ensure_topics(settings)
    topic = settings.topics.events
    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    sent: list[str] = []
    seen_held: list[dict] = []

    def quarantined() -> bool:
        held = _held(worker.web_port)
        if any(h["cause"] == "storage" and h["quarantined"] for h in held):
            seen_held.extend(held)
            return True
        return False

    def processed() -> int:
        return int(scrape(worker.metrics_url).get("crossings_events_processed_total", 0))

    try:
        # 1. The volume fills up: waves of events, each wave its own commits and files.
        for wave in range(120):
            sent += _send(kafka_bootstrap, topic, f"full{wave}", 5, start + timedelta(minutes=wave))
            time.sleep(1.0)
            if quarantined():
                break
        _wait(quarantined, 60, "a partition quarantined for storage (lake full)", worker.log_path)
        assert scrape(worker.metrics_url).get("crossings_partition_quarantined", 0) >= 1
        _mount("-o", "remount,size=64m", str(small_lake))
        back = time.monotonic()
        _wait(lambda: not _held(worker.web_port), 180, "space back", worker.log_path)
        print(f"resumed {time.monotonic() - back:.1f}s after space came back")
        _wait(
            lambda: processed() == len(sent) and not _held(worker.web_port),
            180,
            "going on once space is back",
            worker.log_path,
        )
        # 2. The volume turns read-only.
        _mount("-o", "remount,ro", str(small_lake))
        sent += _send(kafka_bootstrap, topic, "ro", 40, start + timedelta(hours=1))
        seen_held.clear()
        _wait(quarantined, 180, "a partition quarantined for storage (lake read-only)", worker.log_path)
        _mount("-o", "remount,rw", str(small_lake))
        back = time.monotonic()
        _wait(lambda: not _held(worker.web_port), 180, "writable again", worker.log_path)
        print(f"resumed {time.monotonic() - back:.1f}s after the lake was writable again")
        _wait(
            lambda: processed() == len(sent) and not _held(worker.web_port),
            180,
            "going on once writable",
            worker.log_path,
        )
        totals = scrape(worker.metrics_url)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_path.read_text()[-3000:]
    assert totals.get("crossings_partition_quarantined", 0) == 0
    assert totals["crossings_commit_failures_total"] >= 2
    assert "read-only" in " ".join(h["error"] for h in seen_held).lower() or any(
        h["cause"] == "storage" for h in seen_held
    )

    # The lake: every event once; the daily counts agree.
    rows = [
        row["event_id"]
        for path in (small_lake / "events").rglob("*.parquet")
        for row in pq.read_table(path, columns=["event_id"]).to_pylist()
    ]
    assert Counter(rows) == Counter(sent)
    total = sum(
        sum(pq.read_table(path, columns=["count"]).column("count").to_pylist())
        for path in (small_lake / "daily_counts").rglob("*.parquet")
    )
    assert total == len(sent)
