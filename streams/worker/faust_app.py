"""The Faust worker: Faust's consumer group, web server and timers around the core.

Reads like the pipeline it runs:

    crossings.events.v1 --take_events--> Engine.process (core, per partition)
        every commit interval --> Engine.commit: Parquet, then one Kafka transaction per
        partition (dead letters, alerts, state changelog, source offset), then RocksDB
    a 1 s timer --> Engine.tick (idle partitions judged on the others' clock)

Faust does not commit the events topic's offsets: the topic is declared ``acks=False``,
so Faust's consumer never records an acked offset for it, and each offset is committed
inside the partition's transaction, together with the state and outputs it produced.
Faust's tables are not used; the core keeps its own offset-stamped state (RocksDB plus a
changelog topic), which is what makes a re-delivered record recognisable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from streams.core.engine import Engine, EngineConfig
from streams.core.records import SourceRecord
from streams.core.task import CommitFailed
from streams.domain.registry import Registry, load_registry
from streams.ops.topics import changelog_topic
from streams.settings import Settings
from streams.sinks.parquet.sink import LakeSink
from streams.worker.kafka_outputs import KafkaOutputs
from streams.worker.metrics import CONTENT_TYPE_LATEST, WorkerMetrics

log = logging.getLogger(__name__)

#: Largest batch handed to the core at once, and how long to wait to fill one.
MAX_BATCH = 5000
BATCH_WITHIN_S = 0.25
MAX_RETRY_DELAY_S = 30.0


class Worker:
    """The engine and its guard: one coroutine at a time touches partition state."""

    def __init__(self, engine: Engine, metrics: WorkerMetrics) -> None:
        self.engine = engine
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self.failing = False
        self.retry_delay = 1.0

    async def commit(self, partitions: set[int] | None = None) -> bool:
        """Commit (the lock held); False after a failure, which is logged and counted."""
        try:
            reports = await self.engine.commit(partitions)
        except CommitFailed as error:
            self.failing = True
            self.metrics.commit_failures.inc()
            log.error(
                "%s; retrying in %.0fs (nothing is lost: the records are applied again)",
                error,
                self.retry_delay,
            )
            return False
        self.failing = False
        self.retry_delay = 1.0
        now = time.time()
        for report in reports:
            task = self.engine.tasks.get(report.batch.partition)
            open_episodes = task.processor.open_episodes() if task and task.processor else {}
            self.metrics.apply(report, now, open_episodes)
            if task is not None and task.processor is not None and task.state.stream_ts is not None:
                self.metrics.stream_time.labels(str(task.partition)).set(task.state.stream_ts)
                for (checkpoint_id, direction), total in task.processor.today_counts().items():
                    self.metrics.today_count.labels(checkpoint_id, direction).set(total)
        return True

    async def backoff(self) -> None:
        await asyncio.sleep(self.retry_delay)
        self.retry_delay = min(self.retry_delay * 2, MAX_RETRY_DELAY_S)

    async def handle(self, records: list[SourceRecord], assigned: set[int]) -> None:
        """Process a batch; while commits fail, retry them first so memory stays bounded.

        Only records of partitions the consumer holds *now* are applied: after a rebalance
        Faust can still hand over records it fetched for a partition that moved, and
        opening that partition here would fence its new owner. The owner reads them again
        from the committed offset, so dropping them loses nothing.
        """
        while True:
            async with self.lock:
                if not self.failing or await self.commit():
                    await self.close_unassigned(assigned)
                    owned = [record for record in records if record.partition in assigned]
                    await self.engine.process(owned)
                    if self.engine.commit_due():
                        await self.commit()
                    return
            await self.backoff()

    async def close_unassigned(self, assigned: set[int]) -> None:
        gone = set(self.engine.tasks) - assigned
        if gone:
            await self.engine.close(gone)
            for partition in gone:
                self.metrics.forget_partition(partition)
                for checkpoint_id in self.engine.owned.get(partition, ()):
                    for direction in ("entry", "exit"):
                        self.metrics.forget_checkpoint(checkpoint_id, direction)
            log.info("let go of partitions %s (no longer assigned)", sorted(gone))

    async def tick(self, assigned: set[int]) -> None:
        async with self.lock:
            await self.close_unassigned(assigned)
            self.engine.tick()
            if self.engine.commit_due() or self.failing:
                await self.commit()


def create_app(settings: Settings, registry: Registry | None = None) -> faust.App:
    """The worker's Faust app; ``registry`` defaults to the one ``settings`` name."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        datadir=str(settings.worker_dir),
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        consumer_auto_offset_reset="earliest",
        # Acks are off for the events topic (see the module docstring); nothing to wait for.
        stream_wait_empty=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        stream_buffer_maxsize=MAX_BATCH * 2,
        # Faust's own views (/router, /table, /graph, statistics) would tell anyone on the
        # port counts and whether an event id was seen: only /metrics and the "/" status.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    events_topic = app.topic(
        settings.topics.events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        acks=False,
    )
    outputs = KafkaOutputs(
        settings.bootstrap,
        group_id=settings.app_id,
        events_topic=settings.topics.events,
        changelog_topic=changelog_topic(settings),
        dead_letter_topic=settings.topics.dead_letter,
        alerts_topic=settings.topics.alerts,
        transactional_prefix=settings.app_id,
    )
    engine = Engine(
        EngineConfig(
            partitions=settings.partitions,
            state_dir=settings.state_dir,
            commit_interval=settings.commit_interval,
            idle_after=settings.idle_after_seconds,
            core=settings.core_config(),
        ),
        registry if registry is not None else load_registry(settings.checkpoints_file),
        LakeSink(settings.data_dir),
        outputs,
    )
    metrics = WorkerMetrics()
    worker = Worker(engine, metrics)
    app.worker_core = worker  # type: ignore[attr-defined]  # for tests

    def ours(tps: set[Any]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == settings.topics.events}

    def assigned_partitions() -> set[int]:
        return ours(app.consumer.assignment())

    @app.agent(events_topic, concurrency=1)
    async def ingest(stream: faust.Stream) -> None:
        async for events in stream.take_events(MAX_BATCH, within=BATCH_WITHIN_S):
            records = [
                SourceRecord(
                    e.message.partition,
                    e.message.offset,
                    round(e.message.timestamp * 1000),
                    e.message.key,
                    e.message.value,
                )
                for e in events
            ]
            await worker.handle(records, assigned_partitions())

    @app.timer(interval=1.0)
    async def judge_idle_partitions() -> None:
        await worker.tick(assigned_partitions())

    @app.on_partitions_revoked.connect
    async def commit_before_losing(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        # Still the owner during the revoke: commit now so the next owner starts from here.
        async with worker.lock:
            await worker.commit(ours(revoked) & set(engine.tasks))

    @app.on_partitions_assigned.connect
    async def let_go_of_moved(app: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        async with worker.lock:
            await worker.close_unassigned(ours(assigned))

    @app.on_before_shutdown.connect
    async def commit_on_shutdown(app: faust.App, **kwargs: Any) -> None:
        async with worker.lock:
            await worker.commit()
            await engine.close(set(engine.tasks))
            await outputs.close()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app
