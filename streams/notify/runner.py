"""The Kafka loop of ``crossings notify``: one consumer group per receiver.

Each receiver (an Alertmanager or a webhook URL) reads the alerts topic in its own
consumer group (``<app id>-notify-<receiver id>``, ``read_committed``, no auto-commit), so
a receiver that is down only holds back its own deliveries, never the others' and never
the worker's counting (a separate process). Messages are delivered one at a time in topic
order (so in order per episode), and the group's offset is committed only after the
message is delivered, or dead-lettered to ``<ns>.alerts.undelivered.v1`` (rejected by the
receiver, or still failing after the give-up time). A crash between delivery and commit
delivers that message again, with the same ``Idempotency-Key``: at least once, with a key
to drop repeats by.

A receiver without a committed offset starts at ``CROSSINGS_NOTIFY_START`` (latest by
default) and commits that position at once, so a restart never skips what arrived since.
An Alertmanager's firing set is rebuilt from the topic up to its committed offset when
its partition is assigned, and re-posted every ``CROSSINGS_NOTIFY_RESEND_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.notify.message import AlertRecord, MalformedAlert
from streams.notify.metrics import NotifyMetrics
from streams.notify.receivers import AlertmanagerSink, Sink, WebhookSink, post
from streams.notify.retry import RetryPolicy, Verdict
from streams.ops.security import client_kwargs
from streams.settings import Receiver, Settings

log = logging.getLogger(__name__)

UNDELIVERED_REASON = "crossings.undelivered.reason"


def group_id(settings: Settings, receiver: Receiver) -> str:
    return f"{settings.app_id}-notify-{receiver.id}"


def make_sink(settings: Settings, receiver: Receiver) -> Sink:
    if receiver.kind == "alertmanager":
        return AlertmanagerSink(receiver, settings.notify.generator_url)
    assert settings.notify.webhook_secret is not None  # load_notify requires it with webhooks
    return WebhookSink(receiver, settings.notify.webhook_secret)


class ReceiverLoop:
    """Deliver the alerts topic to one receiver, committing after each message."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        session: aiohttp.ClientSession,
        dead_letters: AIOKafkaProducer,
        metrics: NotifyMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self.settings, self.sink, self.session = settings, sink, session
        self.dead_letters, self.metrics = dead_letters, metrics
        self.rng = rng or random.Random()
        notify = settings.notify
        self.policy = RetryPolicy(
            max_seconds=notify.retry_max_seconds, give_up_seconds=notify.give_up_seconds
        )
        self.kind, self.target = sink.receiver.kind, sink.receiver.target
        self.prepared: set[TopicPartition] = set()
        self.next_resend = time.monotonic() + notify.resend_seconds
        self.kafka = client_kwargs(settings.security, "aiokafka")

    async def run(self) -> None:
        notify = self.settings.notify
        consumer = AIOKafkaConsumer(
            self.settings.topics.alerts,
            bootstrap_servers=self.settings.bootstrap,
            group_id=group_id(self.settings, self.sink.receiver),
            client_id=f"crossings-notify-{self.sink.receiver.id}",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset=notify.start,
            # A message may be retried up to the give-up time between two polls (one
            # message per poll: see run).
            max_poll_interval_ms=int((notify.give_up_seconds + 2 * notify.retry_max_seconds + 300) * 1000),
            **self.kafka,
        )
        await consumer.start()
        log.info("delivering %s to %s %s", self.settings.topics.alerts, self.kind, self.target)
        try:
            while True:
                # One message per poll: max_poll_interval_ms allows one message's give-up
                # time between polls, and a consumer that polls later than that leaves the
                # group (its commit is then refused and the message is sent again). A batch
                # of several messages, each retried up to the give-up time while a receiver
                # is down, would overrun it. (The consumer still fetches ahead.)
                batch = await consumer.getmany(timeout_ms=1000, max_records=1)
                await self._follow_assignment(consumer)
                for tp, records in batch.items():
                    for kafka_record in records:
                        if tp not in self.prepared:
                            break  # lost in a rebalance: its new owner delivers from the commit
                        try:
                            record = AlertRecord.from_kafka(kafka_record.offset, kafka_record.value)
                        except MalformedAlert as error:
                            await self._dead_letter_malformed(kafka_record, str(error))
                        else:
                            await self._deliver(record)
                        await self._commit(consumer, tp, kafka_record.offset + 1)
                await self._resend_if_due()
        finally:
            await consumer.stop()

    async def _follow_assignment(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        for tp in self.prepared - assigned:
            self.prepared.discard(tp)
            if isinstance(self.sink, AlertmanagerSink):  # another process re-posts them now
                self.sink.firing = type(self.sink.firing)()
        for tp in assigned - self.prepared:
            committed = await consumer.committed(tp)
            if committed is None:
                committed = await consumer.position(tp)
                await consumer.commit({tp: committed})
                log.info(
                    "%s %s starts at offset %d (%s)",
                    self.kind,
                    self.target,
                    committed,
                    self.settings.notify.start,
                )
            if isinstance(self.sink, AlertmanagerSink):
                await self._rebuild_firing(tp, committed)
            self.metrics.committed_offset.labels(self.kind, self.target).set(committed)
            self.prepared.add(tp)

    async def _rebuild_firing(self, tp: TopicPartition, upto: int) -> None:
        """The episodes still open after the messages before ``upto`` (already delivered)."""
        assert isinstance(self.sink, AlertmanagerSink)
        firing = type(self.sink.firing)()
        for record in await read_alerts(self.settings.bootstrap, self.kafka, tp, upto):
            firing.apply(record.alert)
        self.sink.firing = firing
        self.metrics.firing.labels(self.target).set(len(firing))
        log.info("%s: %d open episode(s) rebuilt from offsets below %d", self.target, len(firing), upto)
        self.next_resend = 0.0  # post them now: Alertmanager may have timed them out while we were down

    async def _deliver(self, record: AlertRecord) -> None:
        body = self.sink.body(record)
        if isinstance(self.sink, AlertmanagerSink):
            self.metrics.firing.labels(self.target).set(len(self.sink.firing))
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            headers = self.sink.headers(record, body)
            outcome, detail = await post(
                self.session, self.sink.url, body, headers, self.settings.notify.request_timeout_seconds
            )
            if outcome is Verdict.DELIVERED:
                self.metrics.deliveries.labels(self.kind, self.target, "delivered").inc()
                self.metrics.latency.labels(self.kind).observe(time.monotonic() - started)
                return
            if outcome is Verdict.REJECTED:
                await self._dead_letter(record, "rejected", detail, attempt)
                return
            delay = self.policy.delay(attempt, self.rng)
            if self.policy.gives_up(time.monotonic() - started, delay):
                await self._dead_letter(record, "gave_up", detail, attempt)
                return
            if attempt == 1:
                log.warning(
                    "%s %s: %s for %s; retrying with backoff (up to %.0fs)",
                    self.kind,
                    self.target,
                    detail,
                    record.idempotency_key,
                    self.policy.give_up_seconds,
                )
            self.metrics.retries.labels(self.kind, self.target).inc()
            await asyncio.sleep(delay)

    async def _dead_letter(self, record: AlertRecord, outcome: str, detail: str, attempts: int) -> None:
        reason = f"{outcome}: {detail} after {attempts} attempt(s)"
        log.error("%s %s: %s dead-lettered (%s)", self.kind, self.target, record.idempotency_key, reason)
        await self._undelivered(
            record.episode_id.encode(),
            record.value,
            record.offset,
            reason,
            [("Idempotency-Key", record.idempotency_key.encode())],
        )
        self.metrics.deliveries.labels(self.kind, self.target, outcome).inc()

    async def _dead_letter_malformed(self, kafka_record: Any, detail: str) -> None:
        """Not an alert: never sent to the receiver, kept on the undelivered topic as it was."""
        reason = f"malformed: {detail}"
        log.error(
            "%s %s: the message at offset %d is not an alert, dead-lettered (%s)",
            self.kind,
            self.target,
            kafka_record.offset,
            reason,
        )
        await self._undelivered(kafka_record.key, kafka_record.value, kafka_record.offset, reason, [])
        self.metrics.deliveries.labels(self.kind, self.target, "malformed").inc()

    async def _undelivered(
        self, key: bytes | None, value: bytes | None, offset: int, reason: str, extra: list[tuple[str, bytes]]
    ) -> None:
        headers = [
            (UNDELIVERED_REASON, reason.encode()),
            ("crossings.undelivered.sink", self.kind.encode()),
            ("crossings.undelivered.target", self.target.encode()),
            ("crossings.undelivered.offset", str(offset).encode()),
            *extra,
        ]
        topic = self.settings.topics.alerts_undelivered
        delay = 1.0
        while True:  # without the dead letter the offset must not move: wait for Kafka
            try:
                await self.dead_letters.send_and_wait(topic, key=key, value=value, headers=headers)
                return
            except KafkaError as error:
                log.warning("dead letter to %s failed (%s); retrying", topic, type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({tp: offset})
        except (CommitFailedError, IllegalStateError) as error:
            # The group moved the partition while we delivered: the new owner delivers
            # this message again (same idempotency key).
            log.warning("%s %s: commit of offset %d refused (%s)", self.kind, self.target, offset, error)
            self.prepared.discard(tp)
            return
        self.metrics.committed_offset.labels(self.kind, self.target).set(offset)

    async def _resend_if_due(self) -> None:
        if not isinstance(self.sink, AlertmanagerSink) or time.monotonic() < self.next_resend:
            return
        self.next_resend = time.monotonic() + self.settings.notify.resend_seconds
        body = self.sink.resend_body()
        self.metrics.firing.labels(self.target).set(len(self.sink.firing))
        if body is None:
            return
        outcome, detail = await post(
            self.session,
            self.sink.url,
            body,
            {"Content-Type": "application/json"},
            self.settings.notify.request_timeout_seconds,
        )
        ok = outcome is Verdict.DELIVERED
        self.metrics.resends.labels(self.target, "ok" if ok else "failed").inc()
        if not ok:
            log.warning(
                "re-post of %d open episode(s) to %s failed: %s", len(self.sink.firing), self.target, detail
            )


async def read_alerts(
    bootstrap: str, kafka: dict[str, Any], tp: TopicPartition, upto: int
) -> list[AlertRecord]:
    """The committed alert messages of ``tp`` from its start to below ``upto``."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="crossings-notify-rebuild",
        **kafka,
    )
    await reader.start()
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = min(upto, (await reader.end_offsets([tp]))[tp])
        records: list[AlertRecord] = []
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=1000)
            for message in batch.get(tp, ()):
                if message.offset >= upto:
                    continue
                try:
                    records.append(AlertRecord.from_kafka(message.offset, message.value))
                except MalformedAlert:  # dead-lettered when it was delivered; opens nothing
                    continue
        return records
    finally:
        await reader.stop()


async def serve_metrics(metrics: NotifyMetrics, host: str, port: int) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_notify(settings: Settings) -> None:
    """Run every receiver's loop until SIGTERM or SIGINT; then stop without committing
    whatever was in flight (it is delivered again on the next start)."""
    metrics = NotifyMetrics()
    web_runner = await serve_metrics(metrics, settings.web_host, settings.notify.web_port)
    log.info("notify /metrics on http://%s:%d/metrics", settings.web_host, settings.notify.web_port)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        client_id="crossings-notify-undelivered",
        **client_kwargs(settings.security, "aiokafka"),
    )
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(
                    ReceiverLoop(settings, make_sink(settings, r), session, producer, metrics).run()
                )
                for r in settings.notify.receivers
            ]
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            stopping.cancel()
            for task in done:
                if task is not stopping and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    finally:
        await producer.stop()
        await web_runner.cleanup()
