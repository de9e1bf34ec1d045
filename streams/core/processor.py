"""Apply records of one partition to its state, in offset order, and collect the effects.

The whole per-event path, without Faust or Kafka: the worker, ``crossings replay`` and the
tests drive this same code. Results depend only on the records and their order, never on
how they were cut into batches:

- a record at or below the state's ``applied_offset`` was applied before (a re-delivery
  after a crash or a rebalance) and is skipped;
- a valid event of a checkpoint that another partition owns (a producer's null or wrong
  key) is forwarded there, not counted here: every checkpoint's state lives in one
  partition (``home``; off for a processor fed only its own checkpoints);
- de-duplication, the too-late rule and the stream clock advance record by record; the
  clock is the time most of the latest events agree on (``domain.clock.agreed_time``),
  so a few events with broken clocks cannot move it;
- detectors are evaluated at each whole hour of stream time, when the first record past
  it arrives and before that record is counted, not "at the end of the batch".

Invalid input never raises: it becomes a dead letter with a reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from streams.core import refusals
from streams.core.commit_prep import freeze
from streams.core.dedup import Deduplicator, is_copy
from streams.core.detectors import DIRECTIONS, PartitionDetectors
from streams.core.effects import CommitBatch, CountedRows, DeadLetter, Effects, Forward, dead_letter
from streams.core.records import RefusedBatch, SourceRecord
from streams.core.refusals import FORWARD_HEADER_BYTES, SKIPPED, SKIPPED_KEEP_BYTES
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.core.stream_clock import StreamClock
from streams.domain.alert import alert_log_line, alert_message
from streams.domain.clock import boundaries
from streams.domain.counts import count_event, profile_key
from streams.domain.detect import Band, DetectorConfig, Transition
from streams.domain.event import CrossingEvent, EventDecoder, InvalidEvent, event_digest
from streams.domain.local_time import SLOT_SECONDS, LocalCalendar
from streams.domain.registry import Checkpoint, Registry

log = logging.getLogger(__name__)

#: A checkpoint's 15-minute slot: local day, local hour, and the appends of its folder's rows.
Slot = tuple[
    date, int, Callable[[SourceRecord], None], Callable[[CrossingEvent], None], Callable[[int], None]
]


@dataclass(frozen=True)
class CoreConfig:
    #: How long an event_id is remembered, in event time behind the partition's newest event.
    dedup_horizon_s: float = 72 * 3600
    #: Day profiles older than this (behind stream time) are forgotten; baselines use 4 weeks.
    retention_days: int = 35
    #: Detectors are evaluated at every multiple of this many seconds of stream time.
    evaluate_every_s: int = 3600
    #: After a jump of the clock, at most this many boundaries are evaluated one by one.
    max_catch_up: int = 48
    #: How far ahead of its arrival in Kafka an event may be stamped (a device clock running
    #: fast); further is dead-lettered as future_timestamp instead of moving stream time.
    max_clock_skew_s: float = 900.0
    #: A message whose value is larger is not decoded (no crossing event is near it): it is
    #: dead-lettered ``oversize``. A forwarded copy (value, key and header) never exceeds it
    #: either, so the events topic must take messages of this size.
    max_event_bytes: int = 64 * 2**10
    #: A dead letter's key and value together are cut to this many bytes (its headers say
    #: the original size and digest), so the dead-letter topic always takes it.
    dead_letter_max_bytes: int = 2**20
    detector: DetectorConfig = DetectorConfig()


class PartitionProcessor:
    """The core for one source partition: state, detectors and the effects since the last commit."""

    def __init__(
        self,
        partition: int,
        state: PartitionState,
        store: LocalStore,
        registry: Registry,
        own_checkpoints: Sequence[str],
        decoder: EventDecoder,
        config: CoreConfig = CoreConfig(),
        home: Mapping[str, int] | None = None,
    ) -> None:
        self.partition = partition
        self.state = state
        self.store = store
        self.registry = registry
        #: Checkpoints whose events the partitioner sends here: judged even with no traffic.
        self.own_checkpoints = tuple(sorted(own_checkpoints))
        self.decoder = decoder
        self.config = config
        #: Registered checkpoints that other partitions own -> their partition.
        self._elsewhere = {c: p for c, p in (home or {}).items() if p != partition}
        self.effects = Effects()
        self._calendars = {cid: LocalCalendar(cp.tz) for cid, cp in registry.items()}
        self.detectors = PartitionDetectors(registry, own_checkpoints, state, config.detector)
        self.dedup = Deduplicator(state, store)
        self.clock = StreamClock(state)
        #: (checkpoint, 15-minute slot) -> its local day and hour, and where its rows go,
        #: since the last commit: one lookup per record instead of a zone conversion.
        self._slots: dict[tuple[str, int], Slot] = {}
        #: Counted records not yet in the day profiles, by what they add to.
        self._tally: Counter[tuple[str, str, date, int, str, str]] = Counter()
        #: Offsets an operator moved aside (``crossings quarantine skip``): dead-lettered
        #: ``skipped`` instead of being read.
        self.skips: frozenset[int] = frozenset()

    # -- records ---------------------------------------------------------------------------

    def process(self, records: Sequence[SourceRecord], now: datetime) -> None:
        """Apply ``records`` (all of this partition, in offset order). An event may be stamped
        at most the decoder's skew ahead of when its record reached Kafka (``now``, the wall
        clock, for records without a broker timestamp, such as lines of a file).

        The per-record loop only decides (skip, dead-letter, too late, duplicate, count);
        what a counted record changes is aggregated and applied per run of records between
        two hour boundaries of stream time (see :meth:`_apply_tally`)."""
        state, effects = self.state, self.effects
        metrics = effects.metrics
        # Each offset once, in increasing order: a record at or below one already applied
        # (before this batch, or earlier in it) is a re-delivery and is skipped. Within one
        # batch that happens around a seek back, when records fetched before it and their
        # re-read copies are handed over together.
        applied = state.applied_offset
        fresh = []
        for record in records:
            if record.offset > applied:
                fresh.append(record)
                applied = record.offset
        metrics.redelivered += len(records) - len(fresh)
        if not fresh:
            return
        wall = now.timestamp()
        values = [record.value for record in fresh]
        limit = self.config.max_event_bytes
        refused = {
            i: refusals.oversize(len(value), limit)
            if value.__class__ is not RefusedBatch
            else refusals.batch_refused(value)  # type: ignore[arg-type]
            for i, value in enumerate(values)
            if value is not None and (len(value) > limit or value.__class__ is RefusedBatch)
        }
        if self.skips:
            refused.update(
                {i: refusals.skipped() for i, record in enumerate(fresh) if record.offset in self.skips}
            )
        for i in refused:
            values[i] = None  # never decoded
        items: list[CrossingEvent | InvalidEvent] = self.decoder.decode_all(
            values, [record.timestamp_ms / 1000 if record.timestamp_ms > 0 else wall for record in fresh]
        )
        for i, error in refused.items():
            items[i] = error
        dedup = self.dedup
        admit, vote = dedup.admit, self.clock.vote
        dedup.look_up(item.event_id for item in items if item.__class__ is CrossingEvent)  # type: ignore[union-attr]
        horizon = self.config.dedup_horizon_s
        step = self.config.evaluate_every_s
        if effects.first_offset is None:
            effects.first_offset = fresh[0].offset
        slots = self._slots
        tally = self._tally
        stream_ts = state.stream_ts
        elsewhere = self._elsewhere
        duplicates = 0
        for record, item in zip(fresh, items, strict=True):
            if item.__class__ is not CrossingEvent:
                self._dead_letter(record, item)  # type: ignore[arg-type]
                continue
            event: CrossingEvent = item  # type: ignore[assignment]
            if event.checkpoint_id in elsewhere and not record.rekeyed:
                # Judged where it belongs (stream time, lateness, duplicates), not here.
                self._forward(record, event)
                continue
            ts = event.occurred_ts
            if stream_ts is not None and ts < stream_ts - horizon:
                self._dead_letter(record, refusals.too_late(event, stream_ts, horizon))
                continue
            digest = event_digest(event)
            earlier = admit(event.event_id, digest, int(ts // 3600))
            if earlier is not None:
                if is_copy(earlier, digest):
                    duplicates += 1
                else:
                    self._dead_letter(record, refusals.conflict(event.event_id, earlier, digest))
                continue
            if not record.rekeyed:  # copies forwarded here do not vote (stream_clock)
                agreed = vote(ts)
                if agreed is not None:
                    if stream_ts is None:
                        state.evaluated_until = int(agreed // step * step)
                    elif agreed // step > stream_ts // step:
                        # Detectors see every record before this one: apply them first.
                        self._apply_tally()
                        self._evaluate_until(agreed, record.timestamp_ms)
                    state.stream_ts = stream_ts = agreed
            checkpoint_id = event.checkpoint_id
            slot_key = (checkpoint_id, int(ts // SLOT_SECONDS))
            slot = slots.get(slot_key)
            if slot is None:
                slot = slots[slot_key] = self._slot(checkpoint_id, ts)
            day, hour, add_record, add_event, add_hour = slot
            add_record(record)
            add_event(event)
            add_hour(hour)
            tally[(checkpoint_id, event.direction, day, hour, event.nationality, event.purpose)] += 1
        metrics.duplicates += duplicates
        state.applied_offset = effects.last_offset = fresh[-1].offset
        self._apply_tally()

    def _slot(self, checkpoint_id: str, ts: float) -> Slot:
        day, hour = self._calendars[checkpoint_id].day_and_hour(ts)
        effects = self.effects
        rows = effects.events.get((day, checkpoint_id))
        if rows is None:
            rows = effects.events[(day, checkpoint_id)] = CountedRows()
            effects.days_touched.add((checkpoint_id, day))
        return day, hour, rows.records.append, rows.events.append, rows.hours.append

    def _apply_tally(self) -> None:
        """Add the counted records since the last call to the day profiles, one update per
        (profile, hour, nationality, purpose) instead of one per record."""
        state, processed = self.state, self.effects.metrics.processed
        profiles, dirty = state.profiles, state.dirty_profiles
        for (checkpoint_id, direction, day, hour, nationality, purpose), n in self._tally.items():
            key = profile_key(checkpoint_id, direction, day)
            profiles[key] = count_event(profiles.get(key), hour, nationality, purpose, n)
            dirty.add(key)
            processed[(checkpoint_id, direction)] += n
        self._tally.clear()

    def _forward(self, record: SourceRecord, event: CrossingEvent) -> None:
        checkpoint_id = event.checkpoint_id
        assert record.value is not None
        size = len(record.value) + len(checkpoint_id.encode()) + FORWARD_HEADER_BYTES
        if size > self.config.max_event_bytes:
            self._dead_letter(
                record, refusals.forward_oversize(checkpoint_id, size, self.config.max_event_bytes)
            )
            return
        self.effects.forwards.append(
            Forward(
                record.partition,
                record.offset,
                self._elsewhere[checkpoint_id],
                checkpoint_id,
                record.timestamp_ms,
                record.value,
            )
        )
        self.effects.metrics.rekeyed[checkpoint_id] += 1

    def _dead_letter(self, record: SourceRecord, error: InvalidEvent) -> None:
        limit = self.config.dead_letter_max_bytes
        if error.reason == SKIPPED:  # whatever blocked its partition, its letter is small
            limit = min(limit, SKIPPED_KEEP_BYTES)
        value = record.value
        if value.__class__ is RefusedBatch:  # a batch not read: described, no bytes to keep
            letter = DeadLetter(
                record.partition, record.offset, None, None, error.reason, error.detail, batch=value
            )
        else:
            letter = dead_letter(
                record.partition, record.offset, record.key, value, error.reason, error.detail, limit
            )
        self.effects.dead_letters.append(letter)
        self.effects.metrics.invalid[error.reason] += 1
        if error.checkpoint_id is not None:
            self.effects.metrics.unknown_checkpoints[error.checkpoint_id] += 1

    # -- detection -------------------------------------------------------------------------

    def advance(self, until_ts: float, raised_at_ms: int) -> None:
        """Evaluate the detectors at every whole hour up to ``until_ts``, as if the stream
        had got there: the idle-partition timer's way of judging a silent partition."""
        if self.state.evaluated_until is not None:
            self._evaluate_until(until_ts, raised_at_ms)

    def _evaluate_until(self, until_ts: float, raised_at_ms: int) -> None:
        state = self.state
        assert state.evaluated_until is not None
        steps = boundaries(
            state.evaluated_until, until_ts, self.config.evaluate_every_s, self.config.max_catch_up
        )
        raised_at = datetime.fromtimestamp(raised_at_ms / 1000, UTC)
        for boundary in steps:
            for checkpoint, direction, transitions in self.detectors.step(
                datetime.fromtimestamp(boundary, UTC)
            ):
                self._publish(checkpoint, direction, transitions, raised_at)
            state.evaluated_until = boundary

    def _publish(
        self, checkpoint: Checkpoint, direction: str, transitions: list[Transition], raised_at: datetime
    ) -> None:
        metrics = self.effects.metrics
        for transition in transitions:
            # The post view's transitions say which direction they speak for (both, or the
            # direction it hands a closure over to).
            speaks_for = transition.direction or direction
            alert = alert_message(checkpoint, speaks_for, transition, raised_at=raised_at)
            if transition.opened:
                metrics.alerts_raised[(checkpoint.checkpoint_id, speaks_for, transition.episode.kind)] += 1
            metrics.alert_messages[(alert.status, alert.window)] += 1
            self.effects.alerts.append(alert)
            log.warning("%s", alert_log_line(alert))

    def today_counts(self) -> dict[tuple[str, str], int]:
        """(checkpoint, direction) -> crossings so far on its local day at stream time."""
        if self.state.stream_ts is None:
            return {}
        now = datetime.fromtimestamp(self.state.stream_ts, UTC)
        counts = {}
        for checkpoint_id in self.own_checkpoints:
            day = now.astimezone(self.registry[checkpoint_id].tz).date()
            for direction in DIRECTIONS:
                profile = self.state.profiles.get(profile_key(checkpoint_id, direction, day))
                counts[(checkpoint_id, direction)] = profile["total"] if profile else 0
        return counts

    def bands(self) -> dict[tuple[str, str], Band]:
        """(checkpoint, direction) -> its running day's band at the last evaluation."""
        return self.detectors.bands()

    def open_episodes(self) -> dict[tuple[str, str], str]:
        """(checkpoint, direction) -> kind of the open episode, for the alerts_open gauge."""
        return self.detectors.open_episodes()

    # -- commit ----------------------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        effects = self.effects
        return effects.last_offset is not None or bool(effects.alerts) or self.state.dirty

    def prepare_commit(self) -> CommitBatch:
        """Freeze the effects since the last commit into the batch the protocol writes."""
        self.detectors.save_dirty()
        config = self.config
        return freeze(self.partition, self.state, self.effects, config.dedup_horizon_s, config.retention_days)

    def committed(self, batch: CommitBatch, *, behind: bool = False) -> None:
        """``batch`` is durable, or (``behind``) being made durable while processing goes on."""
        self.state.committed(
            batch.changes, batch.commit_seq, batch.expired_buckets, batch.expired_profiles, behind=behind
        )
        self.effects = Effects()
        self._slots.clear()
