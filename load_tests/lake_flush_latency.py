"""The lake sinks' flush latency on the same batches, interleaved: Parquet (a live worker's,
rows staged for an hour) against DuckLake (SQLite catalog under a temporary folder).

    python -m load_tests.lake_flush_latency [--commits 30] [--inline-rows 1000]

One partition's commit of 500 rows (a live worker) and of 7,500 (a busy one), spread over
four checkpoints of one day with their daily-count snapshots; prints p50 and p90 per sink.
The sink alone: no Kafka, no state (``make perf`` measures the worker's whole commit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from streams.core.effects import CommitBatch, DailySnapshot, EventColumns, MetricDeltas
from streams.settings.lake import LakeConfig
from streams.sinks.ducklake.sink import DuckLakeSink
from streams.sinks.parquet.sink import LakeSink

CHECKPOINTS = ("dostyk", "khorgos", "korday", "zhibek-zholy")
DAY = date(2024, 3, 1)


def batch(seq: int, rows: int) -> CommitBatch:
    events = {}
    for c, checkpoint in enumerate(CHECKPOINTS):
        columns = EventColumns()
        for i in range(rows // len(CHECKPOINTS)):
            columns.event_id.append(f"e{seq}-{c}-{i}")
            columns.direction.append("entry")
            columns.occurred_at_us.append(1_709_251_200_000_000 + i)
            columns.local_hour.append(3)
            columns.nationality.append("KAZ")
            columns.purpose.append("work")
            columns.mode.append("car")
            columns.outcome.append("ok")
            columns.kafka_partition.append(0)
            columns.kafka_offset.append(seq * rows + c * rows // len(CHECKPOINTS) + i)
            columns.kafka_timestamp_ms.append(1_709_251_200_000)
        events[(DAY, checkpoint)] = columns
    snapshots = [
        DailySnapshot(checkpoint, DAY, [("entry", f"N{k}", "work", k + seq) for k in range(60)], 1.7e9)
        for checkpoint in CHECKPOINTS
    ]
    first, last = seq * rows, seq * rows + rows - 1
    return CommitBatch(0, seq, first, last, events, [], snapshots, [], [], MetricDeltas(), [], [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=30)
    parser.add_argument("--inline-rows", type=int, default=1000, help="CROSSINGS_LAKE_INLINE_ROWS")
    args = parser.parse_args(argv)
    for rows in (500, 7500):
        with tempfile.TemporaryDirectory(prefix="crossings-flush-") as scratch:
            root = Path(scratch)
            parquet = LakeSink(root / "parquet", roll_seconds=3600)
            ducklake = DuckLakeSink.from_config(
                LakeConfig("ducklake", inline_rows=args.inline_rows), root / "duck"
            )
            sinks = {"parquet": parquet, "ducklake": ducklake}
            times: dict[str, list[float]] = {name: [] for name in sinks}
            for sink in sinks.values():
                sink.open_partition(0, 0)
            for seq in range(1, args.commits + 1):
                for name, sink in sinks.items():
                    commit = batch(seq, rows)
                    commit.publish = sink.publish_due(0, rows)
                    started = time.perf_counter()
                    sink.flush(commit)
                    times[name].append(time.perf_counter() - started)
                    sink.committed(0, seq)
            ducklake.close()
        for name, seconds in times.items():
            seconds.sort()
            p50, p90 = seconds[len(seconds) // 2], seconds[int(len(seconds) * 0.9)]
            print(f"{rows:>5} rows a commit  {name:8s}  p50 {p50 * 1000:5.0f} ms  p90 {p90 * 1000:5.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
