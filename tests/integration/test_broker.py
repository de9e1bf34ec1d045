"""Integration tests for streams.ops.broker against a real Kafka 4.1.1 JVM.

One broker is started per module (in a throwaway kafka_dir under /tmp, two ports above
the session broker's, $CROSSINGS_TEST_KAFKA_PORT, so it never collides with that one or a
developer's on 9092) and the tests share it. Each test that needs it running asks for
``running``, which starts it again if an earlier test (in any order) stopped it; the
module's teardown stops it regardless so no JVM is left behind.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError

from streams.ops import broker

pytestmark = pytest.mark.integration

PORT = int(os.environ.get("CROSSINGS_TEST_KAFKA_PORT", "19492")) + 2  # the controller takes PORT + 1
BOOTSTRAP = f"127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def kafka_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A started broker's kafka_dir; stopped at module teardown even if a test failed."""
    path = tmp_path_factory.mktemp("kafka")
    started = time.monotonic()
    status = broker.up(path, PORT, timeout=120)
    print(f"broker.up() from empty dir took {time.monotonic() - started:.1f}s: {status.detail}")
    try:
        yield path
    finally:
        broker.down(path)
        # Keep logs and data for post-mortems (pytest keeps its last few temp dirs); drop
        # the ~40 MB of jars.
        shutil.rmtree(path / "libs", ignore_errors=True)


@pytest.fixture
def running(kafka_dir: Path) -> int:
    """The pid of the module's broker, running: started again if a test stopped it."""
    status = broker.up(kafka_dir, PORT, timeout=120)
    assert status.running and status.pid is not None, status.detail
    return status.pid


def test_up_is_idempotent(kafka_dir: Path, running: int) -> None:
    again = broker.up(kafka_dir, PORT, timeout=30)
    assert again.running
    assert again.pid == running
    assert again.bootstrap == BOOTSTRAP


def test_status_reports_running(kafka_dir: Path, running: int) -> None:
    status = broker.status(kafka_dir, PORT)
    assert status.running
    assert status.pid == running
    assert status.bootstrap == BOOTSTRAP
    assert f"running (pid {running})" in status.detail
    assert (kafka_dir / "broker.pid").read_text().strip() == str(running)


def test_up_on_another_port_is_refused(kafka_dir: Path, running: int) -> None:
    with pytest.raises(broker.BrokerError, match="already running"):
        broker.up(kafka_dir, PORT + 100, timeout=5)


def test_create_topic_produce_and_consume(running: int) -> None:
    topic = f"test.broker.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        producer.send(topic, key=b"k", value=b"hello").get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    try:
        values = []
        for record in consumer:
            values.append(record.value)
            break
    finally:
        consumer.close()
    assert values == [b"hello"]


def test_auto_create_is_disabled(running: int) -> None:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, max_block_ms=3000)
    try:
        # auto.create.topics.enable=false: metadata never shows the topic, so send() times out.
        with pytest.raises(KafkaTimeoutError):
            producer.send("test.broker.never-created", b"x").get(timeout=10)
    finally:
        producer.close()


def test_wait_ready_times_out_on_closed_port() -> None:
    with pytest.raises(broker.BrokerError, match="did not answer"):
        broker.wait_ready("127.0.0.1:1", timeout=1)


def test_down_stops_and_is_idempotent(kafka_dir: Path, running: int) -> None:
    stopped = broker.down(kafka_dir)
    assert not stopped.running
    assert stopped.pid is None
    assert not (kafka_dir / "broker.pid").exists()

    status = broker.status(kafka_dir, PORT)
    assert not status.running
    assert status.detail.startswith("not running")

    # Harmless when already stopped, and it clears a stale pid file left by a crash.
    (kafka_dir / "broker.pid").write_text(f"{running}\n")
    assert "stale pid file" in broker.status(kafka_dir, PORT).detail
    again = broker.down(kafka_dir)
    assert not again.running
    assert not (kafka_dir / "broker.pid").exists()
