"""Prometheus metrics the worker exposes on ``/metrics``.

Labels are bounded by the reference data and the schema enums (checkpoint, direction,
reason, kind): never nationality or event id, so series count cannot explode.
One registry per worker, so tests can build several without global clashes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "WorkerMetrics"]

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_EVENT_AGE_BUCKETS = (1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        # ``*_created`` series double the series count and no dashboard uses them.
        disable_created_metrics()
        r = self.registry
        self.events_processed = Counter(
            "crossings_events_processed",
            "Valid, first-seen crossing events counted.",
            ["checkpoint", "direction"],
            registry=r,
        )
        self.events_invalid = Counter(
            "crossings_events_invalid", "Events sent to the dead-letter topic.", ["reason"], registry=r
        )
        self.events_duplicate = Counter(
            "crossings_events_duplicate", "Events whose event_id was already counted.", registry=r
        )
        self.today_count = Gauge(
            "crossings_today_count",
            "Crossings so far on the checkpoint's current local day (by stream time).",
            ["checkpoint", "direction"],
            registry=r,
        )
        self.alerts_raised = Counter(
            "crossings_alerts_raised",
            "Anomaly episodes opened.",
            ["checkpoint", "direction", "kind"],
            registry=r,
        )
        self.alert_messages = Counter(
            "crossings_alert_messages", "Alert messages published.", ["status", "window"], registry=r
        )
        self.alerts_open = Gauge(
            "crossings_alerts_open",
            "Episodes currently open.",
            ["checkpoint", "direction", "kind"],
            registry=r,
        )
        self.arrival_lag = Histogram(
            "crossings_arrival_to_processed_seconds",
            "Kafka append time to processed, seconds.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.event_age = Histogram(
            "crossings_event_time_to_processed_seconds",
            "Event (crossing) time to processed, seconds: large during replays and backlog uploads.",
            buckets=_EVENT_AGE_BUCKETS,
            registry=r,
        )
        self.stream_time = Gauge(
            "crossings_stream_time_seconds",
            "Newest event time seen, per source partition (unix seconds).",
            ["partition"],
            registry=r,
        )
        self.parquet_rows = Counter(
            "crossings_parquet_rows_written", "Rows written to Parquet.", ["dataset"], registry=r
        )
        self.parquet_flush_seconds = Histogram(
            "crossings_parquet_flush_seconds", "Time to flush Parquet before a commit.", registry=r
        )

    def forget_checkpoint(self, checkpoint: str, direction: str) -> None:
        """Drop the gauges of a checkpoint this worker no longer owns, so that after a
        rebalance each series is exported by one worker only (sums stay right)."""
        for gauge, labels in (
            (self.today_count, (checkpoint, direction)),
            *((self.alerts_open, (checkpoint, direction, kind)) for kind in ("surge", "drop")),
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)

    def forget_partition(self, partition: int) -> None:
        with contextlib.suppress(KeyError):
            self.stream_time.remove(str(partition))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
