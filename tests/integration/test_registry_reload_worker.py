"""A running worker picks up an edited registry file: a new post counted from then on, a
broken edit refused with the worker still running and nothing lost."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

from load_tests.harness import WorkerProcess, free_port, scrape, scrape_text
from streams.domain.registry import default_registry_path
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

SHIPPED = json.loads(default_registry_path().read_text())
#: A checkpoint the shipped registry does not have (shared by the registry tests).
NEW_POST = json.loads((Path(__file__).resolve().parents[1] / "data" / "new_post.json").read_text())


def event(event_id: str, checkpoint_id: str, minutes_ago: int) -> bytes:
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    return json.dumps(
        {
            "version": 1,
            "event_id": event_id,
            "checkpoint_id": checkpoint_id,
            "direction": "entry",
            "occurred_at": occurred.isoformat(),
            "nationality": "UZB",
            "purpose": "labour",
            "mode": "bus",
            "outcome": "admitted",
        }
    ).encode()


def reloads(worker: WorkerProcess, outcome: str) -> float:
    found = re.search(
        rf'^crossings_registry_reloads_total\{{outcome="{outcome}"\}} (\S+)$',
        scrape_text(worker.metrics_url),
        re.M,
    )
    return float(found[1]) if found else 0.0


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def test_an_edited_registry_is_reloaded_by_the_running_worker(kafka_bootstrap, namespace, tmp_path):
    registry = tmp_path / "checkpoints.json"
    registry.write_text(json.dumps(SHIPPED))
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        # Every commit publishes its lake rows: the test reads the lake while the worker runs.
        "CROSSINGS_LAKE": "parquet",  # this test reads the lake's files
        "CROSSINGS_LAKE_ROLL_SECONDS": "0",
        "CROSSINGS_CHECKPOINTS": str(registry),
    }
    settings = load_settings(env)
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)

    def send(event_id: str, checkpoint_id: str, minutes_ago: int) -> None:
        producer.send(
            settings.topics.events, event(event_id, checkpoint_id, minutes_ago), key=checkpoint_id.encode()
        )
        producer.flush()

    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    try:
        send("k-1", "korday", 30)
        send("n-1", "new-post", 29)  # not registered yet
        worker.wait_handled(2, timeout=120)

        registry.write_text(json.dumps({**SHIPPED, "checkpoints": [*SHIPPED["checkpoints"], NEW_POST]}))
        wait_for(lambda: reloads(worker, "applied") == 1, 60, "the edited registry was not applied")
        registry.write_text("checkpoints: [")  # a broken edit
        wait_for(lambda: reloads(worker, "refused") == 1, 60, "the broken registry was not refused")

        send("k-2", "korday", 20)
        send("n-2", "new-post", 19)
        worker.wait_handled(4, timeout=120)
        totals = scrape(worker.metrics_url)
        assert worker.process is not None and worker.process.poll() is None
    finally:
        producer.close()
        assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]

    assert totals.get("crossings_events_processed_total") == 3, totals
    assert totals["crossings_events_invalid_total"] == 1
    assert totals["crossings_registry_checkpoints"] == len(SHIPPED["checkpoints"]) + 1
    rows = {
        (path.parent.name, row)
        for path in (settings.data_dir / "events").rglob("*.parquet")
        for row in pq.read_table(path, columns=["event_id"]).column("event_id").to_pylist()
    }
    assert rows == {
        ("checkpoint=korday", "k-1"),
        ("checkpoint=korday", "k-2"),
        ("checkpoint=new-post", "n-2"),
    }
    log = (tmp_path / "worker.log").read_text()
    assert "registry reloaded" in log and "registry not reloaded, the one in use stays" in log
