"""Produce a generated stream to Kafka: all of it, or an error.

The one place in the package that touches Kafka, and kafka-python is only imported
when :func:`replay` runs, so generation works in plain scripts and in the test process
without a broker or the Kafka client.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from load_tests.scenario.generate import RECORD_KINDS, GeneratedRecord


@dataclass
class ReplayStats:
    sent: int
    by_kind: dict[str, int]
    seconds: float
    rate_achieved: float


class ReplayError(RuntimeError):
    """Kafka refused or lost records; the replay is not a complete scenario."""


class _TokenBucket:
    """Paces sends to a target rate without sleeping per record.

    Sleeping for each record would cap the rate at a few thousand per second (sleep
    granularity); a bucket lets a burst of up to 100 ms worth of records through and
    then sleeps until enough tokens have accumulated.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 records/s")
        self.rate = rate
        self.capacity = max(1.0, rate * 0.1)
        self.tokens = 0.0
        self.last = time.monotonic()

    def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            time.sleep(max((1.0 - self.tokens) / self.rate, 0.001))


def replay(
    records: Iterable[GeneratedRecord],
    bootstrap: str,
    topic: str,
    *,
    rate: float | None = None,
    progress: bool = True,
    linger_ms: int = 20,
    batch_size: int = 262144,
    total: int | None = None,
) -> ReplayStats:
    """Produce records to Kafka in the given order, as fast as possible or at ``rate``/s.

    The Kafka timestamp is the real send time (``timestamp_ms=None``), so arrival-lag
    metrics downstream measure the pipeline, not the simulation. Any delivery failure
    raises :class:`ReplayError` (checked while sending and after the final flush):
    a silently partial replay would make every count downstream look wrong.
    """
    from kafka import KafkaProducer  # imported here: generation must not need Kafka
    from tqdm import tqdm

    failures: list[BaseException] = []
    lock = threading.Lock()

    def on_error(exc: BaseException) -> None:
        with lock:
            failures.append(exc)

    def check() -> None:
        if failures:
            raise ReplayError(
                f"{len(failures)} record(s) failed to reach {topic}; first: {failures[0]!r}"
            ) from failures[0]

    producer = KafkaProducer(
        bootstrap_servers=[host.strip() for host in bootstrap.split(",") if host.strip()],
        acks="all",
        linger_ms=linger_ms,
        batch_size=batch_size,
        client_id="crossings-scenario-replay",
    )
    by_kind = dict.fromkeys(RECORD_KINDS, 0)
    sent = 0
    bucket = _TokenBucket(rate) if rate else None
    started = time.monotonic()
    try:
        # A redirected log gets a line every 10 s instead of one per update.
        interval = 0.1 if sys.stderr.isatty() else 10.0
        with tqdm(
            total=total, unit="rec", disable=not progress, desc=f"replay {topic}", mininterval=interval
        ) as bar:
            unreported = 0
            for record in records:
                if bucket is not None:
                    bucket.take()
                future = producer.send(topic, key=record.key, value=record.value, timestamp_ms=None)
                future.add_errback(on_error)
                sent += 1
                by_kind[record.kind] = by_kind.get(record.kind, 0) + 1
                unreported += 1
                if unreported >= 2048:
                    bar.update(unreported)
                    unreported = 0
                    check()
            bar.update(unreported)
            producer.flush()
        seconds = time.monotonic() - started
        check()
    finally:
        producer.close(timeout=10)
    return ReplayStats(
        sent=sent,
        by_kind=by_kind,
        seconds=seconds,
        rate_achieved=sent / seconds if seconds > 0 else 0.0,
    )
