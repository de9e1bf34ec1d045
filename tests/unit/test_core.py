"""The core is exact whatever happens between commits: batch cuts, crashes, failed writes.

A crash is simulated the way Kafka would deliver after it: the task is dropped without
committing, opened again from its store, and every record after the last committed
offset is delivered again (records at or below it too, sometimes, as a consumer whose
offset commit raced would see). The oracle is brute force over what was sent: the
first copy of each event id counts, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from samples import event_bytes

from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import checkpoints_by_partition
from streams.core.records import SourceRecord
from streams.core.task import CommitFailed
from streams.domain.local_time import local_day
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

REGISTRY = load_registry()
PARTITIONS = 2
OWNED = checkpoints_by_partition(REGISTRY, PARTITIONS)
START = datetime(2024, 3, 1, tzinfo=UTC)


def make_records(spec: list[tuple[int, int, int, int]]) -> list[SourceRecord]:
    """(id number, checkpoint index, minutes after START, direction bit) -> records in
    offset order per partition; a repeated id number is a re-sent copy (same payload)."""
    offsets: Counter[int] = Counter()
    payloads: dict[int, tuple[str, bytes, int]] = {}
    records = []
    for number, checkpoint_index, minutes, direction in spec:
        if number not in payloads:
            partition = checkpoint_index % PARTITIONS
            owned = OWNED[partition]
            checkpoint_id = owned[(checkpoint_index // PARTITIONS) % len(owned)]
            raw = event_bytes(
                f"ev-{number}",
                START + timedelta(minutes=minutes),
                checkpoint_id=checkpoint_id,
                direction=("entry", "exit")[direction],
            )
            if number % 11 == 5:  # an invalid message: dead-lettered, never counted
                raw = b'{"event_id": "broken'
            # Reached Kafka a minute after it happened (a re-sent copy: at the same moment).
            arrived_ms = round((START + timedelta(minutes=minutes + 1)).timestamp() * 1000)
            payloads[number] = (checkpoint_id, raw, partition, arrived_ms)
        checkpoint_id, raw, partition, arrived_ms = payloads[number]
        records.append(SourceRecord(partition, offsets[partition], arrived_ms, checkpoint_id.encode(), raw))
        offsets[partition] += 1
    return records


def oracle(records: list[SourceRecord]) -> Counter:
    """(checkpoint, direction, local day) -> first copies of each id."""
    import json

    seen: set[str] = set()
    counts: Counter = Counter()
    for record in records:
        if record.value.startswith(b'{"event_id": "broken'):
            continue
        payload = json.loads(record.value)
        if payload["event_id"] in seen:
            continue
        seen.add(payload["event_id"])
        occurred = datetime.fromisoformat(payload["occurred_at"])
        day = local_day(occurred, REGISTRY[payload["checkpoint_id"]].tz)
        counts[(payload["checkpoint_id"], payload["direction"], day)] += 1
    return counts


def read_lake(root: Path) -> tuple[list[str], Counter, list[dict]]:
    event_ids: list[str] = []
    counts: Counter = Counter()
    alerts: list[dict] = []
    for path in sorted(root.glob("events/*/*/*.parquet")):
        event_ids += pq.read_table(path).column("event_id").to_pylist()
    for path in sorted(root.glob("daily_counts/*/*/*.parquet")):
        day = datetime.strptime(path.parent.parent.name, "date=%Y-%m-%d").date()
        checkpoint_id = path.parent.name.removeprefix("checkpoint=")
        for row in pq.read_table(path).to_pylist():
            counts[(checkpoint_id, row["direction"], day)] += row["count"]
    for path in sorted(root.glob("alerts/*/*/*.parquet")):
        alerts += pq.read_table(path).to_pylist()
    return event_ids, counts, sorted(alerts, key=lambda a: a["alert_id"])


def engine(root: Path, sink: LakeSink | None = None, outputs: LocalOutputs | None = None) -> Engine:
    return Engine(
        EngineConfig(PARTITIONS, root / "state"),
        REGISTRY,
        sink or LakeSink(root / "data"),
        outputs or LocalOutputs(),
    )


class GatedSink(LakeSink):
    """Each flush waits for a token: the commits made behind stay in flight (not in the
    store) while the records after them are processed, until the next commit lets them go."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.tokens = threading.Semaphore(0)
        self.waiting = threading.Event()  # a flush is waiting for its token

    def flush(self, batch):
        self.waiting.set()
        assert self.tokens.acquire(timeout=30), "a flush was never let go"
        return super().flush(batch)


