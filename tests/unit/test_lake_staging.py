"""Staged lake rows: few files for a trickle of events, and exact whatever a crash cuts.

The crash model is the one of ``test_core``: the process dies (here: at any step inside
a commit, not only between batches), the engine is dropped without committing, and a new
one is opened on the same store and lake; Kafka delivers again from the start (records
at or below the applied offset are recognised and skipped). The oracle is brute force
over what was sent: the first copy of each event id counts, once.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_core import PARTITIONS, engine, make_records, oracle, read_lake, schedules

from streams import query
from streams.core.records import SourceRecord
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet import sink as sink_module
from streams.sinks.parquet.sink import LakeSink
from streams.sinks.parquet.staging import Staging, _unlink_durably

ROLL_SECONDS = 30.0


class Crash(BaseException):
    """The process dies here (not an error the commit protocol could handle)."""


class CrashingStaging(Staging):
    def __init__(self, *args, crash_at: list[str | None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crash_at = crash_at

    def write_intent(self, partition, publication) -> None:
        super().write_intent(partition, publication)
        if self.crash_at[0] == "intent":
            raise Crash

    def _finish(self, partition, seq, replaced) -> int:
        if self.crash_at[0] == "finishing":  # the staged files go, the intent stays
            _unlink_durably([self.folder(partition) / relative for relative in replaced])
            raise Crash
        return super()._finish(partition, seq, replaced)


class CrashingSink(LakeSink):
    """A lake that dies at ``crash_at[0]`` during the next commit that gets there."""

    def __init__(self, root: Path, clock, crash_at: list[str | None]) -> None:
        super().__init__(root, roll_seconds=ROLL_SECONDS, clock=clock)
        self.crash_at = crash_at
        self.staging = CrashingStaging(root, roll_seconds=ROLL_SECONDS, clock=clock, crash_at=crash_at)

    def flush(self, batch):
        if self.crash_at[0] == "file":  # the first file lands, the process dies
            real = sink_module.write_all

            def first_only(jobs, partition, temp_dir=None):
                real(jobs[:1], partition, temp_dir)
                raise Crash

            sink_module.write_all = first_only
            try:
                return super().flush(batch)
            finally:
                sink_module.write_all = real
        flushed = super().flush(batch)
        if self.crash_at[0] == "flushed":  # before the commit point
            raise Crash
        return flushed

    def committed(self, partition, committed_seq) -> None:
        if self.crash_at[0] == "stored":  # after the commit point, before the staging knows
            raise Crash
        super().committed(partition, committed_seq)


def staged_files(data: Path) -> list[Path]:
    return sorted(data.glob("_staging/**/*.parquet"))


def visible_files(data: Path, dataset: str = "events") -> list[Path]:
    return sorted(data.glob(f"{dataset}/*/*/*.parquet"))


def test_a_trickle_of_events_is_published_in_few_files(tmp_path):
    # One crossing every 10 s at the posts of partition 0, a commit after each: with every
    # commit publishing (roll 0) each folder gets a file per crossing; staged and published
    # every 10 minutes, one per 10 minutes at most.
    spec = [(n, 0, n // 6, 0) for n in range(600)]  # 600 records, 100 minutes of event time
    records = make_records(spec)
    valid = [not r.value.startswith(b'{"event_id": "broken') for r in records]
    now = [0.0]
    data = {roll: tmp_path / f"roll-{roll}" for roll in (0, 600)}

    async def go(roll: int) -> None:
        core = engine(data[roll], LakeSink(data[roll] / "data", roll_seconds=roll, clock=lambda: now[0]))
        for record in records:
            now[0] += 10
            await core.process([record])
            await core.commit()
            # Rows are visible or staged, never both, never neither.
            if record.offset % 97 == 0:
                visible = sum(pq.read_metadata(p).num_rows for p in visible_files(data[roll] / "data"))
                staged = sum(pq.read_metadata(p).num_rows for p in staged_files(data[roll] / "data"))
                assert visible + staged == sum(valid[: record.offset + 1])
                # ... and the report's reconciliation counts the staged ones too.
                outcome = query.reconcile(data[roll] / "data")
                assert outcome["agree"] and outcome["staged_total"] == staged, outcome
        assert (roll == 0) == (staged_files(data[roll] / "data") == [])
        await core.commit(publish=True)  # the partition is let go: everything is published
        await core.close(list(core.tasks))

    for roll in data:
        now[0] = 0.0
        asyncio.run(go(roll))
        event_ids, counts, _ = read_lake(data[roll] / "data")
        assert len(event_ids) == len(set(event_ids)) == sum(valid)
        assert +counts == oracle(records)
        assert staged_files(data[roll] / "data") == []
    every_commit = visible_files(data[0] / "data")
    rolled = visible_files(data[600] / "data")
    assert len(every_commit) == sum(valid)  # one event per commit, each in its own file
    commits_seconds = 600 * 10
    assert len(rolled) <= math.ceil(commits_seconds / 600) + 1, [p.name for p in rolled]
    # A published file is named by the commit that published it and all its rows' offsets.
    for path in rolled:
        offsets = pq.read_table(path).column("kafka_offset").to_pylist()
        assert offsets == sorted(offsets)  # staged rows in commit order, then the commit's
        first, last = path.name.removesuffix(".parquet").split("-o")[1].split("-")
        assert int(first) <= offsets[0] and offsets[-1] <= int(last)


CRASH_POINTS = ["intent", "file", "flushed", "stored", "finishing"]


def _each_crash_point_while_publishing(test):
    spec = [(n, n % 8, n * 3, n % 2) for n in range(100)]
    for point in CRASH_POINTS:
        steps = [(10, 0, None), (10, 2 * ROLL_SECONDS, point), (10, 5, None), (10, 2 * ROLL_SECONDS, None)]
        test = example(spec=spec, steps=steps)(test)
    return test


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    spec=schedules,
    steps=st.lists(
        st.tuples(
            st.integers(1, 40),  # records in the batch
            st.integers(0, 2 * int(ROLL_SECONDS)),  # wall-clock seconds before its commit
            st.sampled_from([None, None, *CRASH_POINTS]),  # where that commit dies
        ),
        min_size=1,
        max_size=12,
    ),
)
# Each crash point in a commit that publishes, with records staged before it and after it.
@_each_crash_point_while_publishing
def test_staged_lake_is_exact_after_crashes_anywhere_in_a_commit(tmp_path_factory, spec, steps):
    spec = sorted(spec, key=lambda item: item[2])
    records = make_records(spec)
    root = tmp_path_factory.mktemp("staged")
    data = root / "data"
    now = [0.0]
    crash_at: list[str | None] = [None]
    crashes: list[str] = []

    async def go() -> None:
        outputs = LocalOutputs()

        def new_engine():
            return engine(root, CrashingSink(data, lambda: now[0], crash_at), outputs)

        core = new_engine()
        delivered: list[SourceRecord] = []
        position = 0
        for size, seconds, point in steps:
            batch = records[position : position + size]
            position += len(batch)
            delivered += batch
            await core.process(batch)
            now[0] += seconds
            crash_at[0] = point
            try:
                await core.commit()
            except Crash:
                crashes.append(point)
                crash_at[0] = None
                await core.close(list(core.tasks))
                core = new_engine()
                await core.process(delivered)  # everything again, from the first offset
            crash_at[0] = None
        await core.process(records[position:])
        await core.commit(publish=True)
        await core.close(list(core.tasks))

    asyncio.run(go())
    expected = oracle(records)
    event_ids, counts, _ = read_lake(data)
    assert len(event_ids) == len(set(event_ids)) == sum(expected.values()), crashes
    assert +counts == expected, crashes
    assert staged_files(data) == []
    for partition in range(PARTITIONS):
        assert list((data / "_staging" / f"p{partition:03d}").glob("publish-*.json")) == [], crashes


def test_an_uncommitted_publication_is_undone_when_the_partition_opens(tmp_path):
    # A publication whose commit never happened: its visible files go, its staged files stay.
    data = tmp_path / "data"
    now = [0.0]
    crash_at: list[str | None] = [None]
    records = make_records([(n, 0, n, 0) for n in range(30)])
    valid_ids = {f"ev-{n}" for n in range(30) if n % 11 != 5}

    async def go() -> tuple[list[str], dict]:
        core = engine(tmp_path, CrashingSink(data, lambda: now[0], crash_at))
        await core.process(records[:10])
        await core.commit()  # staged
        await core.process(records[10:20])
        now[0] += ROLL_SECONDS
        crash_at[0] = "flushed"
        with pytest.raises(Crash):
            await core.commit()  # publishes, then dies before its commit point
        published = [p.name for p in visible_files(data)]
        intent = json.loads(next(data.glob("_staging/p000/publish-*.json")).read_bytes())
        await core.close(list(core.tasks))
        crash_at[0] = None
        again = engine(tmp_path, CrashingSink(data, lambda: now[0], crash_at))
        await again.open(0)
        assert visible_files(data) == []  # undone
        assert len(staged_files(data)) == len(intent["staged"]) > 0  # the committed, unpublished rows
        await again.process(records)
        await again.commit(publish=True)
        await again.close([0])
        return published, intent

    published, intent = asyncio.run(go())
    assert published  # the dead commit's files were visible until the partition opened
    assert intent["seq"] == 2 and all(path.startswith("events/") for path in intent["visible"])
    event_ids, counts, _ = read_lake(data)
    assert sorted(event_ids) == sorted(valid_ids)
    assert +counts == oracle(records)
