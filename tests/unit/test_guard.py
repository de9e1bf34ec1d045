"""The worker's guard under rebalances, stale buffered batches, failed commits and fencing.

Two simulated worker processes share one lake and a fake Kafka that keeps what a real one
would: each partition's committed offset and changelog, and a producer epoch per partition
(opening a partition's outputs bumps it; a commit with an older epoch is refused with
``Fenced``). The group is driven the way Faust's eager rebalance drives it: every member's
partitions are revoked (committed), a new generation assigns them, and each consumer
starts again at the committed offsets (where there is one above 0, as aiokafka seeks: a
partition never committed keeps the member's fetch position, and the guard must send it
back); batches fetched before a rebalance may still be handed over after it, as
``take_events`` does. The oracle is brute force over what was sent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core import PARTITIONS, REGISTRY, make_records, oracle, read_lake

from streams.core.engine import Engine, EngineConfig
from streams.core.ports import Fenced
from streams.core.records import SourceRecord
from streams.sinks.parquet.sink import LakeSink
from streams.worker.guard import Membership, Worker
from streams.worker.metrics import WorkerMetrics


class FakeKafka:
    def __init__(self) -> None:
        self.committed = dict.fromkeys(range(PARTITIONS), 0)  # next offset to read
        self.changelog: dict[int, list] = {p: [] for p in range(PARTITIONS)}
        self.epochs: Counter[int] = Counter()
        self.dead_letters: list = []
        self.opened: list[tuple[str, int]] = []


class FakeOutputs:
    """One process's transactional producers, against the shared ``FakeKafka``."""

    def __init__(self, kafka: FakeKafka, name: str) -> None:
        self.kafka = kafka
        self.name = name
        self.epochs: dict[int, int] = {}
        self.publish_failures = 0

    async def open_partition(self, partition: int) -> None:
        self.kafka.epochs[partition] += 1  # InitProducerId: fences every earlier producer
        self.epochs[partition] = self.kafka.epochs[partition]
        self.kafka.opened.append((self.name, partition))

    async def close_partition(self, partition: int) -> None:
        self.epochs.pop(partition, None)

    async def changelog_end(self, partition: int) -> int | None:
        return len(self.kafka.changelog[partition])

    async def read_changelog(self, partition: int, start: int, end: int):
        chunk = [(offset, self.kafka.changelog[partition][offset]) for offset in range(start, end)]
        if chunk:
            yield chunk

    async def publish(self, batch, write_files) -> int | None:
        partition = batch.partition
        if self.epochs.get(partition) != self.kafka.epochs[partition]:
            raise Fenced(f"partition {partition}: epoch {self.epochs.get(partition)} is not the latest")
        write_files()
        if self.publish_failures:
            self.publish_failures -= 1
            raise ConnectionError("broker unreachable (injected)")
        self.kafka.dead_letters += batch.dead_letters
        self.kafka.changelog[partition] += list(batch.changes)
        self.kafka.committed[partition] = batch.last_offset + 1
        return len(self.kafka.changelog[partition])


class FlakySink(LakeSink):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures = 0
        #: Failures to inject into one partition's flushes only.
        self.failures_of: Counter[int] = Counter()
        self.flushes: list[int] = []

    def flush(self, batch):
        self.flushes.append(batch.partition)
        if self.failures_of[batch.partition] > 0:
            self.failures_of[batch.partition] -= 1
            raise OSError(28, "No space left on device (injected)")
        if self.failures:
            self.failures -= 1
            super().flush(batch)  # the files land, the commit fails
            raise OSError(28, "No space left on device (injected)")
        return super().flush(batch)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Process:
    """One worker process: its own state folder and producers, the shared lake and Kafka."""

    def __init__(self, name: str, root: Path, kafka: FakeKafka, clock: Clock) -> None:
        self.name = name
        self.outputs = FakeOutputs(kafka, name)
        self.sink = FlakySink(root / "data")
        self.engine = Engine(
            EngineConfig(PARTITIONS, root / name / "state", commit_interval=1e9),
            REGISTRY,
            self.sink,
            self.outputs,
            monotonic=clock,
        )
        self.view = Membership(0, frozenset(), active=False)
        self.rejoins = 0
        self.worker = Worker(
            self.engine,
            WorkerMetrics(),
            lambda: self.view,
            rejoin=self.rejoin,
            seek=self.seek,
            clock=clock,
            sleep=clock.sleep,
        )
        self.positions: dict[int, int] = {}
        #: Fetched but not handed over yet, as Faust's take_events buffer.
        self.buffer: list[tuple[int, SourceRecord]] = []

    def membership(self) -> Membership:
        return self.view

    def rejoin(self) -> None:
        self.rejoins += 1

    async def seek(self, partition: int, offset: int) -> None:
        self.positions[partition] = offset

    def fetch(self, by_partition: dict[int, list[SourceRecord]], count: int) -> None:
        for partition in sorted(self.positions):
            position = self.positions[partition]
            fetched = by_partition[partition][position : position + count]
            self.buffer += [(self.view.generation, record) for record in fetched]
            self.positions[partition] = position + len(fetched)

    async def deliver(self) -> None:
        buffer, self.buffer = self.buffer, []
        await self.worker.handle(buffer)

    async def commit(self) -> None:
        async with self.worker.lock:
            await self.worker.commit()