async def until(condition, timeout: float = 30.0) -> None:
    """Wait for ``condition()``, yielding to the loop (and its threads) meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def let_go(core: Engine) -> None:
    sink = core.sink
    if isinstance(sink, GatedSink):
        for task in core.tasks.values():
            if task._behind is not None:
                sink.tokens.release()


async def run(
    records: list[SourceRecord],
    root: Path,
    cuts: list[int],
    crashes: set[int],
    commits: set[int],
    behind: bool = False,
):
    """Deliver ``records`` in batches cut at ``cuts``; commit after batch i in ``commits``;
    after batch i in ``crashes`` drop everything uncommitted and re-deliver from the
    committed offset of each partition (and, from one before it, an already-applied one).
    ``behind``: commits are made behind (a replay's), each in flight until the next."""
    outputs = LocalOutputs()
    letters: list = []

    def new_engine() -> Engine:
        return engine(root, GatedSink(root / "data") if behind else None, outputs)

    async def commit() -> list:
        let_go(core)
        reports = await core.commit(behind=behind)
        if behind:  # the batch's dead letters are the caller's
            letters.extend(letter for report in reports for letter in report.batch.dead_letters)
        return reports

    core = new_engine()
    committed = dict.fromkeys(range(PARTITIONS), -1)
    position = 0
    batch_number = 0
    bounds = sorted({c for c in cuts if 0 < c < len(records)} | {len(records)})
    while position < len(records):
        end = next(b for b in bounds if b > position)
        await core.process(records[position:end])
        position = end
        if batch_number in commits:
            for report in await commit():
                committed[report.batch.partition] = report.batch.last_offset
        if batch_number in crashes:
            let_go(core)
            await core.close(list(core.tasks))
            core = new_engine()
            # Kafka re-delivers each partition from its committed offset (minus one).
            replay_from = {p: max(offset, 0) for p, offset in committed.items()}
            redelivered = [r for r in records[:position] if r.offset >= replay_from[r.partition]]
            await core.process(redelivered)
        batch_number += 1
    await commit()
    let_go(core)
    await core.settle()
    await core.close(list(core.tasks))
    outputs.dead_letters += letters
    return outputs


schedules = st.lists(
    # Event times within the 72 h dedup horizon: nothing is refused as too late.
    st.tuples(st.integers(0, 60), st.integers(0, 7), st.integers(0, 3 * 24 * 60 - 1), st.integers(0, 1)),
    min_size=1,
    max_size=120,
)


#: Deliveries: batch cuts, crashes after some batches, commits after some batches (often
#: early ones, so that records, and copies of the ids just committed, come after them).
deliveries = given(
    spec=schedules,
    cuts=st.lists(st.integers(0, 120), max_size=12),
    crashes=st.sets(st.integers(0, 12), max_size=4),
    commits=st.sets(st.integers(0, 12), max_size=8) | st.sets(st.integers(0, 4), min_size=1, max_size=4),
)
slow_examples = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@slow_examples
@deliveries
def test_lake_is_exact_after_crashes_and_any_batching(tmp_path_factory, spec, cuts, crashes, commits):
    spec = sorted(spec, key=lambda item: item[2])  # event time roughly follows arrival
    records = make_records(spec)
    crashed = tmp_path_factory.mktemp("crashed")
    calm = tmp_path_factory.mktemp("calm")
    outputs = asyncio.run(run(records, crashed, cuts, crashes, commits))
    asyncio.run(run(records, calm, [], set(), set()))
    invalid = {(r.partition, r.offset) for r in records if r.value.startswith(b'{"event_id": "broken')}
    dead_lettered = [(letter.partition, letter.offset) for letter in outputs.dead_letters]
    assert sorted(dead_lettered) == sorted(invalid)  # each exactly once
    expected = oracle(records)
    event_ids, counts, alerts = read_lake(crashed / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(expected.values())
    assert +counts == expected
    # Deterministic: the same alerts, byte for byte, as one uninterrupted batch.
    assert alerts == read_lake(calm / "data")[2]


def lake_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*.parquet")}


@slow_examples
@deliveries
@example(spec=[(1, 0, 10, 0), (2, 0, 11, 0), (1, 0, 12, 0)], cuts=[2], crashes=set(), commits={0})
def test_commits_made_behind_write_the_same_lake(tmp_path_factory, spec, cuts, crashes, commits):
    # Re-sent copies arrive while the commit holding their first copy is still in flight:
    # they are duplicates all the same, and nothing differs from commits made in line.
    spec = sorted(spec, key=lambda item: item[2])
    records = make_records(spec)
    in_line, behind = tmp_path_factory.mktemp("in-line"), tmp_path_factory.mktemp("behind")
    asyncio.run(run(records, in_line, cuts, crashes, commits))
    outputs = asyncio.run(run(records, behind, cuts, crashes, commits, behind=True))
    invalid = {(r.partition, r.offset) for r in records if r.value.startswith(b'{"event_id": "broken')}
    assert sorted((letter.partition, letter.offset) for letter in outputs.dead_letters) == sorted(invalid)
    event_ids, counts, _ = read_lake(behind / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)
    assert lake_files(behind / "data") == lake_files(in_line / "data")


def test_a_duplicate_of_an_id_in_flight_is_found(tmp_path):
    records = scenario_records()  # ids 0-99 come again at the end
    core = engine(tmp_path, GatedSink(tmp_path / "data"))

    async def go() -> list:
        await core.process(records[:500])
        reports = await core.commit(behind=True)  # in flight: the flushes wait for a token
        in_flight = [task._behind for task in core.tasks.values() if task._behind is not None]
        assert len(in_flight) == PARTITIONS and not any(pending.done() for _, pending in in_flight)
        await core.process(records[500:])  # the copies, while their first copies are in flight
        let_go(core)
        reports += await core.commit(behind=True)
        let_go(core)
        await core.settle()
        await core.close(list(core.tasks))
        return reports

    reports = asyncio.run(go())
    valid_copies = sum(1 for number in range(100) if number % 11 != 5)
    assert sum(r.batch.metrics.duplicates for r in reports) == valid_copies
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


def make_reused_records(spec: list[tuple[int, int]]) -> list[SourceRecord]:
    """(id number, hours after START) -> records of one checkpoint on partition 0, in that
    order; an id number that comes again at another hour is the id reused for another
    crossing (at the same hour: a re-sent copy)."""
    checkpoint_id = OWNED[0][0]
    records = []
    for offset, (number, hours) in enumerate(spec):
        at = START + timedelta(hours=hours)
        arrived_ms = round((at + timedelta(minutes=1)).timestamp() * 1000)
        raw = event_bytes(f"ev-{number}", at, checkpoint_id=checkpoint_id)
        records.append(SourceRecord(0, offset, arrived_ms, checkpoint_id.encode(), raw))
    return records


@slow_examples
@given(
    # Hours far enough apart that ids fall past the 72 h horizon and their chunks expire.
    spec=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 400)), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=10),
    commits=st.sets(st.integers(0, 10), max_size=8),
)
@example(spec=[(0, 0), (1, 80), (0, 81)], cuts=[1, 2], commits={0, 1})
# Ids already past the horizon when first committed are not written, nor held in flight.
@example(spec=[(0, 0)] * 25 + [(0, 73)] * 3, cuts=[26], commits={0})
def test_ids_forgotten_by_a_commit_in_flight_are_forgotten_as_in_line(tmp_path_factory, spec, cuts, commits):
    # A commit whose store write deletes the ids of an expired hour is in flight while the
    # next records are processed: an id of that hour reused for a later crossing is new,
    # as it is after the same commit made in line (not a conflict with what the store has
    # not deleted yet).
    records = make_reused_records(sorted(spec, key=lambda item: item[1]))
    in_line, behind = tmp_path_factory.mktemp("in-line"), tmp_path_factory.mktemp("behind")
    expected = asyncio.run(run(records, in_line, cuts, set(), commits))
    got = asyncio.run(run(records, behind, cuts, set(), commits, behind=True))
    assert sorted(got.dead_letters, key=lambda d: d.offset) == sorted(
        expected.dead_letters, key=lambda d: d.offset
    )
    assert lake_files(behind / "data") == lake_files(in_line / "data")


