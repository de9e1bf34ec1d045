"""``crossings replay``: the worker's core without Faust, for backfills and catch-up.

Writes the same lake (events, daily counts, alerts) as the worker would for the same
records, into its own state folder. Dead letters go to ``<data>/dead_letters/``, a
Parquet file per partition commit (original key and value bytes, reason, detail, source
position), written in the commit like the rest: a replay that fails or is killed and is
run again writes each exactly once.

A partition commits after every ``COMMIT_EVERY`` of its own records, exactly: batches are
cut at that record. Commit points then depend neither on how the source cut its batches
nor on which other partitions share the process, so a replay split across jobs
(``streams.replay.jobs``) writes the same files, byte for byte, as one process.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from streams.core.engine import Engine, EngineConfig
from streams.core.processor import CoreConfig
from streams.core.records import SourceRecord
from streams.domain.registry import Registry, load_registry
from streams.replay.outputs import LocalOutputs
from streams.settings.lake import LakeConfig
from streams.sinks.parquet.layout import DEAD_LETTERS
from streams.sinks.select import lake_sink

#: The default lake: Parquet folders under the data folder.
PARQUET = LakeConfig(format="parquet")
#: Records of one partition per commit (and per set of Parquet files it writes).
COMMIT_EVERY = 25_000


@dataclass(frozen=True)
class ReplayStats:
    records: int
    counted: int
    duplicates: int
    dead_letters: int
    alerts: int
    seconds: float
    #: Records the state had applied before (at or below its offset): skipped, not written.
    already_applied: int = 0

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def replay(
    batches: AsyncIterator[list[SourceRecord]] | Iterable[list[SourceRecord]],
    *,
    partitions: int,
    data_dir: Path,
    state_dir: Path,
    core: CoreConfig = CoreConfig(),
    registry: Registry | None = None,
    commit_every: int = COMMIT_EVERY,
    lake: LakeConfig = PARQUET,
) -> ReplayStats:
    """Replay ``batches``, committing each partition after every ``commit_every`` of its
    records (its events, alerts, daily counts and dead letters, then its state) to the
    lake ``lake`` names (the Parquet lake under ``data_dir`` by default)."""
    config = EngineConfig(partitions, state_dir, core=core)
    sink = lake_sink(lake, data_dir, dead_letters=True)
    engine = Engine(config, registry or load_registry(), sink, LocalOutputs())
    records = counted = duplicates = alerts = dead_letters = already_applied = 0
    pending: Counter[int] = Counter()
    started = time.perf_counter()

    async def commit(partitions: list[int] | None = None) -> None:
        # Made durable behind: a partition's files and store are written while the next
        # records are processed (the Parquet encoding runs without the GIL).
        nonlocal counted, duplicates, alerts, dead_letters
        for report in await engine.commit(partitions, behind=True):
            counted += sum(report.batch.metrics.processed.values())
            duplicates += report.batch.metrics.duplicates
            dead_letters += len(report.batch.dead_letters)
            alerts += len(report.batch.alerts)

    async def each(batch: list[SourceRecord]) -> None:
        nonlocal records, already_applied
        records += len(batch)
        for partition, own in _by_partition(batch).items():
            task = engine.tasks.get(partition) or await engine.open(partition)
            assert task.processor is not None
            applied = task.processor.state.applied_offset
            if own[0].offset <= applied:  # a rerun: what its state applied is skipped
                already_applied += sum(1 for record in own if record.offset <= applied)
            while own:
                room = commit_every - pending[partition]
                head, own = own[:room], own[room:]
                await engine.process(head)
                pending[partition] += len(head)
                if pending[partition] >= commit_every:
                    pending[partition] = 0
                    await commit([partition])

    try:
        if hasattr(batches, "__aiter__"):
            async for batch in batches:  # type: ignore[union-attr]
                await each(batch)
        else:
            for batch in batches:  # type: ignore[union-attr]
                await each(batch)
        await commit()
        await engine.settle()
    finally:
        await engine.close(list(engine.tasks))
        close = getattr(sink, "close", None)
        if close is not None:
            close()
    seconds = time.perf_counter() - started
    return ReplayStats(records, counted, duplicates, dead_letters, alerts, seconds, already_applied)


def _by_partition(batch: Sequence[SourceRecord]) -> dict[int, list[SourceRecord]]:
    by_partition: dict[int, list[SourceRecord]] = {}
    for record in batch:
        by_partition.setdefault(record.partition, []).append(record)
    return by_partition


def read_dead_letters(data_dir: Path, lake: LakeConfig = PARQUET) -> list[dict[str, Any]]:
    """A replay's dead letters (``<data_dir>/dead_letters/*.parquet``, or DuckLake's
    ``dead_letters`` table) in source order."""
    if lake.is_ducklake:
        from streams.sinks.ducklake.read import read_table

        rows = read_table(lake, data_dir, DEAD_LETTERS, exclude=("commit_seq",))
    else:
        files = sorted((Path(data_dir) / DEAD_LETTERS).glob("*.parquet"))
        rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda row: (row["kafka_partition"], row["kafka_offset"]))
