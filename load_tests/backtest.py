"""Run scenario traffic through the pipeline in-process: no broker, no Faust.

The same ``Pipeline`` the worker runs, with dicts for tables. Used by the unit tests
(correctness against the scenario's ground truth) and the benchmark (the domain code's
own speed, i.e. the ceiling a worker could reach if Kafka and Faust cost nothing).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zlib import crc32

from load_tests.scenario import Manifest, Scenario, ScenarioSpec
from streams.metrics import WorkerMetrics
from streams.parquet_sink import ParquetSink
from streams.pipeline import Pipeline, PipelineTables


@dataclass
class BacktestResult:
    manifest: Manifest
    tables: PipelineTables
    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0


def backtest(
    spec: ScenarioSpec,
    root: Path,
    *,
    partitions: int = 1,
    tick_every: int = 500,
    flush_every: int = 20_000,
) -> BacktestResult:
    """Feed every record in arrival order; ``tick_every`` stands in for the worker's 1 s timer
    and ``flush_every`` for its commits. Partitions follow the key's hash like Kafka's."""
    scenario = Scenario(spec)
    tables = PipelineTables(profiles={}, seen={}, detector_state={})
    pipeline = Pipeline(tables, ParquetSink(root, "backtest"), WorkerMetrics())
    result = BacktestResult(manifest=None, tables=tables)  # type: ignore[arg-type]
    started = time.perf_counter()
    for offset, record in enumerate(scenario.records()):
        partition = crc32(record.key) % partitions
        outcome = pipeline.process(
            record.value, partition=partition, offset=offset, append_ts=record.arrival_ts
        )
        result.outcomes[outcome.status] += 1
        if outcome.error:
            result.reasons[outcome.error.reason] += 1
        result.alerts += outcome.alerts
        if offset % tick_every == 0:
            result.alerts += pipeline.tick()
        if offset % flush_every == 0:
            pipeline.flush()
        result.records += 1
    pipeline.flush()
    result.seconds = time.perf_counter() - started
    result.manifest = scenario.manifest
    return result
