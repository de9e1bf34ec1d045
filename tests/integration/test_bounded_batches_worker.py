"""A compressed bomb is refused while it is read: the worker against the real broker.

One record batch that decompresses to 128 MiB (gzip: ~130 KB on the wire, from kafka-python;
lz4: ~550 KB and zstd: a few KB, from Kafka's own Java client), sent amid valid events on
one partition. The worker reads batches up to
``CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES`` (8 MiB here): the bomb is never decompressed
whole, so the worker's peak resident memory grows by far less than the bomb; the batch
becomes one ``oversize`` dead letter that says which offsets, how large and which codec;
every valid event before and after it is counted exactly once, and the same process
serves throughout without a failed commit.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer
from test_isolation_worker import (
    CHECKPOINTS,
    PARTITIONS,
    dead_letters,
    event,
    header,
    processed_by_checkpoint,
    send_valid,
    wait_for,
    worker_env,
)

from load_tests.crash_test import lake_event_ids
from load_tests.harness import WorkerProcess, free_port, scrape
from streams.core.partitioning import partition_for
from streams.ops.broker import install_jars
from streams.ops.topics import ensure_topics
from streams.settings import PROJECT_ROOT, load_settings

pytestmark = pytest.mark.integration

BOUND = 8 * 2**20
BOMB_BYTES = 128 * 2**20


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def send_bomb(bootstrap: str, topic: str, key: bytes) -> tuple[int, int]:
    """One record of 128 MiB of one letter, gzip-compressed in a batch of its own."""
    bomber = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type="gzip",
        max_request_size=BOMB_BYTES + 2**20,
        batch_size=2**20,
        request_timeout_ms=120_000,
    )
    try:
        meta = bomber.send(topic, b"B" * BOMB_BYTES, key=key).get(timeout=120)
        return meta.partition, meta.offset
    finally:
        bomber.close()


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_a_bomb_is_refused_while_read_and_the_events_around_it_count_once(
    kafka_bootstrap, namespace, tmp_path, codec
):
    env = {
        **worker_env(kafka_bootstrap, namespace, tmp_path),
        "CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES": str(BOUND),
        "CROSSINGS_LAKE_ROLL_SECONDS": "0",
    }
    settings = load_settings(env)
    ensure_topics(settings)
    topic = settings.topics.events
    victim = CHECKPOINTS[0]
    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    assert worker.process is not None
    pid = worker.process.pid
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
        before = send_valid(producer, topic, "before", 20)  # 280 events on 14 checkpoints
        wait_for(
            lambda: processed_by_checkpoint(worker.metrics_url) == before,
            240,
            "the events before the bomb counted",
            worker.log_path,
        )
        peak_before = peak_rss(pid)
        partition = partition_for(victim.encode(), PARTITIONS)
        if codec == "gzip":
            where = send_bomb(kafka_bootstrap, topic, victim.encode())
        else:
            (offset,) = send_with_java(kafka_bootstrap, topic, partition, codec, f"@{BOMB_BYTES}", key=victim)
            where = (partition, offset)
        assert where[0] == partition
        after = send_valid(producer, topic, "after", 20)
        producer.close()
        wait_for(
            lambda: (
                processed_by_checkpoint(worker.metrics_url) == before + after
                and scrape(worker.metrics_url).get("crossings_events_invalid_total", 0) >= 1
            ),
            240,
            "every valid event counted and the bomb dead-lettered",
            worker.log_path,
        )
        peak_after = peak_rss(pid)
        totals = scrape(worker.metrics_url)
        alive = worker.process.poll() is None
    finally:
        assert worker.stop() == 0, worker.log_path.read_text()[-3000:]
    growth = peak_after - peak_before
    print(
        f"worker peak RSS {peak_before / 2**20:.0f} MiB before the bomb, {peak_after / 2**20:.0f} MiB "
        f"after it (+{growth / 2**20:.1f} MiB for a {BOMB_BYTES / 2**20:.0f} MiB bomb, bound "
        f"{BOUND / 2**20:.0f} MiB, {codec})"
    )
    assert alive and worker.process.pid == pid
    # Far less than the bomb: at most the bound and aiokafka's copy of it, with room to spare.
    assert growth < 4 * BOUND, f"peak RSS grew by {growth / 2**20:.0f} MiB"
    assert totals.get("crossings_commit_failures_total", 0) == 0
    assert totals.get("crossings_partition_quarantined", 0) == 0
    assert totals.get("crossings_events_invalid_total", 0) == 1
    # the dead letter says what was refused
    (letter,) = dead_letters(kafka_bootstrap, settings.topics.dead_letter)
    assert header(letter, "crossings.dlq.reason") == "oversize"
    assert header(letter, "crossings.dlq.topic") == topic
    assert (
        int(header(letter, "crossings.dlq.partition")),
        int(header(letter, "crossings.dlq.offset")),
    ) == where
    assert int(header(letter, "crossings.dlq.batch.base.offset")) == where[1]
    assert int(header(letter, "crossings.dlq.batch.last.offset")) == where[1]
    assert header(letter, "crossings.dlq.batch.codec") == codec
    assert 0 < int(header(letter, "crossings.dlq.batch.compressed.size")) < 2**20
    assert "CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES" in header(letter, "crossings.dlq.detail")
    assert not letter.value and letter.key is None
    # every valid event once in the lake, none lost around the bomb
    ids = lake_event_ids(settings.data_dir, settings.lake)
    sent = {f"{prefix}-{c}-{n}" for prefix in ("before", "after") for c in CHECKPOINTS for n in range(20)}
    assert set(ids) == sent and set(Counter(ids.values())) == {1}


def send_with_java(
    bootstrap: str, topic: str, partition: int, codec: str, values: str | list[bytes], key: str = "jibek-joly"
) -> list[int]:
    """Records in one batch from Kafka's own Java client, compressed with ``codec``: one per
    value of ``values``, or ``"@N"`` one of N bytes; their offsets."""
    libs = install_jars(PROJECT_ROOT / ".local" / "kafka")
    source = Path(__file__).parent.parent / "data" / "SendCompressed.java"
    lines = values if isinstance(values, str) else "-"
    java = [shutil.which("java") or "java", "-cp", f"{libs}/*", str(source)]
    done = subprocess.run(
        [*java, bootstrap, topic, str(partition), codec, key, lines, "1"],
        input=b"" if isinstance(values, str) else b"\n".join(values) + b"\n",
        capture_output=True,
        timeout=180,
        check=True,
    )
    return [int(line) for line in done.stdout.split()]


def test_events_the_java_client_sends_with_lz4_zstd_and_snappy_count_once(
    kafka_bootstrap, namespace, tmp_path
):
    env = {**worker_env(kafka_bootstrap, namespace, tmp_path), "CROSSINGS_LAKE_ROLL_SECONDS": "0"}
    settings = load_settings(env)
    ensure_topics(settings)
    topic = settings.topics.events
    victim = CHECKPOINTS[0]
    partition = partition_for(victim.encode(), PARTITIONS)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    codecs = ("lz4", "zstd", "snappy")
    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start()
    assert worker.process is not None
    pid = worker.process.pid
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
        expected = send_valid(producer, topic, "before", 5)
        for codec in codecs:
            values = [event(f"{codec}-{victim}-{n}", victim, start + timedelta(seconds=n)) for n in range(30)]
            offsets = send_with_java(kafka_bootstrap, topic, partition, codec, values, key=victim)
            assert len(offsets) == 30
            expected[victim] += 30
        expected += send_valid(producer, topic, "after", 5)
        producer.close()
        wait_for(
            lambda: processed_by_checkpoint(worker.metrics_url) == expected,
            180,
            "every event counted, those from the Java client included",
            worker.log_path,
        )
        totals = scrape(worker.metrics_url)
        alive = worker.process.poll() is None
    finally:
        assert worker.stop() == 0, worker.log_path.read_text()[-3000:]
    assert alive and worker.process.pid == pid
    assert totals.get("crossings_commit_failures_total", 0) == 0
    assert totals.get("crossings_events_invalid_total", 0) == 0
    assert dead_letters(kafka_bootstrap, settings.topics.dead_letter) == []
    ids = lake_event_ids(settings.data_dir, settings.lake)
    sent = {f"{prefix}-{c}-{n}" for prefix in ("before", "after") for c in CHECKPOINTS for n in range(5)}
    sent |= {f"{codec}-{victim}-{n}" for codec in codecs for n in range(30)}
    assert set(ids) == sent and set(Counter(ids.values())) == {1}


def test_the_replay_reader_reads_a_bomb_as_one_refused_batch(kafka_bootstrap, namespace, tmp_path):
    import asyncio

    from streams.core.records import RefusedBatch
    from streams.replay.sources import kafka_records

    settings = load_settings(worker_env(kafka_bootstrap, namespace, tmp_path))
    ensure_topics(settings)
    topic = settings.topics.events
    key = CHECKPOINTS[0].encode()
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, compression_type="gzip", max_request_size=2**25
    )
    first = producer.send(topic, b"before", key=key).get(timeout=60)
    producer.flush()
    bomb = producer.send(topic, b"C" * (16 * 2**20), key=key).get(timeout=120)
    producer.flush()
    last = producer.send(topic, b"after", key=key).get(timeout=60)
    producer.close()

    async def read() -> list:
        return [
            r async for batch in kafka_records(kafka_bootstrap, topic, max_batch_bytes=BOUND) for r in batch
        ]

    records = asyncio.run(read())
    assert [(r.offset, r.value.__class__.__name__) for r in records] == [
        (first.offset, "bytes"),
        (bomb.offset, "RefusedBatch"),
        (last.offset, "bytes"),
    ]
    refused = records[1].value
    assert isinstance(refused, RefusedBatch) and refused.reason == "oversize" and refused.codec == "gzip"
    assert refused.base_offset == refused.last_offset == bomb.offset and refused.limit == BOUND
