"""``crossings replay``: the worker's core without Faust, for backfills and catch-up.

Writes the same lake (events, daily counts, alerts) as the worker would for the same
records, into its own state folder; dead letters go to ``<data>/dead_letters.ndjson``
(original value as text, reason, source position).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.core.engine import Engine, EngineConfig
from streams.core.processor import CoreConfig
from streams.core.records import SourceRecord
from streams.domain.registry import Registry, load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

COMMIT_EVERY = 100_000


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


async def replay(
    batches: AsyncIterator[list[SourceRecord]] | Iterable[list[SourceRecord]],
    *,
    partitions: int,
    data_dir: Path,
    state_dir: Path,
    core: CoreConfig = CoreConfig(),
    registry: Registry | None = None,
) -> ReplayStats:
    outputs = LocalOutputs()
    config = EngineConfig(partitions, state_dir, core=core)
    engine = Engine(config, registry or load_registry(), LakeSink(data_dir), outputs)
    records = counted = duplicates = since_commit = 0
    started = time.perf_counter()

    async def commit() -> None:
        nonlocal counted, duplicates
        for report in await engine.commit():
            counted += sum(report.batch.metrics.processed.values())
            duplicates += report.batch.metrics.duplicates

    async def each(batch: list[SourceRecord]) -> None:
        nonlocal records, since_commit
        await engine.process(batch)
        records += len(batch)
        since_commit += len(batch)
        if since_commit >= COMMIT_EVERY:
            since_commit = 0
            await commit()

    if hasattr(batches, "__aiter__"):
        async for batch in batches:  # type: ignore[union-attr]
            await each(batch)
    else:
        for batch in batches:  # type: ignore[union-attr]
            await each(batch)
    await commit()
    await engine.close(list(engine.tasks))
    seconds = time.perf_counter() - started
    if outputs.dead_letters:
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(data_dir / "dead_letters.ndjson", "a", encoding="utf-8") as out:
            for letter in outputs.dead_letters:
                value = letter.value.decode("utf-8", "replace") if letter.value is not None else None
                line = {"partition": letter.partition, "offset": letter.offset, "reason": letter.reason}
                out.write(json.dumps({**line, "detail": letter.detail, "value": value}) + "\n")
    return ReplayStats(records, counted, duplicates, len(outputs.dead_letters), len(outputs.alerts), seconds)
