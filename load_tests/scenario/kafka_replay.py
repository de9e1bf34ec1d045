"""Produce a generated stream to Kafka: all of it, or an error.

The one place in the package that touches Kafka, and aiokafka is only imported
when :func:`replay` runs, so generation works in plain scripts and in the test process
without a broker or the Kafka client.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
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


#: How long a record may wait for the broker (an outage, its restart), retries included.
DELIVERY_TIMEOUT_MS = 180_000


class ReplayError(RuntimeError):
    """Kafka refused or lost records; the replay is not a complete scenario."""


async def _sleep(seconds: float) -> None:
    """The bucket's wait (a test replaces it and ``time`` with a fake clock)."""
    await asyncio.sleep(seconds)


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

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await _sleep(max((1.0 - self.tokens) / self.rate, 0.001))


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

    aiokafka's idempotent producer (the workers' client): it rides out a broker restart
    (the crash test's outages), holding back the traffic while the broker is away and
    without writing a record twice. kafka-python 3's producer did not: after the broker
    came back it sent nothing more, and its flush() never returned (the crash test hung
    until pytest's timeout, its workers idle with every record they were given committed).
    """
    return asyncio.run(
        _replay(
            records,
            bootstrap,
            topic,
            rate=rate,
            progress=progress,
            linger_ms=linger_ms,
            batch_size=batch_size,
            total=total,
        )
    )


async def _replay(
    records: Iterable[GeneratedRecord],
    bootstrap: str,
    topic: str,
    *,
    rate: float | None,
    progress: bool,
    linger_ms: int,
    batch_size: int,
    total: int | None,
) -> ReplayStats:
    import aiokafka  # imported here: generation must not need Kafka
    from tqdm import tqdm

    failures: list[BaseException] = []

    def on_done(future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            failures.append(future.exception())

    def check() -> None:
        if failures:
            raise ReplayError(
                f"{len(failures)} record(s) failed to reach {topic}; first: {failures[0]!r}"
            ) from failures[0]

    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=[host.strip() for host in bootstrap.split(",") if host.strip()],
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=batch_size,
        client_id="crossings-scenario-replay",
        # How long a send waits for room while the broker is away, and how long a batch
        # may wait for it: past it, the record fails (ReplayError).
        request_timeout_ms=DELIVERY_TIMEOUT_MS,
    )
    await producer.start()
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
                    await bucket.take()
                try:
                    future = await producer.send(topic, key=record.key, value=record.value, timestamp_ms=None)
                except Exception as error:  # no room for it within the timeout: the broker is gone
                    failures.append(error)
                    check()
                future.add_done_callback(on_done)
                sent += 1
                by_kind[record.kind] = by_kind.get(record.kind, 0) + 1
                unreported += 1
                if unreported >= 2048:
                    bar.update(unreported)
                    unreported = 0
                    check()
            bar.update(unreported)
            try:  # batches fail after the timeout: a flush longer than that is stuck
                await asyncio.wait_for(producer.flush(), DELIVERY_TIMEOUT_MS / 1000 + 60)
            except TimeoutError as error:
                raise ReplayError(f"the producer did not flush its records to {topic}") from error
            await asyncio.sleep(0)  # the delivery callbacks of the last batches
        seconds = time.monotonic() - started
        check()
    finally:
        # Already failing, or done: the first error is the one to see.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 10)
    return ReplayStats(
        sent=sent,
        by_kind=by_kind,
        seconds=seconds,
        rate_achieved=sent / seconds if seconds > 0 else 0.0,
    )
