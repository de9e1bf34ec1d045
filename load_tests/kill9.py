"""Kill -9 the worker while traffic flows, then compare the lake with an oracle.

    python -m load_tests.kill9 [--days 42] [--kills 5] [--workers 1|2] [--rate 4000] [--seed 7]

Produces scenario traffic (valid, late, re-sent duplicates and invalid messages) at a
steady rate in the background while SIGKILLing a worker at random moments and starting
it again; with ``--workers 2`` two workers share the partitions and one of them is killed
each time. After the last message it waits until the consumer group has committed every
offset, stops the workers and checks, from what was sent:

- the ``events/`` rows are exactly the unique valid events, no ``event_id`` twice;
- the sum of ``daily_counts`` per checkpoint and local day equals the oracle;

and prints a JSON summary. Exit status 1 on any mismatch. Without ``--bootstrap`` it
starts its own broker under ``.local/kill9``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from load_tests.harness import WorkerProcess, free_port, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams import broker
from streams.domain.registry import load_registry
from streams.settings import PROJECT_ROOT, load_settings
from streams.topics import ensure_topics

HOME = PROJECT_ROOT / ".local" / "kill9"
PORT = 9492


@dataclass
class Outcome:
    sent: int
    unique_events: int
    kills: int
    event_rows: int
    distinct_event_ids: int
    day_mismatches: dict[str, tuple[int, int]]
    seconds: float

    @property
    def exact(self) -> bool:
        return self.event_rows == self.distinct_event_ids == self.unique_events and not self.day_mismatches


def oracle(records: list) -> tuple[int, Counter]:
    """Unique valid events, and their count per (checkpoint, local day)."""
    registry = load_registry()
    seen: set[str] = set()
    per_day: Counter = Counter()
    for record in records:
        if record.kind not in ("valid", "late"):
            continue
        payload = json.loads(record.value)
        if payload["event_id"] in seen:
            continue
        seen.add(payload["event_id"])
        occurred = datetime.fromisoformat(payload["occurred_at"])
        day = occurred.astimezone(registry[payload["checkpoint_id"]].tz).date()
        per_day[(payload["checkpoint_id"], day)] += 1
    return len(seen), per_day


def lake(data_dir: Path) -> tuple[int, int, Counter]:
    scan = "read_parquet('{}/{}/*/*/*.parquet', hive_partitioning = true, hive_types = {{'date': DATE}})"
    rows, distinct = duckdb.sql(
        f"SELECT count(*), count(DISTINCT event_id) FROM {scan.format(data_dir, 'events')}"
    ).fetchall()[0]
    per_day = Counter(
        {
            (checkpoint, day): int(total)
            for checkpoint, day, total in duckdb.sql(
                f"SELECT checkpoint, date, sum(count) FROM {scan.format(data_dir, 'daily_counts')} "
                "GROUP BY ALL"
            ).fetchall()
        }
    )
    return rows, distinct, per_day


def run(
    bootstrap: str,
    home: Path,
    *,
    spec: ScenarioSpec,
    kills: int,
    workers: int = 1,
    rate: float = 4000.0,
    seed: int = 7,
) -> Outcome:
    started = time.monotonic()
    namespace = f"kill9-{free_port()}"
    env = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
    }
    settings = load_settings(env)
    ensure_topics(settings)
    # Each worker its own state folder, as on separate machines.
    pool = [
        WorkerProcess(
            {**env, "CROSSINGS_HOME": str(home / f"w{n}"), "CROSSINGS_DATA_DIR": str(settings.data_dir)},
            free_port(),
            home / f"worker-{n}.log",
        )
        for n in range(workers)
    ]
    for worker in pool:
        worker.start()
    records = list(Scenario(spec).records())
    producing = threading.Thread(
        target=replay,
        args=(records, bootstrap, settings.topics.events),
        kwargs={"rate": rate, "progress": False},
    )
    producing.start()
    rng = random.Random(seed)
    expected_seconds = len(records) / rate
    moments = sorted(rng.uniform(0.1, 0.9) * expected_seconds for _ in range(kills))
    for moment in moments:
        time.sleep(max(0.0, moment - (time.monotonic() - started)))
        victim = rng.choice(pool)
        assert victim.process is not None
        victim.process.kill()  # SIGKILL: no flush, no commit, no goodbye
        victim.process.wait()
        victim.start()
    producing.join()
    wait_committed(bootstrap, settings.app_id, settings.topics.events, timeout=600)
    for worker in pool:
        worker.stop()
    unique, expected_days = oracle(records)
    rows, distinct, per_day = lake(settings.data_dir)
    mismatches = {
        f"{checkpoint} {day}": (per_day.get((checkpoint, day), 0), expected_days.get((checkpoint, day), 0))
        for checkpoint, day in set(per_day) | set(expected_days)
        if per_day.get((checkpoint, day), 0) != expected_days.get((checkpoint, day), 0)
    }
    return Outcome(len(records), unique, kills, rows, distinct, mismatches, time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=4000.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args()
    shutil.rmtree(HOME, ignore_errors=True)
    bootstrap = args.bootstrap
    if bootstrap is None:
        bootstrap = broker.up(HOME / "kafka", PORT).bootstrap
    try:
        outcome = run(
            bootstrap,
            HOME / "run",
            spec=ScenarioSpec(days=args.days),
            kills=args.kills,
            workers=args.workers,
            rate=args.rate,
            seed=args.seed,
        )
    finally:
        if args.bootstrap is None:
            broker.down(HOME / "kafka")
    summary = {**outcome.__dict__, "exact": outcome.exact, "day_mismatches": len(outcome.day_mismatches)}
    print(json.dumps(summary, indent=2, default=str))
    return 0 if outcome.exact else 1


if __name__ == "__main__":
    sys.exit(main())
