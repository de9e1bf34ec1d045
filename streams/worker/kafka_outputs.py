"""The Kafka side of a commit: one transactional producer per source partition.

Each partition's commit is one Kafka transaction: its dead letters, its alerts, the
events it forwards to their checkpoint's own partition of the events topic, one
changelog record per dirty state key, and the source offset (``TxnOffsetCommit`` for
the worker's consumer group). The commit's Parquet files are written inside it, once the
transaction's records are acknowledged and before the offset and the commit. The
transactional id is ``<app id>-<events topic>-<p>``, so whoever opens a partition fences
any earlier owner still alive (a worker that stalled past its session timeout): that
one's next commit fails, with ``Fenced``, before writing anything, and it lets the
partition go.
Readers of the changelog, the alerts and the dead letters use ``read_committed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from streams.core.effects import CommitBatch, DeadLetter
from streams.core.faults import OutputRefused, classify
from streams.core.ports import Fenced
from streams.core.records import REKEYED_HEADER
from streams.core.store import Change

log = logging.getLogger(__name__)

#: What a producer whose transactional id was taken over by a newer epoch raises.
FENCED_ERRORS = (ProducerFenced, InvalidProducerEpoch)


class KafkaOutputs:
    def __init__(
        self,
        bootstrap: str,
        *,
        group_id: str,
        events_topic: str,
        changelog_topic: str,
        dead_letter_topic: str,
        alerts_topic: str,
        transactional_prefix: str,
        client: Mapping[str, Any] | None = None,
        transaction_timeout_ms: int = 30_000,
    ) -> None:
        self.bootstrap = bootstrap
        #: aiokafka security keyword arguments (``streams.ops.security.client_kwargs``).
        self.client = dict(client or {})
        self.group_id = group_id
        self.events_topic = events_topic
        self.changelog_topic = changelog_topic
        self.dead_letter_topic = dead_letter_topic
        self.alerts_topic = alerts_topic
        self.transactional_prefix = transactional_prefix
        #: How long the broker lets a transaction stay open before aborting it. Shorter
        #: than aiokafka's 60 s on purpose: a worker that dies mid-commit leaves its
        #: transaction open, and until it is aborted every read_committed reader of the
        #: partitions it wrote (the forwarded copies' partitions of the events topic, the
        #: alerts topic that notify reads, the dead letters) is held at that point. Opening
        #: the partition again aborts it at once; this bounds the wait when nobody does.
        #: It must exceed the longest commit (sends, then the Parquet files, then the
        #: offset): a broker outage longer than it aborts the transaction, which the
        #: producer then sees as a fence, so the partition is let go and rejoined.
        self.transaction_timeout_ms = transaction_timeout_ms
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._reader: AIOKafkaConsumer | None = None

    async def _changelog_reader(self) -> AIOKafkaConsumer:
        if self._reader is None:
            self._reader = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                max_partition_fetch_bytes=8 * 2**20,
                fetch_max_bytes=64 * 2**20,
                **self.client,
            )
            await self._reader.start()
        return self._reader

    async def open_partition(self, partition: int) -> None:
        await self.close_partition(partition)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            transactional_id=f"{self.transactional_prefix}-{self.events_topic}-{partition}",
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            max_batch_size=1_048_576,
            max_request_size=8 * 2**20,
            transaction_timeout_ms=self.transaction_timeout_ms,
            **self.client,
        )
        await producer.start()  # InitProducerId: fences the previous owner, aborts its open transaction
        self._producers[partition] = producer

    async def close_partition(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as error:  # a fenced or broken producer: nothing left to flush
                log.warning("partition %d: closing its producer failed: %s", partition, error)

    async def close(self) -> None:
        for partition in list(self._producers):
            await self.close_partition(partition)
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def changelog_end(self, partition: int) -> int | None:
        reader = await self._changelog_reader()
        tp = TopicPartition(self.changelog_topic, partition)
        return (await reader.end_offsets([tp]))[tp]

    async def read_changelog(
        self, partition: int, start: int, end: int
    ) -> AsyncIterator[list[tuple[int, Change]]]:
        if start >= end:
            return
        reader = await self._changelog_reader()
        tp = TopicPartition(self.changelog_topic, partition)
        reader.assign([tp])
        reader.seek(tp, start)
        try:
            while await reader.position(tp) < end:
                fetched = await reader.getmany(tp, timeout_ms=1000, max_records=10_000)
                records = [
                    (m.offset, (m.key, m.value)) for m in fetched.get(tp, ()) if m.offset < end and m.key
                ]
                if records:
                    yield records
        finally:
            reader.assign([])

    async def publish(self, batch: CommitBatch, write_files: Callable[[], object]) -> int | None:
        producer = self._producers[batch.partition]
        await producer.begin_transaction()
        try:
            sent = [
                await producer.send(
                    self.dead_letter_topic,
                    key=letter.key,
                    # aiokafka sends no record without a key and a value ("Need at least
                    # one"): a refused batch's letter, or a message with neither, has an
                    # empty value (its headers say what it stands for).
                    value=b"" if letter.key is None and letter.value is None else letter.value,
                    partition=batch.partition,
                    headers=dead_letter_headers(letter, self.events_topic),
                )
                for letter in batch.dead_letters
            ]
            sent += [
                await producer.send(
                    self.events_topic,
                    key=forward.checkpoint_id.encode(),
                    value=forward.value,
                    partition=forward.home,
                    timestamp_ms=forward.timestamp_ms or None,
                    headers=[(REKEYED_HEADER, f"{forward.partition}/{forward.offset}".encode())],
                )
                for forward in batch.forwards
            ]
            sent += [
                await producer.send(
                    self.alerts_topic, key=alert.episode_id.encode(), value=alert_bytes(alert), partition=0
                )
                for alert in batch.alerts
            ]
            futures = [
                await producer.send(self.changelog_topic, key=key, value=value, partition=batch.partition)
                for key, value in batch.changes
            ]
            # The broker takes a transaction's records only from the newest producer epoch:
            # once they are acknowledged this process still owned the partition a moment
            # ago, so a zombie that was fenced while it stalled fails here, before it writes
            # any file. (Every commit has changelog records: at least the meta record.)
            try:
                await asyncio.gather(*sent, *futures)
            except Exception as error:
                raise _refused_record(batch, sent, error) from error
            # Parquet writes and fsyncs on a thread: the loop that answers health probes
            # and keeps the consumer's heartbeat company stays responsive on a slow disk.
            await asyncio.to_thread(write_files)
            offsets = {TopicPartition(self.events_topic, batch.partition): batch.last_offset + 1}
            await producer.send_offsets_to_transaction(offsets, self.group_id)
            await producer.commit_transaction()
        except BaseException as error:
            try:
                await producer.abort_transaction()
            except Exception as abort_error:  # fenced or broken: the transaction times out on the broker
                log.warning("partition %d: abort failed: %s", batch.partition, abort_error)
            if isinstance(error, Exception) and was_fenced(producer, error):
                raise Fenced(f"partition {batch.partition}: producer fenced ({error!r})") from error
            raise
        return max((f.result().offset for f in futures), default=-1) + 1 if futures else None


def _refused_record(batch: CommitBatch, sent: list[asyncio.Future], error: Exception) -> Exception:
    """``error``, or an ``OutputRefused`` naming the record whose output the broker refused
    for good (too large, say), so its partition's quarantine can say which record to skip.
    ``sent`` holds the dead letters', then the forwards', then the alerts' deliveries.
    Every record of a refused produce batch fails alike, so the largest is taken for the
    cause (the size limit is what refuses for good)."""
    if classify(error) != "record":
        return error
    outputs: list[tuple[int, str, int]] = [
        (d.offset, "dead letter", len(d.key or b"") + len(d.value or b"")) for d in batch.dead_letters
    ]
    outputs += [(f.offset, "forwarded copy", len(f.value)) for f in batch.forwards]
    refused = []
    for future, (offset, what, size) in zip(sent, outputs, strict=False):
        failure = future.exception() if future.done() and not future.cancelled() else None
        if failure is not None and classify(failure) == "record":
            refused.append((size, offset, what, failure))
    if not refused:
        return error
    # The broker refuses a whole produce batch for one record in it: the largest is named.
    size, offset, what, failure = max(refused, key=lambda item: (item[0], -item[1]))
    return OutputRefused(batch.partition, offset, what, size, failure)


def was_fenced(producer: AIOKafkaProducer, error: BaseException) -> bool:
    """Whether ``error`` comes from another producer having taken the transactional id over.

    aiokafka reports a fence as ``ProducerFenced`` (an ``InvalidProducerEpoch`` answer)
    when it surfaces in the call; when its background sender met it first, the producer
    is in a fatal state and the call fails with whatever that state makes it raise, so
    the sender task's own exception is looked at too."""
    seen: BaseException | None = error
    for _ in range(10):  # the chain of causes, not forever
        if seen is None:
            break
        if isinstance(seen, FENCED_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return (
        sender is not None
        and sender.done()
        and not sender.cancelled()
        and isinstance(sender.exception(), FENCED_ERRORS)
    )


def dead_letter_headers(letter: DeadLetter, topic: str) -> list[tuple[str, bytes]]:
    """Kafka Connect style context; the value stays the original bytes."""
    headers = [
        ("crossings.dlq.reason", letter.reason.encode()),
        ("crossings.dlq.detail", letter.detail.encode("utf-8", "replace")[:1000]),
        ("crossings.dlq.topic", topic.encode()),
        ("crossings.dlq.partition", str(letter.partition).encode()),
        ("crossings.dlq.offset", str(letter.offset).encode()),
    ]
    if letter.original_size is not None:
        headers += [
            ("crossings.dlq.original.size", str(letter.original_size).encode()),
            ("crossings.dlq.original.sha256", (letter.sha256 or "").encode()),
        ]
    if letter.batch is not None:  # a record batch that was not read: its offsets, size and codec
        headers += [
            ("crossings.dlq.batch.base.offset", str(letter.batch.base_offset).encode()),
            ("crossings.dlq.batch.last.offset", str(letter.batch.last_offset).encode()),
            ("crossings.dlq.batch.compressed.size", str(letter.batch.compressed_size).encode()),
            ("crossings.dlq.batch.codec", letter.batch.codec.encode()),
        ]
    return headers


def alert_bytes(alert: Any) -> bytes:
    """An ``alert_type.Alert`` as the alerts topic carries it (schemas/alert.v1.json)."""
    return _ALERT_ENCODER.encode(alert)


_ALERT_ENCODER = msgspec.json.Encoder()
