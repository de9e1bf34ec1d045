"""Run a real ``crossings worker`` process and watch it through its /metrics endpoint.

Shared by the demo, the integration tests and the benchmarks, so all three observe the
worker the way an operator's Prometheus would, not through its internals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

HANDLED = (
    "crossings_events_processed_total",
    "crossings_events_duplicate_total",
    "crossings_events_invalid_total",
)


def free_port() -> int:
    """A port nobody listens on right now (for test and demo web servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Sample name -> value summed over labels (enough for totals)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def committed_lag(consumer: KafkaConsumer, topic: str) -> int:
    """Messages of ``topic`` past the offsets of ``consumer``'s group committed.

    Zero means every message was processed *and* its results flushed, because the worker
    commits only after the Parquet flush; a count of handled messages cannot say that (a
    restarted worker re-handles the uncommitted tail of its predecessor).

    A partition whose only messages past the committed offset are transaction markers
    (a commit that forwarded re-keyed events there ends with one, and no consumer is ever
    handed it) is drained: its lag is 0, as Kafka's own tools would not say.
    """
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        raise RuntimeError(f"topic {topic!r} has no partitions")
    ends = consumer.end_offsets(partitions)
    behind = {tp: ends[tp] - (consumer.committed(tp) or 0) for tp in partitions}
    lagging = {tp: ends[tp] - lag for tp, lag in behind.items() if lag > 0}
    if lagging:
        for tp in _only_markers_past(consumer.config["bootstrap_servers"], lagging, ends):
            behind[tp] = 0
    return sum(behind.values())


def _only_markers_past(bootstrap: object, starts: Mapping, ends: Mapping) -> set:
    """Partitions with no committed record in [start, end): only control records there."""
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        reader.assign(list(starts))
        for tp, start in starts.items():
            reader.seek(tp, start)
        records = reader.poll(timeout_ms=2000, max_records=500)
        return {tp for tp in starts if not records.get(tp) and reader.position(tp) >= ends[tp]}
    finally:
        reader.close()


def wait_committed(bootstrap: str, group: str, topic: str, timeout: float) -> None:
    """Block until ``group`` has committed every message of ``topic``."""
    # Never subscribes, so it reads the group's offsets without joining the group.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        lag = committed_lag(consumer, topic)
        while lag and time.monotonic() < deadline:
            time.sleep(0.5)
            lag = committed_lag(consumer, topic)
    finally:
        consumer.close()
    if lag:
        raise TimeoutError(f"group {group!r} has {lag} uncommitted messages on {topic!r} after {timeout}s")


def wait_group_stable(bootstrap: str, group: str, members: int, timeout: float) -> None:
    """Block until ``group`` has ``members`` members and has finished rebalancing."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        seen: dict = {}
        while time.monotonic() < deadline:
            seen = admin.describe_groups([group])[group]
            if seen.get("group_state") == "Stable" and len(seen.get("members") or ()) == members:
                return
            time.sleep(0.5)
        state, count = seen.get("group_state"), len(seen.get("members") or ())
        raise TimeoutError(f"group {group!r} is {state} with {count} members, not Stable with {members}")
    finally:
        admin.close()


def scrape_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


@dataclass
class WorkerProcess:
    env: Mapping[str, str]
    web_port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/metrics"

    def start(self, timeout: float = 90.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env, "CROSSINGS_WEB_PORT": str(self.web_port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log_path}")
            try:
                scrape(self.metrics_url, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"worker did not serve /metrics within {timeout}s; see {self.log_path}")

    def handled(self) -> int:
        """Messages the worker has dealt with: counted, duplicate or dead-lettered."""
        totals = scrape(self.metrics_url)
        return int(sum(totals.get(name, 0.0) for name in HANDLED))

    def wait_handled(
        self, expected: int, timeout: float, on_progress: Callable[[int], None] | None = None
    ) -> float:
        """Block until ``expected`` messages are handled; returns seconds from first to last."""
        deadline = time.monotonic() + timeout
        first_seen: float | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker died with {self.process.returncode}; see {self.log_path}")
            done = self.handled()
            now = time.monotonic()
            if done and first_seen is None:
                first_seen = now
            if on_progress:
                on_progress(done)
            if done >= expected:
                return now - (first_seen or now)
            time.sleep(0.5)
        raise TimeoutError(
            f"worker handled {self.handled()} of {expected} in {timeout}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the worker flushes Parquet on the way out), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def free_broker_port() -> int:
    """A port that is free, with the next one free too (the broker's controller listener)."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports found")


@contextlib.contextmanager
def broker_for(bootstrap: str | None, folder: Path) -> Iterator[str]:
    """``bootstrap`` as given, or an embedded broker of the run's own in ``folder`` on a free
    port, stopped afterwards (the load tests' ``--bootstrap`` default)."""
    if bootstrap is not None:
        yield bootstrap
        return
    from streams.ops import broker

    port = free_broker_port()
    print(f"starting a broker on 127.0.0.1:{port} in {folder}", file=sys.stderr, flush=True)
    status = broker.up(folder, port, timeout=180)
    try:
        yield status.bootstrap
    finally:
        broker.down(folder)
