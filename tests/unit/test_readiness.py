"""``/readyz``'s decision (``Worker.readiness``): not ready before an assignment, during a
rebalance, while a partition's state is being recovered, or after a fence until the group
moves on; ready otherwise. Driven like ``test_guard``: fake Kafka, real engine and lake."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_core import make_records
from test_guard import Clock, FakeKafka, Group, Process, split

from streams.worker.guard import Membership


def test_readiness_follows_assignment_recovery_and_fencing(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    kafka, clock = FakeKafka(), Clock()
    one = Process("one", tmp_path, kafka, clock)
    group = Group([one], kafka)

    before = one.worker.readiness()
    assert not before.ready and "waiting for a partition assignment" in before.reason

    # Mid-rebalance: revoked, not yet assigned.
    one.view = Membership(0, frozenset(), active=False)
    await one.worker.on_revoked(set())
    assert not one.worker.readiness().ready

    await group.rebalance({0: 0, 1: 0})
    ready = one.worker.readiness()
    assert ready.ready and ready.assigned == (0, 1) and ready.open == ()

    # A partition opening (fence, changelog catch-up) holds readiness until it is recovered.
    gate = asyncio.Event()
    opened = one.outputs.open_partition

    async def slow_open(partition: int) -> None:
        await gate.wait()
        await opened(partition)

    one.outputs.open_partition = slow_open  # type: ignore[method-assign]
    records = split(make_records([(n, 0, n, 0) for n in range(5)]))
    partition = next(p for p, batch in records.items() if batch)
    one.fetch(records, 5)
    delivering = asyncio.create_task(one.deliver())
    await asyncio.sleep(0.01)
    recovering = one.worker.readiness()
    assert not recovering.ready and recovering.opening == (partition,), recovering
    assert "recovering the state" in recovering.reason
    gate.set()
    await delivering
    after = one.worker.readiness()
    assert after.ready and after.open == (partition,) and after.opening == ()

    # Another owner fences the partition: not ready until the group's next generation.
    kafka.epochs[partition] += 1
    await one.commit()
    fenced = one.worker.readiness()
    assert not fenced.ready and "fenced" in fenced.reason and one.rejoins == 1
    assert fenced.as_json()["ready"] is False
    await group.rebalance({0: 0, 1: 0})
    assert one.worker.readiness().ready
