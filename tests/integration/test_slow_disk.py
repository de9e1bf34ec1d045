"""A commit on a slow disk does not stall the event loop that answers health probes.

The commit's Parquet writes and fsyncs run inside its Kafka transaction. Here they take
two seconds (a sink that sleeps, as a throttled device's fsync would); meanwhile a probe
on the same loop must keep answering every few tens of milliseconds, and the commit
still completes, against the real broker.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.core.effects import CommitBatch, MetricDeltas
from streams.ops.topics import changelog_topic, ensure_topics
from streams.settings import load_settings
from streams.worker.kafka_outputs import KafkaOutputs

pytestmark = pytest.mark.integration

SLOW_FILES_S = 2.0


def test_slow_file_writes_leave_the_loop_responsive(kafka_bootstrap, namespace, tmp_path):
    settings = load_settings(
        {
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CROSSINGS_HOME": str(tmp_path),
            "CROSSINGS_APP_ID": namespace,
            "CROSSINGS_TOPIC_NAMESPACE": namespace,
            "CROSSINGS_PARTITIONS": "1",
        }
    )
    ensure_topics(settings)
    outputs = KafkaOutputs(
        kafka_bootstrap,
        group_id=settings.app_id,
        events_topic=settings.topics.events,
        changelog_topic=changelog_topic(settings),
        dead_letter_topic=settings.topics.dead_letter,
        alerts_topic=settings.topics.alerts,
        transactional_prefix=settings.app_id,
    )
    batch = CommitBatch(0, 1, 0, 0, {}, [], [], [], [(b"m", b"meta")], MetricDeltas(), [], [])

    def slow_files() -> None:
        time.sleep(SLOW_FILES_S)  # blocking, as a file write and fsync on a throttled disk

    async def go() -> tuple[float, float]:
        await outputs.open_partition(0)
        gaps: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        prober = asyncio.create_task(probe())
        started = time.monotonic()
        try:
            await outputs.publish(batch, slow_files)
        finally:
            took = time.monotonic() - started
            done.set()
            await prober
            await outputs.close()
        return took, max(gaps)

    took, worst_gap = asyncio.run(go())
    print(
        f"commit with {SLOW_FILES_S:.0f} s of file writes: {took:.2f} s; "
        f"the longest gap of the loop: {worst_gap:.3f} s"
    )
    assert took >= SLOW_FILES_S
    assert worst_gap < 0.5, f"the event loop stood still for {worst_gap:.2f} s during the commit"
