"""Run scenario traffic through the core in-process: no broker, no Faust.

The same ``Engine`` the worker runs, with local outputs instead of Kafka transactions.
Used by the benchmark (the core's own speed, i.e. the ceiling a worker could reach if
Kafka and Faust cost nothing) and by tests that check detection on the scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load_tests.scenario import Manifest, Scenario, ScenarioSpec
from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink


@dataclass
class BacktestResult:
    manifest: Manifest
    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    alerts: list[Any] = field(default_factory=list)  # alert_type.Alert
    records: int = 0
    seconds: float = 0.0


def scenario_records(spec: ScenarioSpec, partitions: int) -> tuple[list[SourceRecord], Manifest]:
    """The scenario as Kafka would hold it: partitioned by key, offsets per partition."""
    scenario = Scenario(spec)
    offsets: Counter[int] = Counter()
    records = []
    for record in scenario.records():
        partition = partition_for(record.key, partitions)
        timestamp_ms = round(record.arrival_ts * 1000)
        records.append(SourceRecord(partition, offsets[partition], timestamp_ms, record.key, record.value))
        offsets[partition] += 1
    return records, scenario.manifest


def backtest(
    spec: ScenarioSpec, root: Path, *, partitions: int = 4, batch: int = 5000, commit_every: int = 50_000
) -> BacktestResult:
    """Feed every record in arrival order in batches, committing every ``commit_every``."""
    records, manifest = scenario_records(spec, partitions)
    outputs = LocalOutputs()
    engine = Engine(
        EngineConfig(partitions, root / "state"), load_registry(), LakeSink(root / "data"), outputs
    )
    result = BacktestResult(manifest=manifest, records=len(records))
    counted = duplicates = 0

    async def run() -> None:
        nonlocal counted, duplicates
        since_commit = 0
        for start in range(0, len(records), batch):
            await engine.process(records[start : start + batch])
            since_commit += batch
            if since_commit >= commit_every:
                since_commit = 0
                for report in await engine.commit():
                    counted += sum(report.batch.metrics.processed.values())
                    duplicates += report.batch.metrics.duplicates
        for report in await engine.commit():
            counted += sum(report.batch.metrics.processed.values())
            duplicates += report.batch.metrics.duplicates
        await engine.close(list(engine.tasks))

    started = time.perf_counter()
    asyncio.run(run())
    result.seconds = time.perf_counter() - started
    result.outcomes.update(counted=counted, duplicate=duplicates, invalid=len(outputs.dead_letters))
    result.reasons.update(letter.reason for letter in outputs.dead_letters)
    result.alerts = outputs.alerts
    return result
