"""Prometheus metrics the worker exposes on ``/metrics``.

Labels are bounded by the reference data and the schema enums (checkpoint, direction,
reason, kind) or the topic's partitions: never nationality or event id, so series count
cannot explode. One registry per worker, so tests can build several without global clashes.

Names follow Prometheus' conventions: base units (seconds), ``_total`` on counters (the
client adds it), no ``_count``/``_sum``/``_bucket`` endings on anything but histograms.
Everything that describes data moves at a commit, with the data (``apply``); only the
consumer lag (the 1 s timer) and restore progress (while a partition opens) move between.
The README lists every metric; ``deploy/prometheus`` and ``deploy/grafana`` use them.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Sequence
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

from streams.core.task import CommitReport
from streams.domain.detect import POST_DIRECTION, Band

__all__ = ["CONTENT_TYPE_LATEST", "WorkerMetrics"]

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_EVENT_AGE_BUCKETS = (1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)


#: Distinct unknown checkpoint ids given their own series; bounds what hostile input can add.
MAX_UNKNOWN_IDS = 100
OTHER_IDS = "_other"


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    _open_labels: set[tuple[str, str, str, int]] = field(default_factory=set)

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
        self.unknown_checkpoint = Counter(
            "crossings_events_unknown_checkpoint",
            "Events for a checkpoint_id not in the registry, by id: a new post to register "
            f"(the first {MAX_UNKNOWN_IDS} ids seen get a series; later ones count as {OTHER_IDS}).",
            ["checkpoint_id"],
            registry=r,
        )
        self._unknown_ids: set[str] = set()
        self.events_rekeyed = Counter(
            "crossings_events_rekeyed",
            "Events read on another checkpoint's partition (a producer's null or wrong key) and "
            "forwarded to their checkpoint's own partition, by checkpoint (registered ids only).",
            ["checkpoint"],
            registry=r,
        )
        self.registry_checkpoints = Gauge(
            "crossings_registry_checkpoints", "Checkpoints in the registry in use.", registry=r
        )
        self.registry_reloads = Counter(
            "crossings_registry_reloads",
            "Changes of the registry file seen while running: applied, or refused (the log says "
            "why; the registry in use stays).",
            ["outcome"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "crossings_events_duplicate", "Events whose event_id was already counted.", registry=r
        )
        self.today_crossings = Gauge(
            "crossings_today_crossings",
            "Crossings so far on the checkpoint's current local day (by stream time).",
            ["checkpoint", "direction"],
            registry=r,
        )
        # The running day against its expected band, at the last hourly evaluation: what the
        # detector compared, so a dashboard shows why an alert fired (or did not).
        band_labels = ["checkpoint", "direction"]
        self.band_observed = Gauge(
            "crossings_band_observed",
            "Crossings on the checkpoint's local day up to the last hourly evaluation (stream time).",
            band_labels,
            registry=r,
        )
        self.band_expected = Gauge(
            "crossings_band_expected",
            "Crossings expected by then on that local day (the detector's baseline).",
            band_labels,
            registry=r,
        )
        self.band_lower = Gauge(
            "crossings_band_lower",
            "At or below this, the running day is a drop (once at least min_expected, 100, are expected).",
            band_labels,
            registry=r,
        )
        self.band_upper = Gauge(
            "crossings_band_upper",
            "At or above this, the running day is a surge (once at least min_expected, 100, are expected).",
            band_labels,
            registry=r,
        )
        self.band_time = Gauge(
            "crossings_band_evaluated_timestamp_seconds",
            "Stream time of the evaluation the band gauges show (unix seconds; a whole hour).",
            band_labels,
            registry=r,
        )
        self._band_gauges = (
            self.band_observed,
            self.band_expected,
            self.band_lower,
            self.band_upper,
            self.band_time,
        )
        self.alerts_raised = Counter(
            "crossings_alerts_raised",
            "Anomaly episodes opened (direction both: a post-level episode, the post stopped reporting).",
            ["checkpoint", "direction", "kind"],
            registry=r,
        )
        self.alert_messages = Counter(
            "crossings_alert_messages", "Alert messages published.", ["status", "window"], registry=r
        )
        self.alerts_open = Gauge(
            "crossings_alerts_open",
            "Episodes currently open (direction both: a post-level episode).",
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
        self.commit_seconds = Histogram(
            "crossings_commit_seconds",
            "Time of one partition's commit: Parquet, Kafka transaction, local state.",
            registry=r,
        )
        self.commit_failures = Counter(
            "crossings_commit_failures",
            "Commits that failed and were retried (disk or broker errors).",
            registry=r,
        )
        self.partition_quarantined = Gauge(
            "crossings_partition_quarantined",
            "1 while the partition is held back because its commits fail for a reason retrying "
            "alone will not cure (cause: record, storage, unknown); the other partitions go on. "
            "The log and /readyz say what to do (crossings quarantine list).",
            ["partition", "cause"],
            registry=r,
        )
        self.partition_held = Gauge(
            "crossings_partition_commit_failing",
            "1 while the partition's commits fail and it is held back, retried with backoff "
            "(cause: broker, storage, record, unknown); the other partitions go on.",
            ["partition", "cause"],
            registry=r,
        )
        self.events_redelivered = Counter(
            "crossings_events_redelivered",
            "Records delivered again at or below the committed offset, recognised and skipped.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "crossings_consumer_lag_messages",
            "Messages of the events topic past this worker's applied offset, per owned partition "
            "(the consumer's last known high watermark; a transaction marker counts as 1).",
            ["partition"],
            registry=r,
        )
        self.restore_remaining = Gauge(
            "crossings_state_restore_remaining_records",
            "Changelog records still to read before the partition's state is restored (0 once open).",
            ["partition"],
            registry=r,
        )
        self.restored = Counter(
            "crossings_state_restored_records",
            "Changelog records read to restore partition state when it was opened here.",
            ["partition"],
            registry=r,
        )
        self._restore_read: dict[int, int] = {}

    def apply(self, report: CommitReport, now: float, open_episodes: dict[tuple[str, str], str]) -> None:
        """Count what one commit made durable (metrics move with the data, not before it)."""
        deltas = report.batch.metrics
        for (checkpoint, direction), n in deltas.processed.items():
            self.events_processed.labels(checkpoint, direction).inc(n)
        if deltas.duplicates:
            self.events_duplicate.inc(deltas.duplicates)
        for reason, n in deltas.invalid.items():
            self.events_invalid.labels(reason).inc(n)
        for checkpoint_id, n in deltas.unknown_checkpoints.items():
            if checkpoint_id not in self._unknown_ids and len(self._unknown_ids) < MAX_UNKNOWN_IDS:
                self._unknown_ids.add(checkpoint_id)
            label = checkpoint_id if checkpoint_id in self._unknown_ids else OTHER_IDS
            self.unknown_checkpoint.labels(label).inc(n)
        for checkpoint, n in deltas.rekeyed.items():
            self.events_rekeyed.labels(checkpoint).inc(n)
        if deltas.redelivered:
            self.events_redelivered.inc(deltas.redelivered)
        for labels, n in deltas.alerts_raised.items():
            self.alerts_raised.labels(*labels).inc(n)
        for labels, n in deltas.alert_messages.items():
            self.alert_messages.labels(*labels).inc(n)
        for columns in report.batch.events.values():
            observe_many(self.arrival_lag, [max(now - ms / 1000, 0.0) for ms in columns.kafka_timestamp_ms])
            observe_many(self.event_age, [max(now - us / 1_000_000, 0.0) for us in columns.occurred_at_us])
        flush = report.flush
        self.parquet_flush_seconds.observe(getattr(flush, "seconds", 0.0))
        for dataset in ("events", "daily_counts", "alerts"):
            rows = getattr(flush, f"{dataset}_rows", 0)
            if rows:
                self.parquet_rows.labels(dataset).inc(rows)
        self.commit_seconds.observe(report.seconds)
        partition = report.batch.partition
        for checkpoint, direction in {key[:2] for key in self._open_labels if key[3] == partition}:
            for kind in ("surge", "drop"):
                with contextlib.suppress(KeyError):
                    self.alerts_open.remove(checkpoint, direction, kind)
        self._open_labels = {key for key in self._open_labels if key[3] != partition}
        for (checkpoint, direction), kind in open_episodes.items():
            self.alerts_open.labels(checkpoint, direction, kind).set(1)
            self._open_labels.add((checkpoint, direction, kind, partition))

    def set_bands(self, bands: dict[tuple[str, str], Band]) -> None:
        """The band gauges of the checkpoints a commit's partition owns (their latest evaluation)."""
        for (checkpoint, direction), band in bands.items():
            self.band_observed.labels(checkpoint, direction).set(band.observed)
            self.band_expected.labels(checkpoint, direction).set(band.expected)
            self.band_lower.labels(checkpoint, direction).set(band.lower)
            self.band_upper.labels(checkpoint, direction).set(band.upper)
            self.band_time.labels(checkpoint, direction).set(band.as_of)

    def restore_progress(self, partition: int, read: int, remaining: int) -> None:
        """A partition opening here has read ``read`` changelog records, ``remaining`` to go."""
        label = str(partition)
        before = self._restore_read.get(partition, 0) if read else 0
        self.restored.labels(label).inc(max(read - before, 0))
        self._restore_read[partition] = read
        self.restore_remaining.labels(label).set(remaining)

    def forget_checkpoint(self, checkpoint: str) -> None:
        """Drop the gauges of a checkpoint this worker no longer owns, so that after a
        rebalance each series is exported by one worker only (sums stay right). Its open
        post-level episode (direction "both") goes with its directions' series."""
        for direction in ("entry", "exit"):
            for gauge, labels in (
                (self.today_crossings, (checkpoint, direction)),
                *((band, (checkpoint, direction)) for band in self._band_gauges),
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        for direction in ("entry", "exit", POST_DIRECTION):
            for kind in ("surge", "drop"):
                with contextlib.suppress(KeyError):
                    self.alerts_open.remove(checkpoint, direction, kind)
        self._open_labels = {key for key in self._open_labels if key[0] != checkpoint}

    def forget_partition(self, partition: int) -> None:
        for gauge in (self.stream_time, self.consumer_lag, self.restore_remaining):
            with contextlib.suppress(KeyError):
                gauge.remove(str(partition))
        self.set_held(partition, None, quarantined=False)

    def set_held(self, partition: int, cause: str | None, *, quarantined: bool) -> None:
        """The partition's hold gauges: ``cause`` None clears them (commits succeed again)."""
        for gauge in (self.partition_held, self.partition_quarantined):
            for labels in [labels for labels in _label_sets(gauge) if labels[0] == str(partition)]:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        if cause is not None:
            self.partition_held.labels(str(partition), cause).set(1)
            if quarantined:
                self.partition_quarantined.labels(str(partition), cause).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _label_sets(gauge: Gauge) -> list[tuple[str, ...]]:
    return list(gauge._metrics)  # type: ignore[attr-defined]  # prometheus_client keeps children by labels


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe`` for each amount, with one increment per bucket rather than
    per amount (a commit observes every counted event twice). Only for a histogram that
    one coroutine updates, as the worker's are.

    It adds to the client's own bucket and sum values (prometheus-client is pinned, and a
    test holds the exposition equal to observing one by one).
    """
    if not amounts:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = histogram._sum.get()
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # observe() takes the first bound >= amount
        total += amount  # in observe()'s order, so the float sum is the same to the last bit
    histogram._sum.set(total)
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)
