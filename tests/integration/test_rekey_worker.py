"""A producer with null or wrong keys does not split a checkpoint over partitions, and a
producer's aborted transaction is never counted: the worker against the real broker."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer

from load_tests.harness import WorkerProcess, free_port, scrape, scrape_text
from streams.core.partitioning import partition_for
from streams.core.records import REKEYED_HEADER
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

PARTITIONS = 4
CHECKPOINT = "zhibek-zholy"
HOME = partition_for(CHECKPOINT.encode(), PARTITIONS)
WRONG = [p for p in range(PARTITIONS) if p != HOME]


def event_bytes(event_id: str, occurred_at: datetime, checkpoint_id: str) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "event_id": event_id,
            "checkpoint_id": checkpoint_id,
            "direction": "entry",
            "occurred_at": occurred_at.isoformat(),
            "nationality": "UZB",
            "purpose": "labour",
            "mode": "bus",
            "outcome": "admitted",
        }
    ).encode()


@functools.cache
def sent_at(n: int) -> datetime:
    """Event ``n``'s stamp, the same every time it is asked for: a re-sent copy stamped a
    second later would be another crossing under the same id (a ``duplicate_conflict``
    dead letter, not a duplicate), which made this test fail when the clock ticked over a
    second between an event and its copy."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2) + timedelta(seconds=30 * n)


async def abort_a_transaction(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-aborting")
    await producer.start()
    try:
        await producer.begin_transaction()
        for n in range(5):
            value = event_bytes(f"aborted-{n}", sent_at(n), checkpoint_id=CHECKPOINT)
            await producer.send_and_wait(topic, value, key=CHECKPOINT.encode(), partition=HOME)
        await producer.abort_transaction()
    finally:
        await producer.stop()


def test_mis_keyed_events_are_counted_once_in_their_checkpoints_partition(
    kafka_bootstrap, namespace, tmp_path
):
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_COMMIT_INTERVAL": "1",
        # Every commit publishes its lake rows: the test reads the lake while the worker runs.
        "CROSSINGS_LAKE": "parquet",  # this test reads the lake's files
        "CROSSINGS_LAKE_ROLL_SECONDS": "0",
    }
    settings = load_settings(env)
    ensure_topics(settings)
    topic = settings.topics.events
    asyncio.run(abort_a_transaction(kafka_bootstrap, topic))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    misplaced = 0
    for n in range(100):
        value = event_bytes(f"ev-{n}", sent_at(n), checkpoint_id=CHECKPOINT)
        if n % 3 == 0:  # keyed right
            producer.send(topic, value, key=CHECKPOINT.encode())
        else:  # a null key, or another checkpoint's key, on another partition
            key = None if n % 3 == 1 else b"korday"
            producer.send(topic, value, key=key, partition=WRONG[n % len(WRONG)])
            misplaced += 1
    for n in range(0, 100, 10):  # re-sent copies, to yet another wrong partition
        value = event_bytes(f"ev-{n}", sent_at(n), checkpoint_id=CHECKPOINT)
        producer.send(topic, value, key=None, partition=WRONG[(n + 1) % len(WRONG)])
        misplaced += 1
    # Four days old, mis-keyed: valid where it is read (that partition counts nothing, so
    # it has no clock), but its copy reaches the checkpoint's partition after that one's
    # own events, 98 hours behind its stream time: beyond the 72 h horizon, too late there.
    old = event_bytes("ev-old", sent_at(0) - timedelta(hours=98), checkpoint_id=CHECKPOINT)
    producer.send(topic, old, key=None, partition=WRONG[0])
    misplaced += 1
    producer.flush()
    producer.close()

    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    try:
        # Counted or duplicate: a misplaced message is handled once its copy is, at home.
        worker.wait_handled(111, timeout=300)
        totals = scrape(worker.metrics_url)
        metrics = scrape_text(worker.metrics_url)
    finally:
        assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]

    assert totals["crossings_events_processed_total"] == 100
    assert totals["crossings_events_duplicate_total"] == 10
    assert totals["crossings_events_rekeyed_total"] == misplaced
    assert totals["crossings_events_invalid_total"] == 1, metrics
    assert 'crossings_events_invalid_total{reason="too_late"} 1.0' in metrics

    # The lake: every event once, all read from the checkpoint's own partition, one snapshot.
    events = [
        row
        for path in (settings.data_dir / "events").rglob("*.parquet")
        for row in pq.read_table(path, columns=["event_id", "kafka_partition"]).to_pylist()
    ]
    assert sorted(row["event_id"] for row in events) == sorted(f"ev-{n}" for n in range(100))  # not ev-old
    assert {row["kafka_partition"] for row in events} == {HOME}
    snapshots = list((settings.data_dir / "daily_counts").rglob("*.parquet"))
    assert {path.name for path in snapshots} == {f"p{HOME:03d}.parquet"}
    assert sum(sum(pq.read_table(path).column("count").to_pylist()) for path in snapshots) == 100

    # The copies in the topic: keyed by checkpoint, on its partition, saying where they came from.
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=4000,
    )
    copies = [m for m in consumer if any(name == REKEYED_HEADER for name, _ in m.headers)]
    consumer.close()
    # The old one's copy was dead-lettered at home, as too late, with the copy's bytes.
    dead = KafkaConsumer(
        settings.topics.dead_letter,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=4000,
    )
    letters = list(dead)
    dead.close()
    assert [(m.value, dict(m.headers)["crossings.dlq.reason"]) for m in letters] == [(old, b"too_late")]
    assert dict(letters[0].headers)["crossings.dlq.topic"].decode() == topic
    [old_copy] = [m for m in copies if m.value == old]
    headers = dict(letters[0].headers)
    assert (headers["crossings.dlq.partition"].decode(), headers["crossings.dlq.offset"].decode()) == (
        str(HOME),
        str(old_copy.offset),
    )
    assert len(copies) == misplaced
    assert {(m.partition, m.key) for m in copies} == {(HOME, CHECKPOINT.encode())}
    origins = Counter(dict(m.headers)[REKEYED_HEADER].decode().split("/")[0] for m in copies)
    assert set(origins) == {str(p) for p in WRONG}
