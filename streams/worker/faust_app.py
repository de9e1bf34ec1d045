"""The Faust worker: Faust's consumer group, web server and timers around the core.

Reads like the pipeline it runs:

    crossings.events.v1 --take_events--> Engine.process (core, per partition)
        every commit interval --> Engine.commit: the lake (Parquet or DuckLake), then one
        Kafka transaction per partition (dead letters, alerts, state changelog, source
        offset), then RocksDB
    a 1 s timer --> Engine.tick (idle partitions judged on the others' clock)

A valid event read on another checkpoint's partition (a producer's null or wrong key) is
forwarded, inside the commit's transaction, to its checkpoint's partition of the same
topic, so every checkpoint's state lives in one partition; the consumer therefore reads
``read_committed`` (``consumer.py``).

Faust does not commit the events topic's offsets: the topic is declared ``acks=False``,
so Faust's consumer never records an acked offset for it, and each offset is committed
inside the partition's transaction, together with the state and outputs it produced.
Faust's tables are not used; the core keeps its own offset-stamped state (RocksDB plus a
changelog topic), which is what makes a re-delivered record recognisable.
Which records are applied, and what a rebalance or a fence does to the partitions, is
decided in ``guard.py`` (records carry the group generation they were fetched in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.types import TP

from streams.core.engine import Engine, EngineConfig
from streams.core.ports import Outputs
from streams.core.records import SourceRecord, is_rekeyed
from streams.domain.registry import Registry, RegistryError, load_registry
from streams.domain.registry_watch import RegistryWatch
from streams.ops.bounded_batches import bound_topic
from streams.ops.security import client_kwargs
from streams.ops.topics import changelog_topic
from streams.ops.web_access import middlewares
from streams.settings import Settings
from streams.sinks.select import lake_sink
from streams.worker.consumer import read_committed
from streams.worker.guard import Membership, Worker
from streams.worker.kafka_outputs import KafkaOutputs
from streams.worker.lake_upkeep import LakeUpkeep, LakeUpkeepMetrics
from streams.worker.metrics import CONTENT_TYPE_LATEST, WorkerMetrics
from streams.worker.quarantine import QuarantineBoard

log = logging.getLogger(__name__)

#: Largest batch handed to the core at once, and how long to wait to fill one.
MAX_BATCH = 5000
BATCH_WITHIN_S = 0.25


def build_engine(settings: Settings, registry: Registry, outputs: Outputs, **clocks: Any) -> Engine:
    """The worker's core, from its settings: the one place they reach the engine (the
    tests build it here too; ``clocks``: the engine's ``monotonic``/``wall_clock``)."""
    return Engine(
        EngineConfig(
            partitions=settings.partitions,
            state_dir=settings.state_dir,
            commit_interval=settings.commit_interval,
            idle_after=settings.idle_after_seconds,
            core=settings.core_config(),
        ),
        registry,
        lake_sink(
            settings.lake,
            settings.data_dir,
            roll_seconds=settings.lake_roll_seconds,
            roll_rows=settings.lake_roll_rows,
        ),
        outputs,
        **clocks,
    )


