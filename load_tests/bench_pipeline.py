"""Benchmark: the domain pipeline in-process, on the default six-week scenario.

    python -m load_tests.bench_pipeline [--days 42] [--partitions 4]

Measures decode + validate + dedup + count + detect + Parquet for every record, without
Kafka or Faust. Compare with the worker's end-to-end rate that ``make demo`` prints
(and writes to .local/demo/summary.json): the gap is the framework and broker cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import tempfile
from pathlib import Path

from load_tests.backtest import backtest
from load_tests.scenario import ScenarioSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("streams.core.processor").setLevel(logging.ERROR)  # alert log lines are not the point
    with tempfile.TemporaryDirectory() as tmp:
        result = backtest(ScenarioSpec(days=args.days), Path(tmp), partitions=args.partitions)
        parquet_bytes = sum(p.stat().st_size for p in (Path(tmp) / "data").rglob("*.parquet"))
    summary = {
        "records": result.records,
        "seconds": round(result.seconds, 2),
        "records_per_second": round(result.records / result.seconds),
        "counted": result.outcomes["counted"],
        "alert_messages": len(result.alerts),
        "parquet_mib": round(parquet_bytes / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
