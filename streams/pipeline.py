"""What happens to one message, from raw bytes to counts, alerts and history rows.

This is the whole per-event path, written against plain mappings so it runs the same
inside a Faust agent (where the mappings are changelogged tables), in unit tests (dicts)
and in offline replays. It does not import Faust and never raises on bad input: an
invalid message comes back as an ``Outcome`` for the caller to dead-letter.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from streams.alerts import alert_message
from streams.checkpoints import Checkpoint, checkpoints
from streams.counts import DayProfile, count_event, group_counts, profile_key
from streams.dedup import SeenValue, seen_value
from streams.detect import CheckpointDetector, DetectorConfig
from streams.events import CrossingEvent, InvalidEvent, decode_event
from streams.local_day import local_day_and_hour
from streams.metrics import WorkerMetrics
from streams.parquet_sink import EventRow, ParquetSink

log = logging.getLogger(__name__)

DIRECTIONS = ("entry", "exit")


@dataclass
class Outcome:
    status: Literal["counted", "duplicate", "invalid"]
    event: CrossingEvent | None = None
    error: InvalidEvent | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PipelineTables:
    """The state that must survive a restart; Faust tables in the worker, dicts in tests."""

    profiles: MutableMapping[str, DayProfile]
    seen: MutableMapping[str, SeenValue]
    detector_state: MutableMapping[str, dict[str, Any]]


class Pipeline:
    def __init__(
        self,
        tables: PipelineTables,
        sink: ParquetSink,
        metrics: WorkerMetrics,
        *,
        dedup_horizon: timedelta = timedelta(hours=72),
        prune_batch: int = 16,
        detector_config: DetectorConfig = DetectorConfig(),
        idle_after: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tables = tables
        self.sink = sink
        self.metrics = metrics
        self.dedup_horizon = dedup_horizon
        #: At most this many expired ids are forgotten per pruning step, so the deletes
        #: (changelog tombstones in the worker) trickle out with the traffic instead of
        #: arriving as one burst that stalls the stream while the producer drains it.
        self.prune_batch = prune_batch
        #: Per partition, a min-heap of (occurred_at, event_id) over the ids in ``seen``:
        #: pruning pops the expired head instead of scanning the whole table. A partition
        #: is in it once this process has restored the partition's state.
        self._seen_index: dict[int, list[tuple[float, str]]] = {}
        self.detector_config = detector_config
        self.checkpoints = checkpoints()
        self._detectors: dict[tuple[str, str], CheckpointDetector] = {}
        #: Newest event time per source partition: the clock detection runs on. Per
        #: partition, because partitions of one topic are consumed at different paces.
        self.stream_time: dict[int, datetime] = {}
        self._partition_of: dict[str, int] = {}
        self._dirty_days: set[tuple[str, date]] = set()
        #: Detector states changed by ``tick`` (outside stream iteration, where a Faust
        #: table cannot tell which partition to log to); saved with the next event of
        #: the checkpoint's partition.
        self._unsaved_states: set[tuple[str, str]] = set()
        #: Wall-clock seconds without a message after which a partition is idle: its clock
        #: then follows the slowest active partition instead of standing still.
        self.idle_after = idle_after
        self._monotonic = monotonic
        self._last_message_at: dict[int, float] = {}

    # -- per event -----------------------------------------------------------------------

    def process(
        self, raw: bytes | None, *, partition: int, offset: int, append_ts: float | None = None
    ) -> Outcome:
        """Count one message. Invalid input is returned as an outcome, never raised."""
        now = time.time()
        self._last_message_at[partition] = self._monotonic()
        if self._unsaved_states:
            self._save_states_of_partition(partition)
        if partition not in self._seen_index:
            self._restore_partition(partition)
        self._forget_expired(partition, self.prune_batch)
        try:
            event = decode_event(raw)
        except InvalidEvent as error:
            self.metrics.events_invalid.labels(error.reason).inc()
            return Outcome("invalid", error=error)
        occurred_ts = event.occurred_at.timestamp()
        too_late = self._too_late(partition, event)
        if too_late is not None:
            self.metrics.events_invalid.labels(too_late.reason).inc()
            return Outcome("invalid", event=event, error=too_late)
        if event.event_id in self.tables.seen:
            self.metrics.events_duplicate.inc()
            return Outcome("duplicate", event=event)
        self.tables.seen[event.event_id] = seen_value(occurred_ts, partition)
        heapq.heappush(self._seen_index[partition], (occurred_ts, event.event_id))

        checkpoint = self.checkpoints[event.checkpoint_id]
        day, hour = local_day_and_hour(event.occurred_at, checkpoint.tz)
        key = profile_key(event.checkpoint_id, event.direction, day)
        profile = count_event(self.tables.profiles.get(key), hour, event.nationality, event.purpose)
        self.tables.profiles[key] = profile
        self._dirty_days.add((event.checkpoint_id, day))
        self.sink.add_event(
            EventRow(
                event_id=event.event_id,
                checkpoint_id=event.checkpoint_id,
                local_day=day,
                direction=event.direction,
                occurred_at=event.occurred_at,
                local_hour=hour,
                nationality=event.nationality,
                purpose=event.purpose,
                mode=event.mode,
                outcome=event.outcome,
                kafka_partition=partition,
                kafka_offset=offset,
                processed_at=datetime.fromtimestamp(now, timezone.utc),
            )
        )

        self.metrics.events_processed.labels(event.checkpoint_id, event.direction).inc()
        self.metrics.event_age.observe(max(now - occurred_ts, 0.0))
        if append_ts is not None:
            self.metrics.arrival_lag.observe(max(now - append_ts, 0.0))

        self._partition_of[event.checkpoint_id] = partition
        stream_time = self._advance_stream_time(partition, event.occurred_at)
        alerts: list[dict[str, Any]] = []
        if local_day_and_hour(stream_time, checkpoint.tz)[0] == day:
            self.metrics.today_count.labels(event.checkpoint_id, event.direction).set(profile["total"])
            alerts = self._evaluate(checkpoint, event.direction, stream_time)
        return Outcome("counted", event=event, alerts=alerts)

    def _restore_partition(self, partition: int) -> None:
        """Pick the clock up where the previous owner of ``partition`` left it, and index
        the partition's remembered ids by time for pruning.

        The clock lives in process memory, but every counted id remembers its event time
        and partition in the changelogged ``seen`` table, so after a restart or a
        rebalance the newest of them is the stream time again, to within the events
        already forgotten. Without this, the first events after a restart would be judged
        on an empty clock and a replay older than the horizon could be counted twice.
        """
        seen = self.tables.seen.items()
        index = [(ts, event_id) for event_id, (ts, part) in seen if int(part) == partition]
        heapq.heapify(index)
        self._seen_index[partition] = index
        newest = max((ts for ts, _ in index), default=None)
        if newest is not None:
            self._advance_stream_time(partition, datetime.fromtimestamp(newest, timezone.utc))

    def _advance_stream_time(self, partition: int, occurred_at: datetime) -> datetime:
        current = self.stream_time.get(partition)
        if current is None or occurred_at > current:
            self.stream_time[partition] = current = occurred_at
            self.metrics.stream_time.labels(str(partition)).set(occurred_at.timestamp())
        return current

    # -- detection -----------------------------------------------------------------------

    def detector(self, checkpoint: Checkpoint, direction: str) -> CheckpointDetector:
        key = (checkpoint.checkpoint_id, direction)
        detector = self._detectors.get(key)
        if detector is None:
            profiles = self.tables.profiles
            cid = checkpoint.checkpoint_id

            def lookup(day: date) -> DayProfile | None:
                return profiles.get(profile_key(cid, direction, day))

            detector = CheckpointDetector(
                checkpoint,
                direction,
                lookup,
                self.detector_config,
                state=self.tables.detector_state.get(f"{cid}|{direction}"),
            )
            self._detectors[key] = detector
            if detector.episode is not None:  # restored from the changelog: still open
                self.metrics.alerts_open.labels(cid, direction, detector.episode.kind).inc()
        return detector

    def _save_states_of_partition(self, partition: int) -> None:
        for checkpoint_id, direction in list(self._unsaved_states):
            if self._partition_of.get(checkpoint_id) == partition:
                detector = self._detectors[(checkpoint_id, direction)]
                self.tables.detector_state[f"{checkpoint_id}|{direction}"] = detector.state()
                self._unsaved_states.discard((checkpoint_id, direction))

    def _evaluate(
        self, checkpoint: Checkpoint, direction: str, as_of: datetime, *, in_stream: bool = True
    ) -> list[dict[str, Any]]:
        detector = self.detector(checkpoint, direction)
        before = (detector.last_day, detector.last_hour)
        transitions = detector.evaluate(as_of)
        if transitions or before != (detector.last_day, detector.last_hour):
            if in_stream:
                self.tables.detector_state[f"{checkpoint.checkpoint_id}|{direction}"] = detector.state()
                self._unsaved_states.discard((checkpoint.checkpoint_id, direction))
            else:
                self._unsaved_states.add((checkpoint.checkpoint_id, direction))
        alerts = []
        for transition in transitions:
            alert = alert_message(checkpoint, direction, transition)
            labels = (checkpoint.checkpoint_id, direction, transition.episode.kind)
            if transition.opened:
                self.metrics.alerts_raised.labels(*labels).inc()
                self.metrics.alerts_open.labels(*labels).inc()
            elif transition.status == "resolved":
                self.metrics.alerts_open.labels(*labels).dec()
            self.metrics.alert_messages.labels(alert["status"], alert["window"]).inc()
            self.sink.add_alert(alert)
            log.warning("ALERT %s %s", alert["status"].upper(), alert["summary"])
            alerts.append(alert)
        return alerts

    def partition_clocks(self) -> dict[int, datetime]:
        """The time each partition's checkpoints are judged at.

        Normally a partition's own stream time. A partition that has sent nothing for
        ``idle_after`` wall-clock seconds would stop its clock, and a checkpoint alone
        in it that closed would never be seen to drop; so an idle partition follows the
        slowest *active* partition (the idle-source rule of Flink's watermarks). When
        every partition is idle nothing moves: event time is not invented from the
        wall clock, which would be wrong for replays of history.
        """
        now = self._monotonic()
        active = [
            clock
            for p, clock in self.stream_time.items()
            if now - self._last_message_at.get(p, float("-inf")) < self.idle_after
        ]
        floor = min(active, default=None)
        if floor is None:
            return dict(self.stream_time)
        return {p: max(clock, floor) for p, clock in self.stream_time.items()}

    def tick(self) -> list[dict[str, Any]]:
        """Evaluate every checkpoint seen so far at its partition's clock.

        A closed checkpoint sends no events, so its drop is only ever noticed here,
        driven by the clock of the other checkpoints sharing its partition, or of the
        other partitions once its own has gone idle.
        """
        alerts: list[dict[str, Any]] = []
        clocks = self.partition_clocks()
        for checkpoint_id, partition in self._partition_of.items():
            as_of = clocks[partition]
            checkpoint = self.checkpoints[checkpoint_id]
            for direction in DIRECTIONS:
                alerts += self._evaluate(checkpoint, direction, as_of, in_stream=False)
        return alerts

    # -- housekeeping --------------------------------------------------------------------

    def keep_partitions(self, assigned: set[int]) -> None:
        """Forget what this process knew about partitions it no longer owns.

        Called after a rebalance. Another worker now advances those checkpoints, so a
        cached detector or clock here would be stale if the partition ever came back:
        both are rebuilt from the changelogged tables instead. Detector changes made by
        the tick and not yet saved are lost with them; the new owner may then repeat an
        alert, which is the at-least-once side of the trade. Events of those partitions
        still buffered for Parquet stay buffered: the new owner sees them as duplicates
        (the seen table went with the partition), so ours is the copy that gets written.
        """
        gone = {p for p in (*self.stream_time, *self._partition_of.values()) if p not in assigned}
        if not gone:
            return
        if any(self._partition_of.get(checkpoint_id) in gone for checkpoint_id, _ in self._dirty_days):
            # Write our last snapshot of the moved checkpoint-days now, while the new owner
            # is still recovering, so it cannot land after (and over) the new owner's.
            self.flush()
        for checkpoint_id, partition in list(self._partition_of.items()):
            if partition not in gone:
                continue
            del self._partition_of[checkpoint_id]
            for direction in DIRECTIONS:
                self._detectors.pop((checkpoint_id, direction), None)
                self._unsaved_states.discard((checkpoint_id, direction))
                self.metrics.forget_checkpoint(checkpoint_id, direction)
        for partition in gone:
            self.metrics.forget_partition(partition)
            self.stream_time.pop(partition, None)
            self._last_message_at.pop(partition, None)
            self._seen_index.pop(partition, None)
        log.info("forgot partitions %s after a rebalance", sorted(gone))

    def _too_late(self, partition: int, event: CrossingEvent) -> InvalidEvent | None:
        """An event further behind its partition's stream time than the de-duplication
        horizon is refused: its id may already be forgotten, so counting it could count a
        replay twice. It is dead-lettered (nothing is lost) instead of silently dropped."""
        newest = self.stream_time.get(partition)
        if newest is None or event.occurred_at >= newest - self.dedup_horizon:
            return None
        behind = newest - event.occurred_at
        return InvalidEvent(
            "too_late",
            f"occurred_at {event.occurred_at.isoformat()} is {behind} behind the partition's "
            f"stream time {newest.isoformat()}, past the {self.dedup_horizon} de-duplication horizon",
        )

    def prune_seen(self, partition: int) -> int:
        """Forget every id of ``partition`` older than the de-duplication horizon; returns how many."""
        return self._forget_expired(partition, None)

    def _forget_expired(self, partition: int, limit: int | None) -> int:
        """Forget up to ``limit`` ids of ``partition`` past the horizon, oldest first.

        Runs inside stream iteration of that partition (the only place a Faust table can
        log the deletions to the right changelog partition). Cost is O(forgotten * log n)
        thanks to the per-partition time index, not a scan of the table.
        """
        newest = self.stream_time.get(partition)
        index = self._seen_index.get(partition)
        if newest is None or not index:
            return 0
        cutoff = newest.timestamp() - self.dedup_horizon.total_seconds()
        seen = self.tables.seen
        forgotten = 0
        while index and index[0][0] < cutoff and (limit is None or forgotten < limit):
            _, event_id = heapq.heappop(index)
            if event_id in seen:
                del seen[event_id]
                forgotten += 1
        return forgotten

    def flush(self) -> None:
        """Write buffered history to Parquet; runs right before offsets are committed.

        Raises if the files could not be written, which aborts the commit: the events
        are then processed again rather than lost.
        """
        started = time.perf_counter()
        for checkpoint_id, day in sorted(self._dirty_days):
            rows = []
            for direction in DIRECTIONS:
                profile = self.tables.profiles.get(profile_key(checkpoint_id, direction, day))
                if profile:
                    rows += [(direction, *group) for group in group_counts(profile)]
            partition = self._partition_of.get(checkpoint_id)
            as_of = self.stream_time.get(partition) if partition is not None else None
            self.sink.put_daily_counts(checkpoint_id, day, rows, as_of or datetime.now(timezone.utc))
        stats = self.sink.flush()
        self._dirty_days.clear()
        self.metrics.parquet_flush_seconds.observe(time.perf_counter() - started)
        for dataset, count in (
            ("events", stats.events_rows),
            ("daily_counts", stats.daily_counts_rows),
            ("alerts", stats.alerts_rows),
        ):
            self.metrics.parquet_rows.labels(dataset).inc(count)