class Group:
    def __init__(self, processes: list[Process], kafka: FakeKafka) -> None:
        self.processes = processes
        self.kafka = kafka
        self.generation = 0

    async def rebalance(self, owners: dict[int, int]) -> None:
        """Eager: revoke everything (each member commits), then a new generation assigns."""
        for process in self.processes:
            process.view = Membership(process.view.generation, process.view.partitions, active=False)
            await process.worker.on_revoked(process.view.partitions)
        self.generation += 1
        for index, process in enumerate(self.processes):
            mine = frozenset(p for p, owner in owners.items() if owner == index)
            process.view = Membership(self.generation, mine, active=True)
            # As aiokafka: a new assignment is sought to the committed offset only if that
            # is above 0; a partition never committed keeps the member's fetch position
            # (past records it fetched and dropped as stale, if it stays with the member).
            process.positions = {p: self.kafka.committed[p] or process.positions.get(p, 0) for p in mine}
            await process.worker.on_assigned(mine)


def split(records: list[SourceRecord]) -> dict[int, list[SourceRecord]]:
    by_partition: dict[int, list[SourceRecord]] = {p: [] for p in range(PARTITIONS)}
    for record in records:
        by_partition[record.partition].append(record)
    return by_partition


#: Rounds: both processes fetch (0 to 15 records of each of their partitions), then one
#: thing happens, then each delivers what it holds or keeps it for a later round (across a
#: rebalance, as a take_events buffer can).
rounds = st.lists(
    st.tuples(
        st.integers(0, 15),
        st.integers(0, 15),
        st.one_of(
            st.tuples(st.just("rebalance"), st.integers(0, 3)),  # new owners, as two bits
            st.tuples(st.just("commit"), st.integers(0, 1)),
            st.tuples(st.just("fail_flush"), st.integers(0, 1)),
            st.tuples(st.just("fail_publish"), st.integers(0, 1)),
            st.tuples(st.just("crash"), st.integers(0, 1)),
            st.tuples(st.just("nothing"), st.just(0)),
        ),
        st.booleans(),
        st.booleans(),
    ),
    max_size=25,
)


