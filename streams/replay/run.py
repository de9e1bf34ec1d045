"""``crossings replay``: the worker's core without Faust, for backfills and catch-up.

Writes the same lake (events, daily counts, alerts) as the worker would for the same
records, into its own state folder; dead letters go to ``<data>/dead_letters.ndjson``
(original value as text, reason, source position).

A partition commits after every ``COMMIT_EVERY`` of its own records, exactly: batches are
cut at that record. Commit points then depend neither on how the source cut its batches
nor on which other partitions share the process, so a replay split across jobs
(``streams.replay.jobs``) writes the same files, byte for byte, as one process.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.core.effects import DeadLetter
from streams.core.engine import Engine, EngineConfig
from streams.core.processor import CoreConfig
from streams.core.records import SourceRecord
from streams.domain.registry import Registry, load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

#: Records of one partition per commit (and per set of Parquet files it writes).
COMMIT_EVERY = 25_000
DEAD_LETTERS_FILE = "dead_letters.ndjson"


@dataclass(frozen=True)
class ReplayStats:
    records: int
    counted: int
    duplicates: int
    dead_letters: int
    alerts: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class DeadLetterLine:
    """One line of ``dead_letters.ndjson`` with its source position, to sort by: plain
    data, so a replay job in another process can hand it back."""

    partition: int
    offset: int
    text: str


async def replay(
    batches: AsyncIterator[list[SourceRecord]] | Iterable[list[SourceRecord]],
    *,
    partitions: int,
    data_dir: Path,
    state_dir: Path,
    core: CoreConfig = CoreConfig(),
    registry: Registry | None = None,
    commit_every: int = COMMIT_EVERY,
) -> ReplayStats:
    """Replay ``batches`` and append their dead letters to ``<data_dir>/dead_letters.ndjson``."""
    stats, letters = await replay_collecting(
        batches,
        partitions=partitions,
        data_dir=data_dir,
        state_dir=state_dir,
        core=core,
        registry=registry,
        commit_every=commit_every,
    )
    append_dead_letters(data_dir, letters)
    return stats


async def replay_collecting(
    batches: AsyncIterator[list[SourceRecord]] | Iterable[list[SourceRecord]],
    *,
    partitions: int,
    data_dir: Path,
    state_dir: Path,
    core: CoreConfig = CoreConfig(),
    registry: Registry | None = None,
    commit_every: int = COMMIT_EVERY,
) -> tuple[ReplayStats, list[DeadLetterLine]]:
    """Replay ``batches``, committing each partition after every ``commit_every`` of its
    records; the dead letters are returned (in partition, offset order) for the caller to
    write, not written."""
    config = EngineConfig(partitions, state_dir, core=core)
    engine = Engine(config, registry or load_registry(), LakeSink(data_dir), LocalOutputs())
    records = counted = duplicates = alerts = 0
    dead_letters: list[DeadLetter] = []
    pending: Counter[int] = Counter()
    started = time.perf_counter()

    async def commit(partitions: list[int] | None = None) -> None:
        # Made durable behind: a partition's files and store are written while the next
        # records are processed (the Parquet encoding runs without the GIL).
        nonlocal counted, duplicates, alerts
        for report in await engine.commit(partitions, behind=True):
            counted += sum(report.batch.metrics.processed.values())
            duplicates += report.batch.metrics.duplicates
            dead_letters.extend(report.batch.dead_letters)
            alerts += len(report.batch.alerts)

    async def each(batch: list[SourceRecord]) -> None:
        nonlocal records
        records += len(batch)
        for partition, own in _by_partition(batch).items():
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
    seconds = time.perf_counter() - started
    letters = sorted(map(dead_letter_line, dead_letters), key=sort_key)
    stats = ReplayStats(records, counted, duplicates, len(dead_letters), alerts, seconds)
    return stats, letters


def _by_partition(batch: Sequence[SourceRecord]) -> dict[int, list[SourceRecord]]:
    by_partition: dict[int, list[SourceRecord]] = {}
    for record in batch:
        by_partition.setdefault(record.partition, []).append(record)
    return by_partition


def sort_key(line: DeadLetterLine) -> tuple[int, int, str]:
    """Source position: the order a file of several jobs' dead letters is written in."""
    return line.partition, line.offset, line.text


def dead_letter_line(letter: DeadLetter) -> DeadLetterLine:
    value = letter.value.decode("utf-8", "replace") if letter.value is not None else None
    line = {"partition": letter.partition, "offset": letter.offset, "reason": letter.reason}
    text = json.dumps({**line, "detail": letter.detail, "value": value})
    return DeadLetterLine(letter.partition, letter.offset, text)


def append_dead_letters(data_dir: Path, letters: Iterable[DeadLetterLine]) -> None:
    """Append the lines in one write, under an exclusive ``flock``: replays sharing a data
    folder (several runs, or jobs writing their own) never interleave their lines."""
    text = "".join(letter.text + "\n" for letter in letters)
    if not text:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / DEAD_LETTERS_FILE, "a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        try:
            out.write(text)
            out.flush()
        finally:
            fcntl.flock(out, fcntl.LOCK_UN)