def test_a_commit_that_failed_behind_fails_the_replay_and_a_rerun_is_exact(tmp_path):
    records = scenario_records()
    core = engine(tmp_path, FlakySink(tmp_path / "data", failures=1))

    async def first_run() -> None:
        await core.process(records[:200])
        await core.commit(behind=True)
        await core.process(records[200:400])
        with pytest.raises(CommitFailed, match="No space left"):
            await core.commit(behind=True)  # settles the failed one first
        assert core.tasks[0].processor is None, "the failed partition's task is closed"
        await core.close(list(core.tasks))

    async def rerun() -> None:
        again = engine(tmp_path)
        applied = {}
        for partition in range(PARTITIONS):
            applied[partition] = (await again.open(partition)).state.applied_offset
        await again.process([r for r in records if r.offset > applied[r.partition]])
        await again.commit(behind=True)
        await again.settle()
        await again.close(list(again.tasks))

    asyncio.run(first_run())
    asyncio.run(rerun())
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


def test_a_replay_cancelled_while_a_commit_is_in_flight_closes_the_store_after_it(tmp_path):
    # Ctrl-C: asyncio.run cancels the replay while it waits for a commit made behind; the
    # store must not be closed under that commit's writer, which then writes it whole.
    records = [r for r in scenario_records()[:200] if r.partition == 0]
    sink = GatedSink(tmp_path / "data")
    core = engine(tmp_path, sink)

    async def go() -> None:
        await core.process(records)
        await core.commit(behind=True)
        task = core.tasks[0]
        settling = asyncio.create_task(core.settle())
        await until(lambda: sink.waiting.is_set())  # the commit's writer is in the sink
        await asyncio.sleep(0)  # settle() runs to its wait
        settling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await settling
        closing = asyncio.create_task(core.close(list(core.tasks)))
        # Nothing but the commit in flight can hold close() back: without that wait it
        # would close the store within these steps of the loop (no other awaits come first).
        for _ in range(20):
            await asyncio.sleep(0)
        try:
            assert task.store is not None, "the store was closed under the commit's writer"
            assert not closing.done()
        finally:
            sink.tokens.release()
            await closing
        assert task.store is None

    asyncio.run(go())

    async def reopen() -> int:
        again = engine(tmp_path)
        applied = (await again.open(0)).state.applied_offset
        await again.close([0])
        return applied

    assert asyncio.run(reopen()) == records[-1].offset, "the commit in flight was written"


