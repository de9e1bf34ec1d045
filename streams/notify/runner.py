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

Each receiver's loop runs under :func:`supervise`: an error no path here handles stops
that loop only, which starts again from its committed offset after a backoff while the
other receivers go on (``health.py`` keeps which loops are down, for ``/readyz``).
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
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, ProducerFenced
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.notify.health import NotifyHealth
from streams.notify.message import AlertRecord, MalformedAlert
from streams.notify.metrics import NotifyMetrics
from streams.notify.receivers import AlertmanagerSink, Sink, WebhookSink, post
from streams.notify.retry import RetryPolicy, Verdict
from streams.ops.security import client_kwargs
from streams.ops.web_access import middlewares
from streams.settings import Receiver, Settings, WebConfig

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
        metrics: NotifyMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self.settings, self.sink, self.session = settings, sink, session
        self.metrics = metrics
        self.group = group_id(settings, sink.receiver)
        #: A transactional producer per owned partition: a dead letter and the offset past
        #: its message are committed in one transaction.
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        #: Per owned partition, the offset of the next message to handle.
        self.next_offset: dict[TopicPartition, int] = {}
        self.rng = rng or random.Random()
        notify = settings.notify
        self.policy = RetryPolicy(
            max_seconds=notify.retry_max_seconds, give_up_seconds=notify.give_up_seconds
        )
        self.kind, self.target = sink.receiver.kind, sink.receiver.target
        metrics.declare_receiver(self.kind, self.target)
        self.prepared: set[TopicPartition] = set()
        self.next_resend = time.monotonic() + notify.resend_seconds
        self.kafka = client_kwargs(settings.security, "aiokafka")

    async def run(self) -> None:
        notify = self.settings.notify
        consumer = AIOKafkaConsumer(
            self.settings.topics.alerts,
            bootstrap_servers=self.settings.bootstrap,
            group_id=self.group,
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
                await self._follow_assignment(consumer, batch)
                for tp, records in batch.items():
                    for kafka_record in records:
                        if tp not in self.prepared:
                            break  # lost in a rebalance: its new owner delivers from the commit
                        if kafka_record.offset < self.next_offset[tp]:
                            continue  # fetched before the seek to the committed offset
                        self.next_offset[tp] = kafka_record.offset + 1
                        try:
                            record = AlertRecord.from_kafka(kafka_record.offset, kafka_record.value)
                        except MalformedAlert as error:
                            await self._dead_letter_malformed(tp, kafka_record, str(error))
                        else:
                            if await self._deliver(tp, record):
                                await self._commit(consumer, tp, kafka_record.offset + 1)
                await self._resend_if_due()
        finally:
            for tp in list(self.producers):
                await self._close_producer(tp)
            await consumer.stop()

    async def _follow_assignment(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list]) -> None:
        assigned = consumer.assignment()
        for tp in set(self.producers) - assigned:
            await self._close_producer(tp)
        for tp in self.prepared - assigned:
            self.prepared.discard(tp)
            if isinstance(self.sink, AlertmanagerSink):  # another process re-posts them now
                self.sink.firing = type(self.sink.firing)()
        for tp in assigned - self.prepared:
            # The producer first: starting it settles a transaction an earlier owner left
            # (a dead letter and its offset), so the committed offset read next is final.
            await self._open_producer(tp)
            committed = await consumer.committed(tp)
            if committed is None:
                # Where CROSSINGS_NOTIFY_START put the fetch: this poll's first message (the
                # position is already past it), or the position.
                fetched = batch.get(tp)
                committed = fetched[0].offset if fetched else await consumer.position(tp)
                await consumer.commit({tp: committed})
                log.info(
                    "%s %s starts at offset %d (%s)",
                    self.kind,
                    self.target,
                    committed,
                    self.settings.notify.start,
                )
            else:
                consumer.seek(tp, committed)  # the fetch may have started from an older one
            self.next_offset[tp] = committed
            if isinstance(self.sink, AlertmanagerSink):
                await self._rebuild_firing(tp, committed)
            self.metrics.committed_offset.labels(self.kind, self.target).set(committed)
            self.prepared.add(tp)

    async def _open_producer(self, tp: TopicPartition) -> None:
        """The partition's transactional producer. Its id is the receiver's group and the
        partition, so starting it fences the producer of an earlier owner of the partition
        (and aborts that owner's open transaction, if it died in one)."""
        if tp in self.producers:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            acks="all",
            enable_idempotence=True,
            transactional_id=f"{self.group}-{tp.partition}",
            client_id=f"crossings-notify-{self.sink.receiver.id}-undelivered",
            **self.kafka,
        )
        await producer.start()
        self.producers[tp] = producer

    async def _close_producer(self, tp: TopicPartition) -> None:
        producer = self.producers.pop(tp, None)
        if producer is not None:
            with contextlib.suppress(KafkaError):
                await producer.stop()

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

    async def _deliver(self, tp: TopicPartition, record: AlertRecord) -> bool:
        """Deliver ``record``; True when its offset is still to be committed (delivered),
        False when it was committed with a dead letter or the partition is lost."""
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
                return True
            if outcome is Verdict.REJECTED:
                await self._dead_letter(tp, record, "rejected", detail, attempt)
                return False
            delay = self.policy.delay(attempt, self.rng)
            if self.policy.gives_up(time.monotonic() - started, delay):
                await self._dead_letter(tp, record, "gave_up", detail, attempt)
                return False
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

    async def _dead_letter(
        self, tp: TopicPartition, record: AlertRecord, outcome: str, detail: str, attempts: int
    ) -> None:
        reason = f"{outcome}: {detail} after {attempts} attempt(s)"
        log.error("%s %s: %s dead-lettered (%s)", self.kind, self.target, record.idempotency_key, reason)
        key, extra = record.episode_id.encode(), [("Idempotency-Key", record.idempotency_key.encode())]
        if await self._undelivered(tp, key, record.value, record.offset, reason, extra):
            self.metrics.deliveries.labels(self.kind, self.target, outcome).inc()

    async def _dead_letter_malformed(self, tp: TopicPartition, kafka_record: Any, detail: str) -> None:
        """Not an alert: never sent to the receiver, kept on the undelivered topic as it was."""
        reason = f"malformed: {detail}"
        log.error(
            "%s %s: the message at offset %d is not an alert, dead-lettered (%s)",
            self.kind,
            self.target,
            kafka_record.offset,
            reason,
        )
        if await self._undelivered(tp, kafka_record.key, kafka_record.value, kafka_record.offset, reason, []):
            self.metrics.deliveries.labels(self.kind, self.target, "malformed").inc()

    async def _undelivered(
        self,
        tp: TopicPartition,
        key: bytes | None,
        value: bytes | None,
        offset: int,
        reason: str,
        extra: list[tuple[str, bytes]],
    ) -> bool:
        """The message to the undelivered topic and the offset past it to the receiver's
        group, in one Kafka transaction: a crash between them leaves neither, and the
        message is judged again. False when another owner fenced this one (it has the
        partition now; nothing was written or committed here)."""
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
            producer = self.producers.get(tp)
            if producer is None:  # the partition was lost meanwhile
                self.prepared.discard(tp)
                return False
            try:
                async with producer.transaction():
                    await producer.send_and_wait(topic, key=key, value=value, headers=headers)
                    await producer.send_offsets_to_transaction({tp: offset + 1}, self.group)
            except ProducerFenced:
                log.warning("%s %s: fenced by a newer owner of %s; letting it go", self.kind, self.target, tp)
                self.prepared.discard(tp)
                await self._close_producer(tp)
                return False
            except KafkaError as error:
                log.warning("dead letter to %s failed (%s); retrying", topic, type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.metrics.committed_offset.labels(self.kind, self.target).set(offset + 1)
            return True

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


#: A receiver loop stopped by an unexpected error is started again after this many
#: seconds, doubled at each failure in a row up to ``RESTART_MAX_SECONDS``; a loop that
#: ran that long before failing starts again from the first delay.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0


async def supervise(
    settings: Settings,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    metrics: NotifyMetrics,
    health: NotifyHealth,
) -> None:
    """Run ``receiver``'s loop, and start it again after a backoff whenever it stops on an
    error: a bug or an input nobody foresaw costs that receiver alone, and only while it
    lasts. The new loop resumes from the group's committed offset, so the message in
    flight is delivered again with the same ``Idempotency-Key`` (at least once, as after a
    crash); a message that fails the same way every time holds back this receiver only,
    and ``crossings_notify_receiver_up`` and ``/readyz`` say so."""
    kind, target = receiver.kind, receiver.target
    delay = RESTART_FIRST_SECONDS
    while True:
        started = time.monotonic()
        health.running(receiver)
        metrics.receiver_up.labels(kind, target).set(1)
        try:
            await ReceiverLoop(settings, make_sink(settings, receiver), session, metrics).run()
            raise RuntimeError("the receiver loop returned")  # it runs until cancelled
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if time.monotonic() - started >= RESTART_MAX_SECONDS:
                delay = RESTART_FIRST_SECONDS
            metrics.receiver_up.labels(kind, target).set(0)
            metrics.receiver_failures.labels(kind, target, type(error).__name__).inc()
            health.failed(receiver, error, delay)
            # The traceback is logged for whoever fixes it; the other receivers go on.
            log.exception(
                "%s %s: delivery stopped by %s; restarting in %.0fs from the last committed "
                "offset (the other receivers are not affected)",
                kind,
                target,
                type(error).__name__,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESTART_MAX_SECONDS)


async def serve_metrics(
    metrics: NotifyMetrics, health: NotifyHealth, host: str, port: int, config: WebConfig | None = None
) -> web.AppRunner:
    """/metrics, /healthz and /readyz; with ``config`` (CROSSINGS_WEB_CONFIG_FILE) over TLS
    and behind basic auth (but for the probes' paths), as the worker's."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response(health.as_json(), status=200 if health.ready else 503)

    app = web.Application(middlewares=middlewares(config))
    app.router.add_get("/metrics", handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = config.tls.context() if config is not None and config.tls is not None else None
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    return runner


async def run_notify(settings: Settings) -> None:
    """Run every receiver's loop (each restarted on its own when it fails) until SIGTERM or
    SIGINT; then stop without committing whatever was in flight (it is delivered again on
    the next start)."""
    metrics, health = NotifyMetrics(), NotifyHealth()
    web_runner = await serve_metrics(
        metrics, health, settings.web_host, settings.notify.web_port, settings.web
    )
    scheme = settings.web.scheme if settings.web else "http"
    log.info("notify /metrics on %s://%s:%d/metrics", scheme, settings.web_host, settings.notify.web_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(supervise(settings, r, session, metrics, health))
                for r in settings.notify.receivers
            ]
            await stop.wait()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await web_runner.cleanup()
