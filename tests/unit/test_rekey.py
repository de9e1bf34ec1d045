"""Events on the wrong partition (a producer's null or wrong key) are forwarded, not split.

The forward loop is simulated as Kafka would run it: each commit's forwards are appended to
their home partition's log as re-keyed copies (new offsets), and delivered in later
batches. The oracle is brute force over what was sent: the first copy of each event id
counts once, and every checkpoint's rows and counts live only in its own partition.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import event_bytes

from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import checkpoints_by_partition, partition_for
from streams.core.records import REKEYED_HEADER, SourceRecord, is_rekeyed
from streams.domain.local_time import local_day
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

REGISTRY = load_registry()
PARTITIONS = 3
OWNED = checkpoints_by_partition(REGISTRY, PARTITIONS)
CHECKPOINTS = sorted(REGISTRY)
START = datetime(2024, 3, 1, tzinfo=UTC)


def engine(root: Path, outputs: LocalOutputs) -> Engine:
    return Engine(EngineConfig(PARTITIONS, root / "state"), REGISTRY, LakeSink(root / "data"), outputs)


def sent_events(spec: list[tuple[int, int, int, int]]) -> list[tuple[int, bytes, int]]:
    """(id number, checkpoint index, minutes, partition) -> (partition written to, value,
    arrival ms); a repeated id number is a re-sent copy, possibly to another partition."""
    payloads: dict[int, bytes] = {}
    sent = []
    for number, checkpoint_index, minutes, partition in spec:
        if number not in payloads:
            checkpoint_id = CHECKPOINTS[checkpoint_index % len(CHECKPOINTS)]
            payloads[number] = event_bytes(
                f"ev-{number}", START + timedelta(minutes=minutes), checkpoint_id=checkpoint_id
            )
        arrived = round((START + timedelta(minutes=minutes + 1)).timestamp() * 1000)
        sent.append((partition, payloads[number], arrived))
    return sent


def oracle(sent: list[tuple[int, bytes, int]]) -> Counter:
    seen: set[str] = set()
    counts: Counter = Counter()
    for _, value, _ in sent:
        payload = json.loads(value)
        if payload["event_id"] not in seen:
            seen.add(payload["event_id"])
            day = local_day(
                datetime.fromisoformat(payload["occurred_at"]), REGISTRY[payload["checkpoint_id"]].tz
            )
            counts[(payload["checkpoint_id"], payload["direction"], day)] += 1
    return counts


async def run(sent: list[tuple[int, bytes, int]], root: Path, batch: int) -> LocalOutputs:
    """Deliver each partition's log in batches; committed forwards join their home
    partition's log as re-keyed copies, as the worker's transaction writes them."""
    outputs = LocalOutputs()
    core = engine(root, outputs)
    logs: dict[int, list[SourceRecord]] = {p: [] for p in range(PARTITIONS)}
    for partition, value, arrived in sent:
        key = (
            b"wrong-key"
            if partition != partition_for(json.loads(value)["checkpoint_id"].encode(), PARTITIONS)
            else None
        )
        logs[partition].append(SourceRecord(partition, len(logs[partition]), arrived, key, value))
    read = dict.fromkeys(logs, 0)
    while any(read[p] < len(logs[p]) for p in logs):
        for partition in logs:
            records = logs[partition][read[partition] : read[partition] + batch]
            read[partition] += len(records)
            await core.process(records)
        forwarded = len(outputs.forwards)
        await core.commit()
        for forward in outputs.forwards[forwarded:]:
            home = logs[forward.home]
            header = [(REKEYED_HEADER, f"{forward.partition}/{forward.offset}".encode())]
            copy = SourceRecord(
                forward.home, len(home), forward.timestamp_ms, forward.checkpoint_id.encode(), forward.value
            )
            home.append(copy._replace(rekeyed=is_rekeyed(header)))
    await core.close(list(core.tasks))
    return outputs


def read_lake(root: Path) -> tuple[list[tuple[str, str, int]], Counter, dict[str, set[str]]]:
    rows = []
    for path in sorted(root.glob("events/*/*/*.parquet")):
        checkpoint_id = path.parent.name.removeprefix("checkpoint=")
        for row in pq.read_table(path, columns=["event_id", "kafka_partition"]).to_pylist():
            rows.append((row["event_id"], checkpoint_id, row["kafka_partition"]))
    counts: Counter = Counter()
    snapshot_files: dict[str, set[str]] = {}
    for path in sorted(root.glob("daily_counts/*/*/*.parquet")):
        day = datetime.strptime(path.parent.parent.name, "date=%Y-%m-%d").date()
        checkpoint_id = path.parent.name.removeprefix("checkpoint=")
        snapshot_files.setdefault(checkpoint_id, set()).add(path.name)
        for row in pq.read_table(path).to_pylist():
            counts[(checkpoint_id, row["direction"], day)] += row["count"]
    return rows, counts, snapshot_files


spec_strategy = st.lists(
    st.tuples(
        st.integers(0, 60),  # id number: repeats are re-sent copies
        st.integers(0, len(CHECKPOINTS) - 1),
        st.integers(0, 60 * 24 * 2),  # minutes: two days
        st.integers(0, PARTITIONS - 1),  # the partition a careless producer wrote to
    ),
    min_size=1,
    max_size=120,
).map(lambda spec: sorted(spec, key=lambda s: s[2]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=spec_strategy, batch=st.integers(1, 40))
def test_every_checkpoint_is_counted_once_in_its_own_partition(tmp_path_factory, spec, batch):
    root = tmp_path_factory.mktemp("rekey")
    sent = sent_events(spec)
    outputs = asyncio.run(run(sent, root, batch))
    rows, counts, snapshot_files = read_lake(root / "data")
    assert counts == oracle(sent)
    ids = [event_id for event_id, _, _ in rows]
    assert len(ids) == len(set(ids)) == len({json.loads(v)["event_id"] for _, v, _ in sent})
    for _, checkpoint_id, partition in rows:
        assert partition == partition_for(checkpoint_id.encode(), PARTITIONS)
    for checkpoint_id, names in snapshot_files.items():
        assert names == {f"p{partition_for(checkpoint_id.encode(), PARTITIONS):03d}.parquet"}
    misplaced = sum(
        1
        for partition, value, _ in sent
        if partition != partition_for(json.loads(value)["checkpoint_id"].encode(), PARTITIONS)
    )
    assert len(outputs.forwards) == misplaced
    assert not outputs.dead_letters


def test_a_forwarded_event_does_not_move_the_wrong_partitions_clock(tmp_path):
    checkpoint_id = CHECKPOINTS[0]
    home = partition_for(checkpoint_id.encode(), PARTITIONS)
    wrong = (home + 1) % PARTITIONS
    value = event_bytes("far", START + timedelta(days=3), checkpoint_id=checkpoint_id)
    outputs = LocalOutputs()

    async def scenario() -> None:
        core = engine(tmp_path, outputs)
        await core.process([SourceRecord(wrong, 0, 0, None, value)])
        assert core.tasks[wrong].state.stream_ts is None
        assert core.tasks[wrong].state.applied_offset == 0
        report = (await core.commit())[0]
        assert report.batch.metrics.rekeyed == Counter({checkpoint_id: 1})
        assert not report.batch.events
        await core.close(list(core.tasks))

    asyncio.run(scenario())
    [forward] = outputs.forwards
    assert (forward.partition, forward.offset, forward.home, forward.value) == (wrong, 0, home, value)


def test_a_rekeyed_copy_is_counted_where_it_is_never_forwarded_again(tmp_path):
    # After a change of partition count a copy can land on a partition that no longer
    # owns its checkpoint: counting it there beats forwarding it round in circles.
    checkpoint_id = CHECKPOINTS[0]
    wrong = (partition_for(checkpoint_id.encode(), PARTITIONS) + 1) % PARTITIONS
    value = event_bytes("copy", START, checkpoint_id=checkpoint_id)
    outputs = LocalOutputs()

    async def scenario() -> None:
        core = engine(tmp_path, outputs)
        await core.process([SourceRecord(wrong, 0, 0, checkpoint_id.encode(), value, True)])
        report = (await core.commit())[0]
        assert sum(report.batch.metrics.processed.values()) == 1
        await core.close(list(core.tasks))

    asyncio.run(scenario())
    assert not outputs.forwards


def test_only_the_rekeyed_header_marks_a_copy():
    assert is_rekeyed([(REKEYED_HEADER, b"0/1")])
    assert not is_rekeyed([("other", b"x")])
    assert not is_rekeyed([])
    assert not is_rekeyed(None)