class FlakySink(LakeSink):
    """Fails the first ``failures`` flushes after writing part of the batch."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def flush(self, batch):
        if self.failures:
            self.failures -= 1
            super().flush(batch)  # the files land...
            raise OSError(28, "No space left on device (injected)")  # ...but the commit fails
        return super().flush(batch)


def scenario_records() -> list[SourceRecord]:
    spec = [(n % 500, n % 8, n * 7, n % 2) for n in range(600)]  # the last 100 are re-sent copies
    return make_records(spec)


def test_failed_flush_aborts_the_commit_and_a_retry_is_exact(tmp_path):
    records = scenario_records()
    core = engine(tmp_path, FlakySink(tmp_path / "data", failures=2))

    async def go() -> None:
        await core.process(records[:300])
        # Every partition is tried: both fail (two failures), neither stops the other's try.
        with pytest.raises(CommitFailed) as raised:
            await core.commit()
        assert set(raised.value.failures) == {0, 1}  # type: ignore[attr-defined]
        await core.commit()
        await core.process(records[300:])
        await core.commit()

    asyncio.run(go())
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


@contextlib.contextmanager
def read_only(path: Path):
    """Make ``path`` read-only even for root (a read-only bind mount), else by mode bits."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    try:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"root cannot make a read-only mount here: {error}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_data_folder_fails_commits_until_writable(tmp_path):
    records = scenario_records()
    data = tmp_path / "data"
    core = engine(tmp_path, LakeSink(data))

    async def go() -> None:
        await core.process(records[:200])
        await core.commit()
        await core.process(records[200:450])
        with read_only(data):
            with pytest.raises(CommitFailed, match=r"Read-only file system|Permission denied"):
                await core.commit()
            with pytest.raises(CommitFailed):
                await core.commit()
        await core.commit()
        await core.process(records[450:])
        await core.commit()

    asyncio.run(go())
    event_ids, counts, _ = read_lake(data)
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)
