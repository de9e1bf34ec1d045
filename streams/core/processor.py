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

from streams.core.detectors import DIRECTIONS, PartitionDetectors
from streams.core.effects import (
    CommitBatch,
    CountedRows,
    DailySnapshot,
    DeadLetter,
    Effects,
    Forward,
    dead_letter,
    event_columns,
)
from streams.core.records import RefusedBatch, SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.alert import alert_log_line, alert_message
from streams.domain.clock import AGREEMENT_WINDOW, agreed_time, boundaries
from streams.domain.counts import count_event, group_counts, profile_key
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
            i: _oversize(len(value), limit) if value.__class__ is not RefusedBatch else _batch_refused(value)
            for i, value in enumerate(values)
            if value is not None and (len(value) > limit or value.__class__ is RefusedBatch)
        }
        if self.skips:
            refused.update({i: _skipped() for i, record in enumerate(fresh) if record.offset in self.skips})
        for i in refused:
            values[i] = None  # never decoded
        items: list[CrossingEvent | InvalidEvent] = self.decoder.decode_all(
            values, [record.timestamp_ms / 1000 if record.timestamp_ms > 0 else wall for record in fresh]
        )
        for i, error in refused.items():
            items[i] = error
        new_ids = state.new_ids
        candidates = [
            item.event_id
            for item in items
            if item.__class__ is CrossingEvent and item.event_id not in new_ids  # type: ignore[union-attr]
        ]
        remembered = self.store.remembered(candidates, state.in_flight_expired)
        committed_ids = {i: d for i, d in zip(candidates, remembered, strict=True) if d is not None}
        in_flight = state.in_flight_ids
        if in_flight:  # a commit still being made durable: its ids may not be in the store yet
            for event_id in candidates:
                hit = in_flight.get(event_id)
                if hit is not None:
                    committed_ids[event_id] = hit[1]
        horizon = self.config.dedup_horizon_s
        step = self.config.evaluate_every_s
        if effects.first_offset is None:
            effects.first_offset = fresh[0].offset
        slots = self._slots
        tally = self._tally
        stream_ts = state.stream_ts
        recent = state.recent
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
                self._too_late(record, event, stream_ts, horizon)
                continue
            event_id = event.event_id
            digest = event_digest(event)
            seen = new_ids.get(event_id)
            earlier = seen[1] if seen is not None else committed_ids.get(event_id)
            if earlier is not None:
                if earlier in (digest, ""):  # a re-sent copy (or remembered without a digest)
                    duplicates += 1
                else:
                    self._dead_letter(record, _conflict(event_id, earlier, digest))
                continue
            new_ids[event_id] = (int(ts // 3600), digest)
            if not record.rekeyed:
                # The clock is agreed on by the latest events counted here as their producers
                # sent them (not copies, nor those forwarded here from the partition they were
                # sent to, which come in no fixed order): it moves only as far as most of them
                # agree, so an event stamped far ahead is counted on its own day but does not
                # move it, and re-sending it does not add a vote.
                recent.append(ts)
                if len(recent) > AGREEMENT_WINDOW:
                    del recent[0]
                if stream_ts is None or ts > stream_ts:
                    agreed = agreed_time(recent)
                    if agreed is not None and (stream_ts is None or agreed > stream_ts):
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

    def _too_late(self, record: SourceRecord, event: CrossingEvent, stream_ts: float, horizon: float) -> None:
        behind = datetime.fromtimestamp(stream_ts, UTC) - event.occurred_at
        self._dead_letter(
            record,
            InvalidEvent(
                "too_late",
                f"occurred_at {event.occurred_at.isoformat()} is {behind} behind the partition's "
                f"stream time {datetime.fromtimestamp(stream_ts, UTC).isoformat()}, past the "
                f"{horizon / 3600:g} h de-duplication horizon",
            ),
        )

    def _forward(self, record: SourceRecord, event: CrossingEvent) -> None:
        checkpoint_id = event.checkpoint_id
        assert record.value is not None
        size = len(record.value) + len(checkpoint_id.encode()) + FORWARD_HEADER_BYTES
        if size > self.config.max_event_bytes:
            self._dead_letter(
                record,
                InvalidEvent(
                    OVERSIZE,
                    f"its copy for checkpoint {checkpoint_id}'s partition would take {size:,} bytes "
                    f"with its key and header, over the {self.config.max_event_bytes:,} bytes an "
                    "event may take (CROSSINGS_MAX_EVENT_BYTES): not forwarded, send it keyed by "
                    "its checkpoint_id",
                ),
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
            metrics.alert_messages[(alert["status"], alert["window"])] += 1
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
        state, effects = self.state, self.effects
        self.detectors.save_dirty()
        seq = state.commit_seq + 1
        changes, expired_buckets, expired_profiles = state.changes(
            commit_seq=seq, horizon_s=self.config.dedup_horizon_s, retention_days=self.config.retention_days
        )
        snapshots = []
        for checkpoint_id, day in sorted(effects.days_touched):
            rows = []
            for direction in DIRECTIONS:
                profile = state.profiles.get(profile_key(checkpoint_id, direction, day))
                if profile:
                    rows += [(direction, *group) for group in group_counts(profile)]
            snapshots.append(DailySnapshot(checkpoint_id, day, rows, state.stream_ts or 0.0))
        return CommitBatch(
            partition=self.partition,
            commit_seq=seq,
            first_offset=effects.first_offset,
            last_offset=state.applied_offset,
            events={folder: event_columns(rows) for folder, rows in effects.events.items()},
            alerts=effects.alerts,
            snapshots=snapshots,
            dead_letters=effects.dead_letters,
            changes=changes,
            forwards=effects.forwards,
            metrics=effects.metrics,
            expired_buckets=expired_buckets,
            expired_profiles=expired_profiles,
        )

    def committed(self, batch: CommitBatch, *, behind: bool = False) -> None:
        """``batch`` is durable, or (``behind``) being made durable while processing goes on."""
        self.state.committed(
            batch.changes, batch.commit_seq, batch.expired_buckets, batch.expired_profiles, behind=behind
        )
        self.effects = Effects()
        self._slots.clear()


#: Reason of a message too large to be an event, or whose forwarded copy would be.
OVERSIZE = "oversize"
#: Reason of a record an operator moved aside (``crossings quarantine skip``).
SKIPPED = "skipped"
#: A skipped record's dead letter keeps this much of it (the original stays in the events
#: topic at its offset until the topic's retention).
SKIPPED_KEEP_BYTES = 1024
#: What a forwarded copy adds besides its key: the header's name and ``<partition>/<offset>``.
FORWARD_HEADER_BYTES = 64


def _oversize(size: int, limit: int) -> InvalidEvent:
    return InvalidEvent(
        OVERSIZE,
        f"message value of {size:,} bytes, over the {limit:,} bytes an event may take "
        "(CROSSINGS_MAX_EVENT_BYTES): not decoded",
    )


def _batch_refused(batch: RefusedBatch) -> InvalidEvent:
    if batch.reason != OVERSIZE:
        return InvalidEvent(
            batch.reason,
            f"record batch at offsets {batch.base_offset}..{batch.last_offset} of {batch.topic} "
            f"partition {batch.partition}, {batch.codec}-compressed, could not be decompressed "
            f"({batch.cause}): not read, its records are in the topic at those offsets until its "
            "retention",
        )
    return InvalidEvent(
        OVERSIZE,
        f"record batch at offsets {batch.base_offset}..{batch.last_offset} of {batch.topic} "
        f"partition {batch.partition}: {batch.compressed_size:,} bytes {batch.codec}-compressed, "
        f"decompressing past the {batch.limit:,} bytes a batch may take "
        "(CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES): not read, its records are in the topic at "
        "those offsets until its retention",
    )


def _skipped() -> InvalidEvent:
    return InvalidEvent(
        SKIPPED, "moved aside by an operator (crossings quarantine skip) while its partition was quarantined"
    )


def _conflict(event_id: str, earlier: str, digest: str) -> InvalidEvent:
    return InvalidEvent(
        "duplicate_conflict",
        f"event_id {event_id} was counted with digest {earlier}; this message reuses it for a "
        f"different crossing (digest {digest}): not counted, check the producer's ids",
    )
