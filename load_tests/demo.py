"""``make demo``: the whole job end to end on the embedded broker.

Starts a fresh single-node Kafka, a worker, replays six weeks of scenario traffic
(including the Jibek Joly spring surge), waits until every message is handled, stops
the worker, prints the report and the alerts, checks them against the Kafka topics and the
lake (DuckLake, its catalog and files in the demo's data folder), and stops everything it
started.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter

from kafka import KafkaConsumer
from tqdm import tqdm

from load_tests.harness import WorkerProcess, scrape
from load_tests.scenario import Scenario, ScenarioSpec, replay, write_labels
from streams import query
from streams.ops import broker
from streams.ops.topics import ensure_topics
from streams.settings import PROJECT_ROOT, load_settings

DEMO_HOME = PROJECT_ROOT / ".local" / "demo"
KAFKA_PORT = int(os.environ.get("CROSSINGS_DEMO_KAFKA_PORT", "9192"))
WEB_PORT = int(os.environ.get("CROSSINGS_DEMO_WEB_PORT", "6066"))


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def read_topic(bootstrap: str, topic: str, expected: int | None = None, timeout_s: float = 20.0) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        group_id=None,
    )
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = list(consumer)
            messages += batch
            if not batch and (expected is None or len(messages) >= expected):
                break
    finally:
        consumer.close()
    return messages


def _backtest_matches(root, alert_messages: list) -> bool:
    """``crossings backtest`` on the lake raises the alerts the worker published."""
    from streams.backtest.lake import backtest_lake
    from streams.domain.registry import load_registry

    published = sorted(json.loads(m.value)["alert_id"] for m in alert_messages)
    return sorted(a.alert_id for a in backtest_lake(root, load_registry()).alerts) == published


def main() -> int:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        print("make demo runs on its own embedded broker; unset KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    started = time.monotonic()
    broker.down(DEMO_HOME / "kafka")  # a broker left by an interrupted demo must not outlive its data
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    env = {
        "CROSSINGS_HOME": str(DEMO_HOME),
        "CROSSINGS_KAFKA_PORT": str(KAFKA_PORT),
        "CROSSINGS_APP_ID": "crossings-demo",
        "CROSSINGS_COMMIT_INTERVAL": "5",
    }
    settings = load_settings(env)
    step(f"Kafka 4.1 (KRaft, single node) on {settings.bootstrap}, data in {settings.kafka_dir}")
    status = broker.up(settings.kafka_dir, KAFKA_PORT)
    print(status.detail)
    worker = WorkerProcess(env, WEB_PORT, DEMO_HOME / "worker.log")
    try:
        ensure_topics(settings)
        step(f"Worker (Faust), /metrics on http://127.0.0.1:{WEB_PORT}/metrics, log {worker.log_path}")
        worker.start()

        spec = ScenarioSpec()
        scenario = Scenario(spec)
        step(
            f"Replaying {spec.days} days of scenario traffic from {spec.start} "
            f"(14 checkpoints; labelled anomalies in {DEMO_HOME / 'labels.json'})"
        )
        stats = replay(scenario.records(), settings.bootstrap, settings.topics.events, progress=True)
        manifest = scenario.manifest
        write_labels(DEMO_HOME / "labels.json", spec, manifest)
        print(
            f"sent {stats.sent:,} records in {stats.seconds:.1f}s "
            f"({stats.rate_achieved:,.0f}/s): {stats.by_kind}"
        )

        step("Waiting for the worker to handle every message")
        interval = 0.1 if sys.stderr.isatty() else 10.0
        with tqdm(total=stats.sent, unit="msg", desc="worker", mininterval=interval) as bar:

            def progress(done: int) -> None:
                bar.update(done - bar.n)

            busy_seconds = worker.wait_handled(stats.sent, timeout=900, on_progress=progress)
        totals = scrape(worker.metrics_url)
        worker_rate = stats.sent / busy_seconds if busy_seconds else float("nan")
        step("Stopping the worker (its last commit reaches the lake before it exits)")
        worker.stop()

        root = settings.data_dir
        step(f"Report (DuckDB over the lake in {root})")
        surge = next(a for a in spec.anomalies if a.checkpoint_id == "zhibek-zholy")
        print(
            query.report_main(root, "daily", "table", "zhibek-zholy", str(surge.starts.replace(day=1)), None)
        )
        print(query.report_main(root, "nationality", "table", "zhibek-zholy", None, None))
        alerts = query.alerts(root)
        # Summaries wrap to the terminal (or 120 columns in a log).
        width = shutil.get_terminal_size((120, 24)).columns
        print(query.report_main(root, "alerts", "table", None, None, None, width))

        step("Checks")
        reconciled = query.reconcile(root)
        events_in_lake = query.events_count(root)
        alert_messages = read_topic(settings.bootstrap, settings.topics.alerts, expected=len(alerts))
        dead_letters = read_topic(
            settings.bootstrap, settings.topics.dead_letter, expected=manifest.sent["invalid"]
        )
        reasons = Counter(dict(m.headers).get("crossings.dlq.reason", b"?").decode() for m in dead_letters)
        checks = {
            "report totals == DuckDB count(*) over the lake's events": (
                reconciled["counted_total"] == events_in_lake and reconciled["agree"]
            ),
            "lake events == sent - invalid - duplicates": (
                events_in_lake == stats.sent - manifest.sent["invalid"] - manifest.sent["duplicate"]
            ),
            "dead-letter topic holds every invalid message": len(dead_letters) == manifest.sent["invalid"],
            "alerts topic == alerts in the lake": len(alert_messages) == len(alerts),
            "crossings backtest of the lake == the alerts topic": _backtest_matches(root, alert_messages),
        }
        print(
            f"daily counts total {reconciled['counted_total']:,}; "
            f"DuckDB count(*) over events {events_in_lake:,}"
        )
        print(
            f"sent {stats.sent:,} = {events_in_lake:,} counted "
            f"+ {manifest.sent['duplicate']:,} duplicates "
            f"+ {manifest.sent['invalid']:,} invalid"
        )
        print(f"dead letters by reason: {dict(reasons)}")
        for name, ok in checks.items():
            print(f"  [{'ok' if ok else 'FAIL'}] {name}")

        step("Jibek Joly")
        jj = [a for a in alerts if a["checkpoint_id"] == "zhibek-zholy" and a["kind"] == "surge"]
        opened = next((a for a in jj if a["window"] != "full_day"), None)
        days = [a for a in jj if a["window"] == "full_day"]
        if opened:
            print(f"raised {opened['as_of']:%Y-%m-%d %H:%M} UTC: {opened['summary']}")
        if days:
            peak = max(days, key=lambda a: a["observed"] - a["expected"])
            print(f"peak day: {peak['summary']}")
        worker_summary = {
            "records_sent": stats.sent,
            "replay_seconds": round(stats.seconds, 1),
            "worker_busy_seconds": round(busy_seconds, 1),
            "worker_events_per_second": round(worker_rate),
            "alerts_raised": int(totals.get("crossings_alerts_raised_total", 0)),
            "alert_messages": len(alert_messages),
            "demo_seconds": round(time.monotonic() - started),
        }
        step("Throughput")
        print(json.dumps(worker_summary, indent=2))
        (DEMO_HOME / "summary.json").write_text(json.dumps(worker_summary, indent=2))
        print(f"\nHistory stays in {root}; query it with: crossings report --data {root}")
        return 0 if all(checks.values()) and opened else 1
    finally:
        worker.stop()
        step("Stopping the embedded broker")
        print(broker.down(settings.kafka_dir).detail)


if __name__ == "__main__":
    sys.exit(main())
