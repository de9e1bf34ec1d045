"""The engine's guard in the worker: which records may be applied, when commits are retried,
and what happens to partitions that moved. No Faust here (``faust_app`` wires it to the
consumer group), so the rules are tested with a fake membership and fake outputs.

The rules:

- **Only records of the current assignment are applied.** A record is stamped with the
  consumer group generation it was fetched in (Faust's ``message.generation_id``). It is
  applied only if that is the current generation, no rebalance is under way (Faust's flow
  control is active) and its partition is assigned to this process: Faust buffers fetched
  records (``take_events``), so after a rebalance it can hand over records of a partition
  that moved, and opening that partition here would fence its new owner. Dropping them
  loses nothing: each new assignment starts reading at the group's committed offset, and
  every partition is committed when it is revoked. This is the check Faust's own stream
  iterator makes (``faust/streams.py``), made again here because a ``take_events`` batch
  can be filled before a rebalance and handed over after it.
- **Partitions that moved are let go before anything else**, including before a failed
  commit is retried, so a retry never commits a partition another process owns.
- **A partition whose commit is refused because another owner fenced it is let go** and
  not reopened within the same generation (its records are dropped); the consumer is asked
  to rejoin the group, so the group's next generation decides who owns it. Reopening it
  would fence the new owner back (the two would take turns failing).
- **No gap between what was applied and what comes next.** Dropped records are read
  again only if the consumer is sent back to them: Faust seeks each new assignment to the
  group's committed offsets, but aiokafka seeks only to a committed offset above 0, so a
  partition that has never been committed keeps the position its dropped records were
  fetched at, and they would never come back (seen in the crash test: a partition's first
  records lost when a member joined before its first commit). So the first record of each
  partition in each generation is checked against the partition's applied offset: past
  the next one, the consumer is sent back there (``seek``) and the partition's records are
  dropped until one at or below that first record arrives (re-read ones; a gap that was
  only transaction markers costs one re-read). Records already applied are skipped by the
  core, so going back is always safe.
- **A partition whose commit fails is held back alone**; the others go on counting and
  committing. Its fetching is paused and any record of it handed over meanwhile is
  dropped (memory stays bounded); the failed commit is retried with exponential backoff
  (1 s to 30 s) by the next batch or the timer, and once it is made the consumer is sent
  back to the first record dropped. What the failure was (``core.faults``) decides what
  the operator is told: a broker away is retried quietly; a full or read-only volume, a
  record whose output the broker refuses, or a failure seen three times running marks
  the partition quarantined (``crossings_partition_quarantined``, ``/readyz``, a log line
  that says what to do, ``crossings quarantine list``), still retried, so it goes on by
  itself when space or permission returns. An operator can move the record that blocks
  it to the dead-letter topic (``crossings quarantine skip``), in the next commit's
  transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from streams.core.engine import Engine, PartitionsFailed
from streams.core.faults import FaultKind
from streams.core.records import SourceRecord
from streams.core.task import CommitFailed
from streams.domain.registry import Registry
from streams.worker.metrics import WorkerMetrics
from streams.worker.quarantine import QuarantineBoard, Quarantined

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 30.0
#: Seconds of only records past a rewind's limit after which the consumer is sent back again.
RESEEK_AFTER_S = 5.0
#: Failures in a row after which a partition failing for an unknown reason is quarantined.
QUARANTINE_AFTER = 3


@dataclass
class Hold:
    """A partition held back because its last commit (or its opening) failed."""

    kind: FaultKind
    error: str
    #: Wall-clock time of the first failure in a row (for the operator).
    since: float
    attempts: int
    #: Monotonic time at which it is tried again, and the delay after the next failure.
    retry_at: float
    delay: float
    #: Offsets the failing commit holds, and the record whose output was refused.
    first_offset: int | None = None
    last_offset: int | None = None
    offset: int | None = None
    #: Lowest offset of a record dropped while held: read again once it commits.
    dropped_from: int | None = None
    quarantined: bool = False

    def describe(self, partition: int) -> str:
        what = {
            "broker": "the broker cannot be reached or refused for now: retrying by itself",
            "storage": "the lake or state volume refused a write (full, read-only or no "
            "permission) or the lake's object store or catalog cannot be reached: free space, fix "
            "the permission or bring the service back, it goes on by itself",
            "record": "the broker refused an output of one record: if it stays, move it aside with "
            f"`crossings quarantine skip --partition {partition} --offset "
            f"{self.offset if self.offset is not None else 'O'}`",
            "unknown": "an unexpected error, retried: if it stays, `crossings quarantine list` "
            f"shows the offsets; `crossings quarantine skip --partition {partition} --offset O` "
            "moves a record aside",
        }[self.kind]
        return what


@dataclass(frozen=True)
class Membership:
    """The consumer's view of the group at one instant."""

    #: Generation of the group the current assignment belongs to.
    generation: int
    #: Partitions of the events topic assigned to this process in that generation.
    partitions: frozenset[int]
    #: False while a rebalance is under way (between revoke and the end of assignment).
    active: bool = True


