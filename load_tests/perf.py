"""``make perf``: the worker, a bare Faust agent and the replay, on one topic, in one run.

    python -m load_tests.perf [--days 42] [--partitions 4] [--lake parquet --lake ducklake]

Starts its own broker, writes the scenario's valid events to a fresh topic once, then
lets three consumers read all of it from the beginning, one after the other:

- a bare Faust agent that only decodes and counts in a dict (the ceiling for any Faust agent);
- ``crossings worker`` with everything on (validation, dedup, counts, detection, Parquet,
  metrics, transactions), timed from its first record to its last committed offset;
- ``crossings replay`` over the same topic (the core without Faust), with ``--jobs 1``,
  then with its default jobs (partitions split across processes).

Prints their events/s and the worker's ratio to the bare agent, and writes them to
``.local/perf/summary.json``. The machine is shared and noisy: read the ratios.
With several ``--lake`` (``CROSSINGS_LAKE`` values), the worker and the one-job replay
run once per lake, one after the other, each with its own consumer group, state and lake:
their rates and commit latencies side by side (``lakes`` in the summary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time

from load_tests.harness import WorkerProcess, free_port, scrape_text, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams.ops import broker
from streams.ops.topics import ensure_topics
from streams.replay.jobs import default_jobs
from streams.settings import PROJECT_ROOT, load_settings

HOME = PROJECT_ROOT / ".local" / "perf"
PORT = int(os.environ.get("CROSSINGS_PERF_KAFKA_PORT", "9292"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--lake",
        action="append",
        default=None,
        help="CROSSINGS_LAKE of the worker and the replay (repeat to compare; default: ducklake, "
        "the product's default)",
    )
    args = parser.parse_args()
    lakes = args.lake or ["ducklake"]
    broker.down(HOME / "kafka")
    shutil.rmtree(HOME, ignore_errors=True)
    env = {
        "CROSSINGS_HOME": str(HOME),
        "CROSSINGS_KAFKA_PORT": str(PORT),
        "CROSSINGS_APP_ID": "perf-worker",
        "CROSSINGS_TOPIC_NAMESPACE": "perf",
        "CROSSINGS_PARTITIONS": str(args.partitions),
        "CROSSINGS_LAKE": lakes[0],
    }
    settings = load_settings(env)
    broker.up(settings.kafka_dir, PORT)
    try:
        ensure_topics(settings)
        valid = [r for r in Scenario(ScenarioSpec(days=args.days)).records() if r.kind in ("valid", "late")]
        sent = replay(valid, settings.bootstrap, settings.topics.events).sent
        print(
            f"topic {settings.topics.events}: {sent:,} valid events on {args.partitions} partitions",
            flush=True,
        )

        out = HOME / "bare.json"
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "load_tests.bare_faust_agent",
                settings.bootstrap,
                settings.topics.events,
                str(sent),
                str(out),
            ],
            check=True,
            timeout=1800,
            stdout=subprocess.DEVNULL,
        )
        bare = json.loads(out.read_text())
        bare_rate = sent / bare["seconds"]
        print(
            f"bare Faust agent: {bare_rate:,.0f} events/s ({time.monotonic() - started:.0f}s with start-up)"
        )

        by_lake = {}
        for lake in lakes:
            name = lake.split(":", 1)[0]
            lake_env = env
            if len(lakes) > 1:  # each its own group, state and lake on the same topic
                lake_env = {
                    **env,
                    "KAFKA_BOOTSTRAP": settings.bootstrap,
                    "CROSSINGS_HOME": str(HOME / f"lake-{name}"),
                    "CROSSINGS_APP_ID": f"perf-worker-{name}",
                    "CROSSINGS_LAKE": lake,
                }
            app_id = lake_env["CROSSINGS_APP_ID"]
            worker = WorkerProcess(lake_env, free_port(), HOME / f"worker-{name}.log")
            worker.start()
            began = time.monotonic()
            wait_committed(settings.bootstrap, app_id, settings.topics.events, timeout=1800)
            worker_seconds = time.monotonic() - began
            commits = commit_latency(scrape_text(worker.metrics_url))
            worker.stop()
            worker_rate = sent / worker_seconds
            print(
                f"crossings worker ({lake}): {worker_rate:,.0f} events/s "
                f"(start to last commit, {worker_seconds:.1f}s)"
            )
            print(
                f"  its commits: {commits['count']}, p50 {commits['p50_s'] * 1000:.0f} ms, "
                f"p99 {commits['p99_s'] * 1000:.0f} ms (one partition's commit, from its histogram)"
            )
            # The replay as a user runs it: its own process, like the other two consumers.
            one_job = _replay_rate(lake_env, settings.topics.events, f"one-job-{name}", ["--jobs", "1"])
            by_lake[lake] = {
                "worker_per_s": round(worker_rate),
                "worker_vs_bare_agent": round(worker_rate / bare_rate, 2),
                "worker_commits": commits,
                "replay_one_job_per_s": round(one_job),
            }
        # With the default jobs (partitions split across processes), on the first lake.
        first = by_lake[lakes[0]]
        worker_rate, commits, one_job_rate = (
            first["worker_per_s"],
            first["worker_commits"],
            first["replay_one_job_per_s"],
        )
        replay_rate = _replay_rate(env, settings.topics.events, "default-jobs", [])
        jobs = default_jobs(args.partitions)
        summary = {
            "events": sent,
            "partitions": args.partitions,
            "bare_faust_agent_per_s": round(bare_rate),
            "worker_per_s": round(worker_rate),
            "worker_vs_bare_agent": round(worker_rate / bare_rate, 2),
            "worker_commits": commits,
            "replay_per_s": round(replay_rate),
            "replay_jobs": jobs,
            "replay_one_job_per_s": round(one_job_rate),
            # The largest of the consumers' processes (bare agent, worker, replay jobs).
            "max_rss_mib_of_consumers": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "python": platform.python_version(),
            **({"lakes": by_lake} if len(lakes) > 1 else {}),
        }
        print(json.dumps(summary, indent=2))
        (HOME / "summary.json").write_text(json.dumps(summary, indent=2))
        return 0
    finally:
        print(broker.down(settings.kafka_dir).detail)


def commit_latency(exposition: str) -> dict[str, float]:
    """Count, p50 and p99 of ``crossings_commit_seconds`` from a worker's /metrics text
    (linear within the histogram's bucket, as Prometheus' histogram_quantile)."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(exposition):
        if family.name == "crossings_commit_seconds":
            buckets = sorted(
                (float(sample.labels["le"]), sample.value)
                for sample in family.samples
                if sample.name.endswith("_bucket")
            )
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float:
        rank, lower, below = q * total, 0.0, 0.0
        for upper, cumulative in buckets:
            if cumulative >= rank and cumulative > below:
                if upper == float("inf"):
                    return lower
                return lower + (upper - lower) * (rank - below) / (cumulative - below)
            lower, below = upper, cumulative
        return lower

    return {"count": int(total), "p50_s": round(quantile(0.5), 4), "p99_s": round(quantile(0.99), 4)}


def _replay_rate(env: dict[str, str], topic: str, name: str, args: list[str]) -> float:
    """Run ``crossings replay`` over ``topic`` into its own lake and state; print and
    return its events/s, from the line it prints."""
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "replay",
            "--topic",
            topic,
            "--data",
            str(HOME / f"replay-{name}" / "data"),
            "--state",
            str(HOME / f"replay-{name}" / "state"),
            *args,
        ],
        env={**os.environ, **env},
        check=True,
        timeout=1800,
        capture_output=True,
        text=True,
    ).stdout
    found = re.search(r"replayed ([\d,]+) records in ([\d.]+)s", replayed)
    if found is None:
        raise RuntimeError(f"no rate in the replay's output: {replayed[-500:]!r}")
    rate = int(found[1].replace(",", "")) / float(found[2])
    label = " ".join(args) or f"(default: --jobs {default_jobs(int(env['CROSSINGS_PARTITIONS']))})"
    print(f"crossings replay {label}: {rate:,.0f} events/s ({found[2]}s)")
    return rate


if __name__ == "__main__":
    sys.exit(main())
