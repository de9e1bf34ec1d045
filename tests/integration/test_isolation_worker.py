"""No record stops more than its own partition: the worker against the real broker.

The case that was found: one gzip-compressed message, 9 KB on the wire and 9 MiB once
decompressed, used to become a dead letter larger than the producer takes, fail every
commit of the worker and stop all counting. And a record whose output the broker refuses
for good (here: the dead-letter topic's limit lowered while the worker runs) quarantines
its partition alone until an operator moves it aside with ``crossings quarantine skip``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from load_tests.harness import WorkerProcess, free_port, scrape
from streams.core.partitioning import checkpoints_by_partition, partition_for
from streams.domain.registry import load_registry
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

PARTITIONS = 4
REGISTRY = load_registry()
#: 14 checkpoints, spread over every partition.
CHECKPOINTS = sorted(REGISTRY)[:14]


def event(event_id: str, checkpoint_id: str, at: datetime) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "event_id": event_id,
            "checkpoint_id": checkpoint_id,
            "direction": "entry",
            "occurred_at": at.isoformat(),
            "nationality": "UZB",
            "purpose": "labour",
            "mode": "bus",
            "outcome": "admitted",
        }
    ).encode()


def worker_env(kafka_bootstrap: str, namespace: str, home) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_COMMIT_INTERVAL": "1",
    }


def send_valid(producer: KafkaProducer, topic: str, prefix: str, per_checkpoint: int) -> Counter:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    sent: Counter = Counter()
    for n in range(per_checkpoint):
        for checkpoint_id in CHECKPOINTS:
            value = event(f"{prefix}-{checkpoint_id}-{n}", checkpoint_id, start + timedelta(seconds=20 * n))
            producer.send(topic, value, key=checkpoint_id.encode())
            sent[checkpoint_id] += 1
    producer.flush()
    return sent


def processed_by_checkpoint(url: str) -> Counter:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=5).read().decode()
    found: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "crossings_events_processed_total":
                found[sample.labels["checkpoint"]] += int(sample.value)
    return found


def wait_for(condition, timeout: float, what: str, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout}s; worker log tail:\n{log.read_text()[-4000:]}")


def dead_letters(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=5000,
        max_partition_fetch_bytes=8 * 2**20,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def header(record, name: str) -> str:
    return next((value.decode() for key, value in record.headers if key == name), "")


def test_a_compressed_bomb_costs_its_dead_letter_and_nothing_else(kafka_bootstrap, namespace, tmp_path):
    env = worker_env(kafka_bootstrap, namespace, tmp_path)
    settings = load_settings(env)
    ensure_topics(settings)
    topic = settings.topics.events
    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    try:
        bomb = b"A" * (9 * 2**20)
        bomber = KafkaProducer(
            bootstrap_servers=kafka_bootstrap, compression_type="gzip", max_request_size=16 * 2**20
        )
        victim = CHECKPOINTS[0]
        bomber.send(topic, bomb, key=victim.encode()).get(timeout=60)
        bomber.close()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        sent = send_valid(producer, topic, "after-bomb", 30)  # 420 events on 14 checkpoints
        producer.close()
        wait_for(
            lambda: processed_by_checkpoint(worker.metrics_url) == sent,
            240,
            "every valid event sent after the bomb counted",
            worker.log_path,
        )
        totals = scrape(worker.metrics_url)
    finally:
        assert worker.stop() == 0, worker.log_path.read_text()[-3000:]
    assert totals.get("crossings_commit_failures_total", 0) == 0
    assert totals.get("crossings_partition_quarantined", 0) == 0
    (letter,) = dead_letters(kafka_bootstrap, settings.topics.dead_letter)
    assert header(letter, "crossings.dlq.reason") == "oversize"
    assert int(header(letter, "crossings.dlq.original.size")) == len(victim) + len(bomb)
    assert header(letter, "crossings.dlq.original.sha256") == hashlib.sha256(bomb).hexdigest()
    assert len(letter.value) + len(letter.key or b"") <= settings.dead_letter_max_bytes
    assert bomb.startswith(letter.value)


def _alter_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(value)})]
        )
    finally:
        admin.close()


def _readyz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def test_a_refused_record_quarantines_its_partition_alone_until_an_operator_skips_it(
    kafka_bootstrap, namespace, tmp_path
):
    env = worker_env(kafka_bootstrap, namespace, tmp_path)
    settings = load_settings(env)
    ensure_topics(settings)
    topic = settings.topics.events
    owners = checkpoints_by_partition(REGISTRY, PARTITIONS)
    victim = next(c for c in CHECKPOINTS if partition_for(c.encode(), PARTITIONS) == 1)
    blocked = partition_for(victim.encode(), PARTITIONS)
    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        first = send_valid(producer, topic, "before", 5)
        wait_for(
            lambda: processed_by_checkpoint(worker.metrics_url) == first, 240, "first events", worker.log_path
        )
        # An operator lowers the dead-letter topic's limit while the worker runs; then an
        # invalid message larger than that arrives on the victim's partition.
        _alter_max_message_bytes(kafka_bootstrap, settings.topics.dead_letter, 20_000)
        blocker = producer.send(topic, b"not json " * 4000, key=victim.encode()).get(timeout=60)
        second = send_valid(producer, topic, "after", 10)
        producer.close()
        others = {c: n for c, n in (first + second).items() if c not in owners[blocked]}
        wait_for(
            lambda: scrape(worker.metrics_url).get("crossings_partition_quarantined", 0) == 1,
            120,
            "the victim's partition quarantined",
            worker.log_path,
        )
        wait_for(
            lambda: (
                {c: n for c, n in processed_by_checkpoint(worker.metrics_url).items() if c in others}
                == others
            ),
            240,
            "every other partition's events counted while one is quarantined",
            worker.log_path,
        )
        ready = _readyz(worker.web_port)
        (held,) = ready["held"]
        assert held["partition"] == blocked and held["cause"] == "record" and held["offset"] == blocker.offset
        assert f"--partition {blocked} --offset {blocker.offset}" in held["what_to_do"]
        counted = processed_by_checkpoint(worker.metrics_url)
        assert counted[victim] == first[victim]  # nothing of the victim's partition past the blocker

        cli_env = {**os.environ, **env}
        listed = subprocess.run(
            [sys.executable, "-m", "streams.cli", "quarantine", "list"],
            env=cli_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert (
            f"partition {blocked}: record" in listed and f"refused record: offset {blocker.offset}" in listed
        )
        asked = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "quarantine",
                "skip",
                "--partition",
                str(blocked),
                "--offset",
                str(blocker.offset),
            ],
            env=cli_env,
            check=True,
            capture_output=True,
        )
        wait_for(
            lambda: processed_by_checkpoint(worker.metrics_url) == first + second,
            240,
            "everything counted once the blocker was moved aside",
            worker.log_path,
        )
        print(f"everything counted {time.monotonic() - asked:.1f}s after the skip was asked for")
        totals = scrape(worker.metrics_url)
        after = subprocess.run(
            [sys.executable, "-m", "streams.cli", "quarantine", "list"],
            env=cli_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        assert worker.stop() == 0, worker.log_path.read_text()[-3000:]
    assert totals.get("crossings_partition_quarantined", 0) == 0
    assert "no partition is quarantined" in after
    letters = dead_letters(kafka_bootstrap, settings.topics.dead_letter)
    assert [(header(r, "crossings.dlq.reason"), int(header(r, "crossings.dlq.offset"))) for r in letters] == [
        ("skipped", blocker.offset)
    ]
    assert int(header(letters[0], "crossings.dlq.original.size")) == len(victim) + 9 * 4000