#: A record and the generation in which it was fetched.
Delivered = tuple[int, SourceRecord]


@dataclass(frozen=True)
class Readiness:
    """What ``/readyz`` answers: ready or not, why, and the partitions behind it."""

    ready: bool
    reason: str
    generation: int
    assigned: tuple[int, ...] = ()
    #: Partitions whose state is open (recovered): tasks open lazily, on their first batch.
    open: tuple[int, ...] = ()
    opening: tuple[int, ...] = ()
    commits_failing: bool = False
    #: Partitions held back (commits failing), each with its cause and what to do.
    held: tuple[dict[str, object], ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "reason": self.reason,
            "generation": self.generation,
            "assigned": list(self.assigned),
            "open": list(self.open),
            "opening": list(self.opening),
            "commits_failing": self.commits_failing,
            "held": list(self.held),
        }


class Worker:
    """The engine and its guard: one coroutine at a time touches partition state."""

    def __init__(
        self,
        engine: Engine,
        metrics: WorkerMetrics,
        membership: Callable[[], Membership],
        *,
        rejoin: Callable[[], None] = lambda: None,
        seek: Callable[[int, int], Awaitable[None]],
        pause: Callable[[Iterable[int]], None] = lambda partitions: None,
        resume: Callable[[Iterable[int]], None] = lambda partitions: None,
        board: QuarantineBoard | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        engine.restore_progress = metrics.restore_progress
        self.membership = membership
        self.rejoin = rejoin
        self.seek = seek
        self.pause = pause
        self.resume = resume
        self.board = board
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.lock = asyncio.Lock()
        #: Partitions held back because their commits (or opening) fail: see the docstring.
        self.held: dict[int, Hold] = {}
        #: partition -> generation in which another owner fenced it: not reopened before
        #: the group moves on to another generation.
        self.lost: dict[int, int] = {}
        #: Records dropped because they were not of the current assignment (for tests and logs).
        self.dropped = 0
        #: partition -> generation whose first record of it was checked for a gap.
        self.checked: dict[int, int] = {}
        #: partition -> offset: sent back to re-read; its records past this offset are the
        #: ones fetched before, dropped until a re-read one (at or below it) arrives.
        self.rewinding: dict[int, int] = {}
        #: partition -> (offset, monotonic time) of the last seek back, to seek again if lost.
        self.sought: dict[int, tuple[int, float]] = {}
        #: Times a partition was sent back to re-read records it had skipped (tests, logs).
        self.rewinds = 0
        #: partition -> lowest offset dropped as stale since: read again once it is ours.
        self.missed: dict[int, int] = {}
        #: An assignment was received since the last revoke (Faust revokes everything first).
        self.assignment_received = False

    # -- records ---------------------------------------------------------------------------

    @property
    def failing(self) -> bool:
        """Some partition's commits fail (it is held back; the others go on)."""
        return bool(self.held)

    async def handle(self, delivered: Sequence[Delivered]) -> None:
        """Apply a batch: held partitions whose backoff has passed are retried first, the
        records of partitions still held are dropped (read again once they commit)."""
        async with self.lock:
            await self.close_unassigned(self.membership().partitions)
            await self._retry_due()
            records = await self.without_gaps(self._hold_back(self.current(delivered)))
            try:
                await self.engine.process(records)
            except PartitionsFailed as error:  # a partition could not be opened
                for partition, failure in error.failures.items():
                    self._hold(partition, failure)
                    self._dropped(partition, [r for r in records if r.partition == partition])
            if self.engine.commit_due():
                await self.commit()

    def _hold_back(self, records: list[SourceRecord]) -> list[SourceRecord]:
        if not self.held:
            return records
        kept = []
        for record in records:
            if record.partition in self.held:
                self._dropped(record.partition, [record])
            else:
                kept.append(record)
        return kept

    def _dropped(self, partition: int, records: Sequence[SourceRecord]) -> None:
        hold = self.held.get(partition)
        if hold is None or not records:
            return
        first = min(record.offset for record in records)
        hold.dropped_from = first if hold.dropped_from is None else min(hold.dropped_from, first)
        self.dropped += len(records)

    def current(self, delivered: Sequence[Delivered]) -> list[SourceRecord]:
        """The records of ``delivered`` that belong to the current assignment (see above)."""
        now = self.membership()
        self.lost = {p: g for p, g in self.lost.items() if g == now.generation}
        if not now.active:
            kept = []
        else:
            kept = [
                record
                for generation, record in delivered
                if generation == now.generation
                and record.partition in now.partitions
                and record.partition not in self.lost
            ]
        if len(kept) < len(delivered):
            self.dropped += len(delivered) - len(kept)
            kept_ids = {id(record) for record in kept}
            for _, record in delivered:
                if id(record) not in kept_ids:
                    first = self.missed.get(record.partition, record.offset)
                    self.missed[record.partition] = min(first, record.offset)
            log.info(
                "dropped %d of %d records not of the current assignment (generation %d, partitions %s%s)",
                len(delivered) - len(kept),
                len(delivered),
                now.generation,
                sorted(now.partitions),
                "" if now.active else ", rebalancing",
            )
        return kept

    async def without_gaps(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """``records`` less those that would leave a gap after a partition's applied
        offset (see the module docstring); sends the consumer back when one would."""
        now = self.membership()
        await self._reread_missed(now)
        by_partition: dict[int, list[SourceRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        kept: list[SourceRecord] = []
        for partition, batch in by_partition.items():
            limit = self.rewinding.get(partition)
            if limit is not None:
                start = next((i for i, r in enumerate(batch) if r.offset <= limit), len(batch))
                self.dropped += start
                if start == len(batch):
                    await self._seek_again_if_lost(partition)
                    continue
                del self.rewinding[partition]
                self.sought.pop(partition, None)
                batch = batch[start:]
                self.checked[partition] = now.generation  # read again from where it was sent
            elif self.checked.get(partition) != now.generation:
                task = self.engine.tasks.get(partition)
                if task is None:
                    try:
                        task = await self.engine.open(partition)
                    except Exception as error:
                        self._hold(partition, self.engine.open_failed(partition, error, batch[0].offset))
                        self._dropped(partition, batch)
                        continue
                self.checked[partition] = now.generation
                expected = task.state.applied_offset + 1
                if batch[0].offset > expected:
                    log.info(
                        "partition %d: first record of generation %d at offset %d, past the next "
                        "to apply (%d): reading again from there",
                        partition,
                        now.generation,
                        batch[0].offset,
                        expected,
                    )
                    self.dropped += len(batch)
                    await self._read_again(partition, expected, batch[0].offset)
                    continue
            kept += batch
        return kept

    async def _reread_missed(self, now: Membership) -> None:
        """Records dropped as stale, of partitions that are this process's now: read again."""
        if not now.active or not self.missed:
            return
        missed, self.missed = self.missed, {}
        for partition, offset in sorted(missed.items()):
            if partition in self.lost:  # fenced: not before the group's next generation
                self.missed[partition] = offset
                continue
            task = self.engine.tasks.get(partition)
            if partition in now.partitions and (task is None or task.state.applied_offset < offset):
                log.info("partition %d: reading again from offset %d (dropped as stale)", partition, offset)
                await self._read_again(partition, offset, offset)

    async def _read_again(self, partition: int, offset: int, limit: int) -> None:
        """Seek back to ``offset``; drop the partition's records past ``limit`` (a record
        seen, so it comes again) until one at or below it arrives."""
        assert offset <= limit
        if partition in self.rewinding:
            offset = min(offset, self.rewinding[partition])
            limit = min(limit, self.rewinding[partition])
        await self.seek(partition, offset)
        self.rewinding[partition] = limit
        self.sought[partition] = (offset, self.clock())
        self.rewinds += 1

    async def _seek_again_if_lost(self, partition: int) -> None:
        """Long after the consumer was sent back, no record at or below the limit came
        (only later ones, or none at all once traffic stopped): the seek was lost (overtaken
        by a fetch or a rebalance's own seek), and without another the partition would wait
        or drop its records for ever. Seeking back is always safe (records already applied
        are skipped by the core). Called by batches and by the 1 s timer."""
        sought = self.sought.get(partition)
        if sought is None or self.clock() - sought[1] < RESEEK_AFTER_S:
            return
        offset = sought[0]
        log.warning(
            "partition %d: no record at or below %d came within %.0fs of sending the consumer "
            "back to %d: sending it back again",
            partition,
            self.rewinding.get(partition, offset),
            RESEEK_AFTER_S,
            offset,
        )
        await self.seek(partition, offset)
        self.sought[partition] = (offset, self.clock())
        self.rewinds += 1

    # -- commits ---------------------------------------------------------------------------

    async def commit(self, partitions: Iterable[int] | None = None, *, publish: bool = False) -> bool:
        """Commit (the lock held): by default every partition with work, but held ones only
        once their backoff has passed. False when some partition failed; it is held back
        (logged, counted), the others committed. ``publish``: the lake's staged rows too
        (partitions being let go)."""
        if partitions is None:
            now = self.clock()
            targets = {p for p in self.engine.tasks if p not in self.held or self.held[p].retry_at <= now}
        else:
            targets = set(partitions)
        try:
            reports = await self.engine.commit(targets, publish=publish)
            failures: dict[int, CommitFailed] = {}
        except PartitionsFailed as error:
            reports, failures = error.reports, error.failures
        except CommitFailed as error:  # a single failure not reported per partition
            reports, failures = [], {error.partition if error.partition is not None else -1: error}
        self._let_go_of_fenced()
        for partition, failure in failures.items():
            self._hold(partition, failure)
        for partition in targets - set(failures):
            if partition in self.held and partition in self.engine.tasks:
                await self._release(partition)
        now_s = time.time()
        for report in reports:
            gauges = report.gauges
            self.metrics.apply(report, now_s, dict(gauges.open_episodes) if gauges else {})
            if gauges is not None and gauges.stream_ts is not None:
                self.metrics.stream_time.labels(str(gauges.partition)).set(gauges.stream_ts)
                for (checkpoint_id, direction), total in gauges.today.items():
                    self.metrics.today_crossings.labels(checkpoint_id, direction).set(total)
                self.metrics.set_bands(dict(gauges.bands))
            if self.board is not None:
                with contextlib.suppress(OSError):
                    self.board.done_skips(report.batch.partition, report.batch.last_offset)
        return not failures

    def _hold(self, partition: int, failure: CommitFailed) -> None:
        """Hold ``partition`` back after ``failure`` (see the module docstring)."""
        self.metrics.commit_failures.inc()
        hold = self.held.get(partition)
        if hold is None:
            hold = self.held[partition] = Hold(
                failure.kind, str(failure), self.wall_clock(), 0, 0.0, 1.0, dropped_from=None
            )
            self.pause([partition])
        else:
            hold.delay = min(hold.delay * 2, MAX_RETRY_DELAY_S)
        hold.kind, hold.error = failure.kind, str(failure)
        hold.attempts += 1
        hold.retry_at = self.clock() + hold.delay
        hold.first_offset = failure.first_offset if failure.first_offset is not None else hold.first_offset
        hold.last_offset = failure.last_offset if failure.last_offset is not None else hold.last_offset
        hold.offset = failure.offset if failure.offset is not None else hold.offset
        quarantined = failure.kind in ("record", "storage") or (
            failure.kind == "unknown" and hold.attempts >= QUARANTINE_AFTER
        )
        newly = quarantined and not hold.quarantined
        hold.quarantined = quarantined
        self.metrics.set_held(partition, hold.kind, quarantined=quarantined)
        if newly:
            log.error(
                "partition %d QUARANTINED (%s; the other partitions go on): %s. %s",
                partition,
                hold.kind,
                hold.error,
                hold.describe(partition),
            )
        else:
            log.error(
                "partition %d held back (%s, attempt %d; the other partitions go on): %s; retrying in %.0fs",
                partition,
                hold.kind,
                hold.attempts,
                hold.error,
                hold.delay,
            )
        if quarantined and self.board is not None:
            try:
                self.board.hold(
                    Quarantined(
                        partition,
                        hold.kind,
                        hold.error,
                        hold.since,
                        hold.attempts,
                        hold.first_offset,
                        hold.last_offset,
                        hold.offset,
                        hold.describe(partition),
                    )
                )
            except OSError as error:  # the state volume may be what is full
                log.warning("partition %d: could not write its quarantine note: %s", partition, error)

    async def _release(self, partition: int) -> None:
        """``partition`` committed again: resume it and read again what was dropped."""
        hold = self.held.pop(partition)
        self.metrics.set_held(partition, None, quarantined=False)
        if self.board is not None:
            with contextlib.suppress(OSError):
                self.board.release(partition)
        self.resume([partition])
        task = self.engine.tasks.get(partition)
        log.info(
            "partition %d committed again after %d failed attempt(s) over %.0fs: going on",
            partition,
            hold.attempts,
            self.wall_clock() - hold.since,
        )
        if hold.dropped_from is not None and task is not None and task.processor is not None:
            nxt = task.state.applied_offset + 1
            await self._read_again(partition, min(nxt, hold.dropped_from), hold.dropped_from)

    async def _retry_due(self) -> None:
        """Held partitions whose backoff has passed: open the ones not open, commit the rest."""
        now = self.clock()
        due = {p for p, hold in self.held.items() if hold.retry_at <= now}
        if not due:
            return
        for partition in sorted(due - set(self.engine.tasks)):
            try:
                await self.engine.open(partition)
            except Exception as error:
                self._hold(partition, self.engine.open_failed(partition, error, None))
                due.discard(partition)
                continue
            if self.held[partition].dropped_from is None:  # nothing dropped: nothing to commit
                await self._release(partition)
                due.discard(partition)
        if due:  # every one left is open now; a commit made releases it
            await self.commit(due)

    def apply_skips(self) -> None:
        """Carry out operators' skip requests for held partitions (``crossings quarantine
        skip``): the records are dead-lettered in the next commit, tried at once."""
        if self.board is None:
            return
        try:
            requests = self.board.skip_requests()
        except OSError:
            return
        for partition, offsets in requests.items():
            task = self.engine.tasks.get(partition)
            if task is None or task.skips == offsets:
                continue
            log.warning(
                "partition %d: moving the records at offsets %s to the dead-letter topic (skipped), "
                "as an operator asked",
                partition,
                sorted(offsets),
            )
            task.skip(offsets)
            if partition in self.held:
                self.held[partition].retry_at = self.clock()

    def report_lag(self, highwater: Callable[[int], int | None]) -> None:
        """Set each open partition's consumer lag: ``highwater(partition)`` (the offset the
        next message will get, as the consumer last saw it; None if not known yet) minus
        the next offset to apply. For the 1 s timer: no lock and no I/O, a few subtractions."""
        for partition, task in list(self.engine.tasks.items()):
            if task.processor is None:
                continue
            end = highwater(partition)
            if end is not None:
                lag = max(end - task.processor.state.applied_offset - 1, 0)
                self.metrics.consumer_lag.labels(str(partition)).set(lag)

    def _let_go_of_fenced(self) -> None:
        fenced = self.engine.take_fenced()
        if not fenced:
            return
        generation = self.membership().generation
        for partition in fenced:
            self.lost[partition] = generation
            self._forget(partition)
        log.warning(
            "let go of partitions %s: another owner fenced them (generation %d); asking to rejoin the group",
            sorted(fenced),
            generation,
        )
        try:
            self.rejoin()
        except Exception as error:  # the next rebalance settles it anyway
            log.warning("could not ask to rejoin the group: %s", error)

    # -- membership ------------------------------------------------------------------------

    async def close_unassigned(self, assigned: Iterable[int]) -> None:
        gone = set(self.engine.tasks) - set(assigned)
        if gone:
            await self.engine.close(gone)
            for partition in gone:
                self._forget(partition)
            log.info("let go of partitions %s (no longer assigned)", sorted(gone))

    def _forget(self, partition: int) -> None:
        self.checked.pop(partition, None)
        self.rewinding.pop(partition, None)
        self.sought.pop(partition, None)
        if self.held.pop(partition, None) is not None and self.board is not None:
            with contextlib.suppress(OSError):
                self.board.release(partition)
        self.metrics.forget_partition(partition)
        for checkpoint_id in self.engine.owned.get(partition, ()):
            self.metrics.forget_checkpoint(checkpoint_id)

    async def tick(self) -> None:
        """The 1 s timer: let go of moved partitions, carry out skip requests, judge idle
        ones, retry held partitions whose backoff has passed, commit when due."""
        async with self.lock:
            await self.close_unassigned(self.membership().partitions)
            for partition in list(self.rewinding):  # a seek back lost when nothing comes after
                await self._seek_again_if_lost(partition)
            self.apply_skips()
            self.engine.tick(self.held)
            await self._retry_due()
            if self.engine.commit_due():
                await self.commit()

    async def use_registry(self, registry: Registry) -> bool:
        """Switch registries at a commit point: commit everything, then reconfigure the
        engine. False (nothing changed) while commits fail; the caller tries again."""
        async with self.lock:
            if self.held or not await self.commit():
                return False
            # Gauges of checkpoints that move away or are dropped are cleared, as on a rebalance.
            before = {cid for p in self.engine.tasks for cid in self.engine.owned.get(p, ())}
            self.engine.use_registry(registry)
            after = {cid for p in self.engine.tasks for cid in self.engine.owned.get(p, ())}
            for checkpoint_id in before - after:
                self.metrics.forget_checkpoint(checkpoint_id)
            return True

    async def on_revoked(self, revoked: Iterable[int]) -> None:
        """Still the owner during the revoke: commit now so the next owner starts from here
        (whatever the backoff says: this is the last chance)."""
        self.assignment_received = False
        async with self.lock:
            await self.commit(set(revoked) & set(self.engine.tasks), publish=True)

    async def on_assigned(self, assigned: Iterable[int]) -> None:
        async with self.lock:
            await self.close_unassigned(assigned)
            await self._reread_missed(self.membership())
            # A rebalance resumes every partition it assigns: held ones stay paused.
            still_held = set(self.held) & set(assigned)
            if still_held:
                self.pause(still_held)
        self.assignment_received = True

    # -- readiness -------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Ready means: this process is a settled member of the consumer group (an
        assignment received, no rebalance under way, no fenced partition waiting for the
        group to rejoin) and no partition's state is being recovered. Partitions open
        lazily, on their first batch (fence the earlier owner, catch the store up with the
        changelog, clean the lake), so readiness drops while one opens and comes back when
        its state is recovered; an assigned partition that has had no records yet has
        nothing to recover. Partitions held back (commits failing) are listed with their
        cause and what to do, but keep it ready: the others are served, and the worker
        still owns them and retries (``crossings_partition_quarantined`` alerts)."""
        now = self.membership()
        opening = tuple(sorted(self.engine.opening))
        ready = False
        if not self.assignment_received:
            reason = "waiting for a partition assignment from the consumer group"
        elif not now.active:
            reason = "the consumer group is rebalancing"
        elif any(g == now.generation for g in self.lost.values()):
            reason = f"partitions {sorted(self.lost)} were fenced by another owner; rejoining the group"
        elif opening:
            reason = f"recovering the state of partitions {list(opening)}"
        else:
            ready, reason = True, "consumer group stable; no partition state being recovered"
        return Readiness(
            ready=ready,
            reason=reason,
            generation=now.generation,
            assigned=tuple(sorted(now.partitions)),
            open=tuple(sorted(self.engine.tasks)),
            opening=opening,
            commits_failing=self.failing,
            held=tuple(
                {
                    "partition": partition,
                    "cause": hold.kind,
                    "quarantined": hold.quarantined,
                    "attempts": hold.attempts,
                    "error": hold.error[:500],
                    "first_offset": hold.first_offset,
                    "last_offset": hold.last_offset,
                    "offset": hold.offset,
                    "what_to_do": hold.describe(partition),
                }
                for partition, hold in sorted(self.held.items())
            ),
        )

    async def shutdown(self) -> None:
        async with self.lock:
            await self.commit(publish=True)
            await self.engine.close(set(self.engine.tasks))