def lake_upkeep(
    settings: Settings, metrics: WorkerMetrics, *, leads: Callable[[], bool]
) -> LakeUpkeep | None:
    """The DuckLake lake's compaction and retention on a thread (``lake_upkeep.py``), on its
    own connection to the catalog; None for the Parquet lake, or a DuckDB-file catalog
    (one connection per process: ``crossings lake compact`` while the worker is stopped)."""
    config = settings.lake_upkeep
    if not settings.lake.is_ducklake or settings.lake.single_process or config.interval_seconds <= 0:
        return None
    from streams.sinks.ducklake.sink import location_of
    from streams.sinks.ducklake.upkeep import open_for_upkeep

    location = location_of(settings.lake, settings.data_dir)
    return LakeUpkeep(
        lambda: open_for_upkeep(location),
        retention_days=config.retention_days,
        interval=config.interval_seconds,
        metrics=LakeUpkeepMetrics(metrics.registry),
        leads=leads,
    )


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
        # CROSSINGS_WEB_CONFIG_FILE: TLS, and basic auth on all but the probes' paths.
        web_ssl_context=settings.web.tls.context() if settings.web and settings.web.tls else None,
        web_application_options={"middlewares": middlewares(settings.web)},
        # SASL/TLS as CROSSINGS_KAFKA_SECURITY_PROTOCOL says (broker_credentials; none for PLAINTEXT).
        **client_kwargs(settings.security, "faust"),
    )
    read_committed(app)
    # A compressed batch of the events topic is decompressed up to a bound: a bomb is
    # refused while being read, and its records dead-lettered as one (``bounded_batches``).
    bound_topic(settings.topics.events, settings.max_batch_decompressed_bytes)
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
        client=client_kwargs(settings.security, "aiokafka"),
        transaction_timeout_ms=round(settings.transaction_timeout_seconds * 1000),
    )
    engine = build_engine(
        settings, registry if registry is not None else load_registry(settings.checkpoints_file), outputs
    )
    metrics = WorkerMetrics()
    held: set[int] = set()  # the events topic's partitions this worker holds now
    upkeep = lake_upkeep(settings, metrics, leads=lambda: 0 in held)

    def ours(tps: set[Any]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == settings.topics.events}

    def membership() -> Membership:
        # Consistent while the flow is active: the consumer thread changes the generation
        # and the assignment only between a revoke and an assignment, which the main loop
        # brackets with flow_control.suspend() and resume().
        return Membership(
            generation=app.consumer_generation_id,
            partitions=frozenset(ours(app.consumer.assignment())),
            active=app.flow_control.is_active(),
        )

    def rejoin() -> None:
        # As Kafka Streams does when a task's producer is fenced: rejoin the group, so its
        # next generation says who owns what. aiokafka's coordinator lives on the
        # consumer's own thread and loop.
        thread = app.consumer._thread  # type: ignore[attr-defined]
        coordinator = thread._ensure_consumer()._coordinator
        thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)

    async def seek(partition: int, offset: int) -> None:
        # Faust's own seek: the fetch position and Faust's read offset (below which it
        # drops what it is handed) both go back, so the records from there come again.
        # seek_wait, not seek: Faust's seek calls the aiokafka consumer from this thread while
        # it runs on the consumer's own, and a fetch in flight there could overtake it (seen:
        # a partition sent back after its last records, never read again). seek_wait runs on
        # the consumer's thread, sets the same read offset, and waits for the position.
        try:
            await app.consumer.seek_wait({TP(settings.topics.events, partition): offset})
        except Exception as error:  # the guard's timer seeks again if nothing comes back
            log.warning("partition %d: seeking back to %d failed (%s); tried again", partition, offset, error)

    def pause(partitions: Iterable[int]) -> None:
        # Held partitions (commits failing) are not fetched; the guard drops what was.
        app.consumer.pause_partitions({TP(settings.topics.events, p) for p in partitions})

    def resume(partitions: Iterable[int]) -> None:
        app.consumer.resume_partitions({TP(settings.topics.events, p) for p in partitions})

    worker = Worker(
        engine,
        metrics,
        membership,
        rejoin=rejoin,
        seek=seek,
        pause=pause,
        resume=resume,
        board=QuarantineBoard(settings.quarantine_dir),
    )
    app.worker_core = worker  # type: ignore[attr-defined]  # for tests

    @app.agent(events_topic, concurrency=1)
    async def ingest(stream: faust.Stream) -> None:
        async for events in stream.take_events(MAX_BATCH, within=BATCH_WITHIN_S):
            delivered = [
                (
                    e.message.generation_id,
                    SourceRecord(
                        e.message.partition,
                        e.message.offset,
                        round(e.message.timestamp * 1000),
                        e.message.key,
                        e.message.value,
                        is_rekeyed(e.message.headers),
                    ),
                )
                for e in events
            ]
            await worker.handle(delivered)

    metrics.registry_checkpoints.set(len(engine.registry))
    # A registry of the user's own (CROSSINGS_CHECKPOINTS) is reloaded when it changes.
    watch = RegistryWatch(settings.checkpoints_file) if settings.checkpoints_file else None
    pending: list[Registry] = []

    def highwater(partition: int) -> int | None:
        # The consumer's last known high watermark (from its fetch responses): no request.
        try:
            return app.consumer.highwater(TP(settings.topics.events, partition))
        except Exception:  # consumer not started yet, or the partition not fetched yet
            return None

    @app.timer(interval=1.0)
    async def judge_idle_partitions() -> None:
        worker.report_lag(highwater)
        await worker.tick()
        if watch is not None:
            await reload_registry(watch, pending)

    async def reload_registry(watch: RegistryWatch, pending: list[Registry]) -> None:
        try:
            changed = watch.poll()
        except RegistryError as error:
            metrics.registry_reloads.labels("refused").inc()
            log.error("registry not reloaded, the one in use stays: %s", error)
            return
        if changed is not None:
            pending[:] = [changed]
        if pending and await worker.use_registry(pending[0]):
            new = pending.pop()
            metrics.registry_reloads.labels("applied").inc()
            metrics.registry_checkpoints.set(len(new))
            log.info("registry reloaded from %s: %d checkpoints", watch.path, len(new))

    @app.on_partitions_revoked.connect
    async def commit_before_losing(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        held.difference_update(ours(revoked))
        await worker.on_revoked(ours(revoked))

    @app.on_partitions_assigned.connect
    async def let_go_of_moved(app: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        held.clear()
        held.update(ours(assigned))
        if upkeep is not None:
            upkeep.start()  # once: compaction and retention of the DuckLake lake
        await worker.on_assigned(ours(assigned))

    @app.on_before_shutdown.connect
    async def commit_on_shutdown(app: faust.App, **kwargs: Any) -> None:
        if upkeep is not None:
            upkeep.stop()
        await worker.shutdown()
        await outputs.close()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        # Answered by the event loop that runs the stream: a hung loop does not answer.
        return web.json({"alive": True})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        readiness = worker.readiness()
        return web.json(readiness.as_json(), status=200 if readiness.ready else 503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app