async def simulate(records: list[SourceRecord], root: Path, steps) -> tuple[FakeKafka, list[Process]]:
    kafka = FakeKafka()
    clock = Clock()
    processes = [Process("a", root, kafka, clock), Process("b", root, kafka, clock)]
    group = Group(processes, kafka)
    by_partition = split(records)
    await group.rebalance({p: p % 2 for p in range(PARTITIONS)})
    for fetch_a, fetch_b, (action, who), deliver_a, deliver_b in steps:
        clock.now += 1.0
        processes[0].fetch(by_partition, fetch_a)
        processes[1].fetch(by_partition, fetch_b)
        if action == "rebalance":
            await group.rebalance({p: (who >> p) & 1 for p in range(PARTITIONS)})
        elif action == "commit":
            await processes[who].commit()
        elif action == "fail_flush":
            processes[who].sink.failures += 1
        elif action == "fail_publish":
            processes[who].outputs.publish_failures += 1
        elif action == "crash":  # SIGKILL: nothing committed; the member leaves, comes back
            await processes[who].engine.close(list(processes[who].engine.tasks))  # (releases RocksDB)
            processes[who] = Process(processes[who].name, root, kafka, clock)
            await group.rebalance(dict.fromkeys(range(PARTITIONS), 1 - who))
            await group.rebalance({p: p % 2 for p in range(PARTITIONS)})
        for process, deliver in zip(processes, (deliver_a, deliver_b), strict=True):
            if deliver:
                await process.deliver()
    # Drain: one process gets every partition and reads to the end.
    for process in processes:
        process.sink.failures = 0
        process.outputs.publish_failures = 0
    await group.rebalance(dict.fromkeys(range(PARTITIONS), 0))
    for _ in range(3):  # a consumer goes on fetching: records it was sent back to come again
        processes[0].fetch(by_partition, len(records))
        await processes[0].deliver()
    await processes[0].commit()
    assert not processes[0].worker.failing
    for process in processes:
        await process.engine.close(list(process.engine.tasks))
    return kafka, processes


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    spec=st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 7), st.integers(0, 3 * 24 * 60 - 1), st.integers(0, 1)),
        min_size=1,
        max_size=100,
    ),
    steps=rounds,
)
def test_rebalances_stale_batches_and_failed_commits_leave_the_lake_exact(tmp_path_factory, spec, steps):
    records = make_records(sorted(spec, key=lambda item: item[2]))
    root = tmp_path_factory.mktemp("group")
    kafka, processes = asyncio.run(simulate(records, root, steps))
    assert kafka.committed == {p: len(rs) for p, rs in split(records).items()}
    invalid = {(r.partition, r.offset) for r in records if r.value.startswith(b'{"event_id": "broken')}
    assert sorted((d.partition, d.offset) for d in kafka.dead_letters) == sorted(invalid)
    expected = oracle(records)
    event_ids, counts, _ = read_lake(root / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(expected.values())
    assert +counts == expected
    # Without zombies nobody is ever fenced: a partition opens once per owner and generation.
    assert not any(process.worker.lost or process.rejoins for process in processes)


def sample_records() -> list[SourceRecord]:
    return make_records([(n, n % 8, n * 7, n % 2) for n in range(120)])


def test_stale_batch_of_a_moved_partition_is_not_applied(tmp_path):
    """A batch fetched before a rebalance and handed over after it: the partition that
    moved is never opened again here (which would fence its new owner)."""
    records = sample_records()
    by_partition = split(records)

    async def go() -> tuple[FakeKafka, list[Process]]:
        kafka, clock = FakeKafka(), Clock()
        a, b = Process("a", tmp_path, kafka, clock), Process("b", tmp_path, kafka, clock)
        group = Group([a, b], kafka)
        await group.rebalance({0: 0, 1: 0})
        a.fetch(by_partition, 10)
        await a.deliver()
        a.fetch(by_partition, 10)  # buffered...
        await group.rebalance({0: 0, 1: 1})  # ...partition 1 moves to b
        await a.deliver()  # ...handed over after the rebalance: all of generation 1, dropped
        b.fetch(by_partition, 100)
        await b.deliver()
        a.fetch(by_partition, 100)
        await a.deliver()
        await a.commit()
        await b.commit()
        return kafka, [a, b]

    kafka, (a, _) = asyncio.run(go())
    assert a.worker.dropped == 20
    assert kafka.opened == [("a", 0), ("a", 1), ("b", 1)]  # b was never fenced
    assert kafka.committed == {p: len(rs) for p, rs in by_partition.items()}
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


def test_moved_partitions_are_closed_before_a_failed_commit_is_retried(tmp_path):
    records = sample_records()
    by_partition = split(records)

    async def go() -> tuple[FakeKafka, Process]:
        kafka, clock = FakeKafka(), Clock()
        a = Process("a", tmp_path, kafka, clock)
        a.view = Membership(1, frozenset({0, 1}))
        a.positions = {0: 0, 1: 0}
        a.fetch(by_partition, 20)
        await a.deliver()
        a.sink.failures = 1
        await a.commit()
        # Partition 0 failed alone: partition 1 was committed all the same.
        assert a.worker.failing and set(a.worker.held) == {0} and set(a.engine.tasks) == {0, 1}
        assert a.sink.flushes == [0, 1] and kafka.committed[1] == len(by_partition[1][:20])
        a.sink.flushes.clear()
        # Partition 0 moves away (its revoke commit failed as well, say): the next batch
        # never retries its failed commit, and commits what is still assigned.
        a.view = Membership(2, frozenset({1}))
        a.positions = {1: kafka.committed[1]}
        a.fetch(by_partition, 5)
        clock.now += 10
        await a.deliver()
        return kafka, a

    kafka, a = asyncio.run(go())
    assert a.sink.flushes == []  # partition 1 had nothing new; partition 0 is no longer ours
    assert set(a.engine.tasks) == {1} and not a.worker.failing
    assert kafka.committed[0] == 0


def test_a_failing_partition_is_held_back_alone_and_retried_with_backoff(tmp_path):
    """Partition 0's lake writes fail three times: partition 1 goes on committing, partition
    0 is retried after 1, 2 and 4 s (timer or batch, never by sleeping), its records handed
    over meanwhile are dropped and read again once it commits, and nothing is lost."""
    records = sample_records()
    by_partition = split(records)

    async def go() -> tuple[FakeKafka, Process, Clock, list[int]]:
        kafka, clock = FakeKafka(), Clock()
        a = Process("a", tmp_path, kafka, clock)
        a.view = Membership(1, frozenset({0, 1}))
        a.positions = {0: 0, 1: 0}
        a.fetch(by_partition, 20)
        await a.deliver()
        a.sink.failures_of[0] = 3
        flushes = []
        await a.commit()  # partition 0 fails (retry after 1 s); partition 1 commits
        flushes.append(len(a.sink.flushes))
        assert set(a.worker.held) == {0} and kafka.committed == {0: 0, 1: 20}
        for _ in range(5):  # the timer, every 0.25 s: one retry once 1 s has passed
            clock.now += 0.25
            await a.worker.tick()
        flushes.append(len(a.sink.flushes))
        # A batch while partition 0 is held: partition 1's records are applied and
        # committed, partition 0's dropped (its retry is not due before +3 s).
        a.fetch(by_partition, 10)
        await a.deliver()
        await a.commit()
        flushes.append(len(a.sink.flushes))
        assert kafka.committed == {0: 0, 1: 30} and a.worker.held[0].dropped_from == 20
        clock.now += 2.0
        await a.worker.tick()  # attempt 3 fails: next in 4 s
        flushes.append(len(a.sink.flushes))
        clock.now += 4.0
        await a.worker.tick()  # attempt 4 commits; partition 0 is sent back to offset 20
        flushes.append(len(a.sink.flushes))
        assert not a.worker.failing and kafka.committed[0] == 20
        for _ in range(3):
            a.fetch(by_partition, 100)
            await a.deliver()
        await a.commit()
        return kafka, a, clock, flushes

    kafka, a, clock, flushes = asyncio.run(go())
    assert flushes == [2, 3, 4, 5, 6]
    assert clock.slept == []
    assert a.worker.dropped == 10
    assert kafka.committed == {p: len(rs) for p, rs in by_partition.items()}
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


def test_a_fenced_partition_is_let_go_not_reopened(tmp_path):
    """A zombie: the group moved partition 0 to b while a still thinks it owns it."""
    records = sample_records()
    by_partition = split(records)

    async def go() -> tuple[FakeKafka, Process]:
        kafka, clock = FakeKafka(), Clock()
        a, b = Process("a", tmp_path, kafka, clock), Process("b", tmp_path, kafka, clock)
        a.view = Membership(1, frozenset({0, 1}))
        a.positions = {0: 0, 1: 0}
        a.fetch(by_partition, 10)
        await a.deliver()
        # a stalls past its session timeout; generation 2 gives partition 0 to b, a is not told.
        b.view = Membership(2, frozenset({0}))
        b.positions = {0: kafka.committed[0]}
        b.fetch(by_partition, 30)
        await b.deliver()  # opens partition 0: fences a
        a.fetch(by_partition, 10)
        await a.deliver()
        await a.commit()  # partition 0 refused (fenced), partition 1 committed
        assert 0 not in a.engine.tasks and a.worker.lost == {0: 1} and a.rejoins == 1
        assert not a.worker.failing
        a.fetch(by_partition, 10)
        await a.deliver()  # still generation 1: partition 0's records are dropped, not reopened
        assert 0 not in a.engine.tasks
        await b.commit()  # b's epoch is still the latest: it commits
        return kafka, a

    kafka, a = asyncio.run(go())
    assert a.sink.flushes == [1]  # refused before it wrote partition 0's files
    assert kafka.opened == [("a", 0), ("a", 1), ("b", 0)]
    assert kafka.committed == {0: 30, 1: 20}
    assert a.worker.dropped == 10


def test_a_lost_seek_back_is_made_again_rather_than_dropping_the_partition_for_ever(tmp_path):
    """The consumer is sent back to re-read a gap, but the seek is lost (a fetch or a
    rebalance's own seek overtook it): only records past the gap keep coming. After a few
    seconds of that the guard sends it back again, and nothing is missing."""
    records = sample_records()
    by_partition = split(records)

    async def go() -> tuple[FakeKafka, Process]:
        kafka, clock = FakeKafka(), Clock()
        a = Process("a", tmp_path, kafka, clock)
        lost = []

        async def seek_lost_once(partition: int, offset: int) -> None:
            if not lost:
                lost.append((partition, offset))  # overtaken: the position stays where it was
                return
            a.positions[partition] = offset

        a.worker.seek = seek_lost_once
        a.view = Membership(1, frozenset({0}))
        a.positions = {0: 0}
        a.fetch(by_partition, 10)
        await a.deliver()
        await a.commit()
        # Generation 2 starts past what was applied (records fetched and dropped before).
        a.view = Membership(2, frozenset({0}))
        a.positions = {0: 15}
        for _ in range(3):  # only records past the gap arrive: dropped
            a.fetch(by_partition, 5)
            await a.deliver()
        assert lost == [(0, 10)] and kafka.committed[0] == 10
        clock.now += 6  # past RESEEK_AFTER_S of nothing usable
        for _ in range(4):
            a.fetch(by_partition, 100)
            await a.deliver()
        await a.commit()
        return kafka, a

    kafka, _ = asyncio.run(go())
    assert kafka.committed[0] == len(by_partition[0])
    mine = [r for r in records if r.partition == 0]
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(mine).values())
    assert +counts == oracle(mine)
