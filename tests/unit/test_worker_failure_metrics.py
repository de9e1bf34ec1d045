"""The worker's failure metrics, read from its /metrics exposition: what the README's
alerts on failing commits and re-delivered records count."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families
from test_guard import Clock, FakeKafka, Process, sample_records, split

from streams.worker.guard import Membership


def sample(process: Process, name: str) -> float:
    """One sample of the worker's exposition (what /metrics serves), 0 if absent."""
    text = process.worker.metrics.exposition().decode()
    return sum(
        s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name
    )


def owner_of_both(tmp_path) -> tuple[Process, Clock]:
    kafka, clock = FakeKafka(), Clock()
    process = Process("a", tmp_path, kafka, clock)
    process.view = Membership(1, frozenset({0, 1}))
    process.positions = {0: 0, 1: 0}
    return process, clock


def test_each_failed_commit_attempt_is_counted(tmp_path):
    by_partition = split(sample_records())
    seen = []

    async def go() -> Process:
        a, clock = owner_of_both(tmp_path)
        a.fetch(by_partition, 20)
        await a.deliver()
        a.sink.failures = 2  # two flushes fail (files written, commit refused), then all succeed
        for _ in range(5):  # commits, each after the held partitions' backoff
            await a.commit()
            seen.append((sample(a, "crossings_commit_failures_total"), 2 - a.sink.failures))
            if not a.worker.held:
                break
            clock.now = max(hold.retry_at for hold in a.worker.held.values())
        return a

    a = asyncio.run(go())
    assert seen and all(counted == failed for counted, failed in seen), seen
    assert seen[-1] == (2.0, 2) and not a.worker.held
    assert sample(a, "crossings_events_processed_total") > 0  # the last attempt made it durable


def test_records_delivered_again_below_the_committed_offset_are_counted_and_skipped(tmp_path):
    by_partition = split(sample_records())

    async def go() -> tuple[Process, Process]:
        a, _ = owner_of_both(tmp_path / "a")
        a.fetch(by_partition, 20)
        await a.deliver()
        await a.commit()
        # Kafka hands the last 8 of each partition again (a rebalance, a seek back), then
        # 5 new ones: the 16 repeats are skipped and counted, the new ones processed.
        a.positions = {0: 12, 1: 12}
        a.fetch(by_partition, 13)
        await a.deliver()
        await a.commit()
        once, _ = owner_of_both(tmp_path / "once")  # the same 25 of each, each delivered once
        once.fetch(by_partition, 25)
        await once.deliver()
        await once.commit()
        return a, once

    a, once = asyncio.run(go())
    assert sample(a, "crossings_events_redelivered_total") == 16
    assert sample(once, "crossings_events_redelivered_total") == 0
    processed = sample(a, "crossings_events_processed_total")
    assert processed == sample(once, "crossings_events_processed_total") > 0  # none counted twice
