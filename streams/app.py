"""The Faust application: topics, tables and agents wiring the pipeline together.

Reads like the pipeline it runs:

    crossings.events.v1 --ingest--> Pipeline.process --> day_profiles / seen_event_ids (tables)
                            |                       \\--> Parquet (flushed before each commit)
                            \\--> crossings.events.dlq.v1 (invalid, original bytes + reason)
    every event + a 1 s timer  --> detector --> crossings.alerts.v1 (+ log, Parquet)

Agent concurrency stays at 1: with more, Faust can commit an offset past a message a
sibling is still processing (faust-streaming #606), and counts would be lost on a crash.
Tables are plain (not windowed) with the local day in the key, so nothing depends on
Faust's wall-clock window expiry (#385, #193).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import timedelta
from typing import Any

import faust
from faust.sensors import Sensor

from streams.metrics import CONTENT_TYPE_LATEST, WorkerMetrics
from streams.parquet_sink import ParquetSink
from streams.pipeline import Outcome, Pipeline, PipelineTables
from streams.settings import Settings
from streams.topics import TABLES

log = logging.getLogger(__name__)


class FlushBeforeCommit(Sensor):
    """Faust calls this as a commit starts: Parquet output lands before offsets move.

    If writing fails the exception aborts the commit, so the events are consumed again
    after a restart instead of being lost (at-least-once for the files).
    """

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def on_commit_initiated(self, consumer: Any) -> Any:
        self.pipeline.flush()


def dead_letter_headers(outcome: Outcome, message: Any) -> list[tuple[str, bytes]]:
    """Kafka Connect style DLQ context: the value stays the original bytes."""
    assert outcome.error is not None
    return [
        ("crossings.dlq.reason", outcome.error.reason.encode()),
        ("crossings.dlq.detail", outcome.error.detail.encode("utf-8", "replace")[:1000]),
        ("crossings.dlq.topic", str(message.topic).encode()),
        ("crossings.dlq.partition", str(message.partition).encode()),
        ("crossings.dlq.offset", str(message.offset).encode()),
    ]


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        datadir=str(settings.worker_dir),
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        broker_commit_interval=settings.commit_interval,
        producer_acks=-1,
        # Changelog writes are many small messages: with the default linger of 0 every
        # one becomes its own produce request (one socket write + one response each).
        producer_linger=0.05,
        producer_max_batch_size=262_144,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        topic_disable_leader=True,
        # Table keys and values are JSON (str keys, dict values) in their changelogs.
        key_serializer="json",
        value_serializer="json",
    )
    events_topic = app.topic(
        settings.topics.events, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )
    dead_letter_topic = app.topic(settings.topics.dead_letter, value_serializer="raw", key_serializer="raw")
    alerts_topic = app.topic(settings.topics.alerts, value_serializer="raw", key_serializer="raw")

    def table(name: str, help_: str) -> faust.Table:
        return app.Table(name, partitions=settings.partitions, help=help_)

    profiles_table, seen_table, state_table = TABLES
    tables = PipelineTables(
        profiles=table(profiles_table, "checkpoint|direction|local_day -> total, hourly, groups"),
        seen=table(seen_table, "event_id -> occurred_at (unix s), for de-duplication"),
        detector_state=table(state_table, "checkpoint|direction -> open episode, last hour"),
    )
    metrics = WorkerMetrics()
    writer_id = f"{socket.gethostname()}-{os.getpid()}"
    pipeline = Pipeline(
        tables,
        ParquetSink(settings.data_dir, writer_id),
        metrics,
        dedup_horizon=timedelta(hours=settings.dedup_horizon_hours),
        idle_after=settings.idle_after_seconds,
    )
    app.sensors.add(FlushBeforeCommit(pipeline))
    app.pipeline = pipeline  # type: ignore[attr-defined]  # for tests and the CLI
    app.metrics = metrics  # type: ignore[attr-defined]

    async def publish_alerts(alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            await alerts_topic.send(key=alert["episode_id"].encode(), value=json.dumps(alert).encode())

    @app.agent(events_topic, concurrency=1)
    async def ingest(stream: faust.Stream) -> None:
        async for event in stream.events():
            message = event.message
            outcome = pipeline.process(
                message.value, partition=message.partition, offset=message.offset, append_ts=message.timestamp
            )
            if outcome.status == "invalid":
                await dead_letter_topic.send(
                    key=message.key, value=message.value, headers=dead_letter_headers(outcome, message)
                )
            elif outcome.alerts:
                await publish_alerts(outcome.alerts)

    @app.timer(interval=1.0)
    async def evaluate_quiet_checkpoints() -> None:
        await publish_alerts(pipeline.tick())

    @app.on_partitions_assigned.connect
    async def forget_moved_partitions(app: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        pipeline.keep_partitions(
            {tp.partition for tp in assigned if tp.topic == events_topic.get_topic_name()}
        )

    @app.on_before_shutdown.connect
    async def flush_on_shutdown(app: faust.App, **kwargs: Any) -> None:
        pipeline.flush()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app
