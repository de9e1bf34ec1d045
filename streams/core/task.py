"""One partition's lifecycle and the commit protocol, written once for every driver.

Commit protocol (Quix Streams' order, with a Kafka transaction as the atomic step):

1. **sinks**: the Parquet files of the commit, named by partition, commit sequence and
   offset range (a rewrite produces the same file);
2. **Kafka transaction**: dead letters, alerts, one changelog record per dirty state key
   (stamped by a meta record holding the applied offset), and the source offset, committed
   together;
3. **local store**: the same changelog records in one RocksDB write batch.

Steps 1 and 2 interleave: the transaction's records are sent and acknowledged first
(which proves this process still holds the newest producer epoch, i.e. owns the
partition), then the files are written, then the offset is added and the transaction
committed. A zombie fenced while it stalled is refused before it writes a file.

A crash before 2 completes leaves nothing visible: the transaction aborts, the offset
has not moved, and the files of step 1 have a sequence past the committed one, so they
are removed when the partition is opened again. A crash between 2 and 3 leaves the
local store behind the changelog; opening reads the changelog's tail. A record delivered
again at or below the applied offset is recognised and skipped.

A failed commit (a disk error, a broker error) raises ``CommitFailed`` after rebuilding
the state from the store and the changelog and re-applying the inputs since the last
commit, so a retry writes the same batch, byte for byte. A commit refused because another
owner fenced this one (``Fenced``) closes the task instead and raises ``PartitionFenced``:
reopening the outputs to retry would fence the new owner back.

A replay, which has no Kafka step, commits *behind* (:meth:`PartitionTask.commit_behind`):
the batch is frozen here, then its files and its store write (steps 1 and 3, in that
order) run on a thread while the next records are processed; the next commit waits for
it first. A crash leaves what the protocol above leaves (files past the store's commit
are removed on opening); a failure there fails the replay, to be run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from streams.core.effects import CommitBatch
from streams.core.faults import FaultKind, classify, refused_offset
from streams.core.ports import Fenced, Outputs, Sink
from streams.core.processor import CoreConfig, PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.detect import Band
from streams.domain.event import EventDecoder
from streams.domain.registry import Registry

log = logging.getLogger(__name__)


class CommitFailed(RuntimeError):
    """A commit did not complete; nothing of it is visible and the state is as before it
    (or, when only its last step failed, it is visible and only that step is retried).

    ``kind`` says what caused it (``core.faults``); ``offset`` is the record whose output
    the broker refused, when that was the cause; ``first_offset``/``last_offset`` bound
    the records the commit held."""

    def __init__(
        self,
        message: str,
        *,
        partition: int | None = None,
        kind: FaultKind = "unknown",
        offset: int | None = None,
        first_offset: int | None = None,
        last_offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.partition = partition
        self.kind = kind
        self.offset = offset
        self.first_offset = first_offset
        self.last_offset = last_offset


class PartitionFenced(CommitFailed):
    """A commit was refused because another owner took the partition over; the task is
    closed (what it had not committed is dropped: the new owner processes it again)."""


@dataclass(frozen=True)
class CommitReport:
    batch: CommitBatch
    flush: object
    seconds: float
    #: What the partition's gauges show once this commit is made (None: a commit made behind).
    gauges: PartitionGauges | None = None


@dataclass(frozen=True)
class PartitionGauges:
    """A snapshot of what a partition's state says, taken at its commit: the worker sets its
    gauges from this, never from the processor itself."""

    partition: int
    stream_ts: float | None
    #: (checkpoint, direction) -> crossings on its current local day.
    today: Mapping[tuple[str, str], int]
    #: (checkpoint, direction) -> the running day's band at the last evaluation.
    bands: Mapping[tuple[str, str], Band]
    #: (checkpoint, direction or both) -> kind of the episode open now.
    open_episodes: Mapping[tuple[str, str], str]

    @classmethod
    def of(cls, processor: PartitionProcessor) -> PartitionGauges:
        return cls(
            processor.partition,
            processor.state.stream_ts,
            processor.today_counts(),
            processor.bands(),
            processor.open_episodes(),
        )


#: Called while a partition opens: (partition, changelog records read, records still to
#: read), at the start, after each chunk and at the end (remaining 0). For a gauge of
#: restore progress; must be cheap (it runs on the worker's loop).
RestoreProgress = Callable[[int, int, int], None]


class PartitionTask:
    def __init__(
        self,
        partition: int,
        store_path: Path,
        sink: Sink,
        outputs: Outputs,
        registry: Registry,
        own_checkpoints: Sequence[str],
        decoder: EventDecoder,
        config: CoreConfig = CoreConfig(),
        home: Mapping[str, int] | None = None,
        restore_progress: RestoreProgress | None = None,
    ) -> None:
        self.partition = partition
        self.home = home
        self.restore_progress = restore_progress
        self.store_path = Path(store_path)
        self.sink = sink
        self.outputs = outputs
        self.registry = registry
        self.own_checkpoints = tuple(own_checkpoints)
        self.decoder = decoder
        self.config = config
        self.store: LocalStore | None = None
        self.processor: PartitionProcessor | None = None
        #: Inputs since the last commit, in order: re-applied after a failed commit.
        self._inputs: list[tuple[str, object, object]] = []
        #: Monotonic time of the last record, for the idle-partition rule.
        self.last_record_at = float("-inf")
        #: The commit being made durable behind the processing, and its completion.
        self._behind: tuple[CommitBatch, asyncio.Future[object]] | None = None
        #: (commit sequence, publish?) of a commit attempted and not yet made: its retries
        #: decide as it did, so they write the same files.
        self._plan: tuple[int, bool] | None = None
        #: A commit whose Kafka transaction committed but whose local store write failed:
        #: its retry only writes the store (its alerts, dead letters and forwards are out).
        self._published: tuple[CommitBatch, int | None] | None = None
        #: A recovery could not read the changelog's tail: whether the last attempt's
        #: transaction committed is unknown, so nothing is published before it is read.
        self._unsure = False
        #: The outputs must be opened again (a failed transaction may leave the producer
        #: unusable) before the next attempt; set until an opening succeeds.
        self._reopen = False
        #: Offsets an operator moved aside (``skip``), dead-lettered instead of read.
        self.skips: frozenset[int] = frozenset()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Fence earlier owners, catch the local store up with the changelog, load the
        state and remove files that uncommitted attempts left in the lake."""
        started = time.perf_counter()
        await self.outputs.open_partition(self.partition)
        self.store = LocalStore(self.store_path)
        read = await self._catch_up()
        self._load()
        assert self.processor is not None
        removed = self.sink.open_partition(self.partition, self.processor.state.commit_seq)
        state = self.processor.state
        log.info(
            "partition %d open in %.2fs: applied offset %d, commit %d, %d changelog records read, "
            "%d uncommitted files removed",
            self.partition,
            time.perf_counter() - started,
            state.applied_offset,
            state.commit_seq,
            read,
            removed,
        )

    async def close(self) -> None:
        """Drop what was not committed (the next owner processes it again) and let go."""
        if self._behind is not None:  # never close the store under its writer
            await asyncio.wait([self._behind[1]])
            self._behind = None
        self._inputs.clear()
        self._plan = None
        self._published = None
        self._unsure = False
        self._reopen = False
        self.processor = None
        if self.store is not None:
            self.store.close()
            self.store = None
        await self.outputs.close_partition(self.partition)

    async def _catch_up(self) -> int:
        assert self.store is not None
        end = await self.outputs.changelog_end(self.partition)
        report = self.restore_progress or (lambda partition, read, remaining: None)
        if end is None:
            report(self.partition, 0, 0)
            return 0
        start = self.store.changelog_offset()
        if start > end:
            log.warning(
                "partition %d: local state is ahead of its changelog (%d > %d; was the topic "
                "recreated?): rebuilding it from the changelog",
                self.partition,
                start,
                end,
            )
            self.store.wipe()
            start = 0
        read = 0
        report(self.partition, 0, max(end - start, 0))
        async for chunk in self.outputs.read_changelog(self.partition, start, end):
            next_offset = chunk[-1][0] + 1
            self.store.apply([change for _, change in chunk], next_offset)
            read += len(chunk)
            report(self.partition, read, max(end - next_offset, 0))
        report(self.partition, read, 0)
        return read

    def _load(self) -> None:
        assert self.store is not None
        state = PartitionState.load(self.partition, self.store)
        self.processor = PartitionProcessor(
            self.partition,
            state,
            self.store,
            self.registry,
            self.own_checkpoints,
            self.decoder,
            self.config,
            self.home,
        )
        self.processor.skips = self.skips

    def reconfigure(
        self,
        registry: Registry,
        own_checkpoints: Sequence[str],
        decoder: EventDecoder,
        home: Mapping[str, int] | None,
    ) -> None:
        """Another registry, with nothing pending: the processor is rebuilt from the store."""
        self.registry = registry
        self.own_checkpoints = tuple(own_checkpoints)
        self.decoder = decoder
        self.home = home
        if self.processor is not None:
            self._inputs.clear()
            self._load()

    # -- inputs ----------------------------------------------------------------------------

    @property
    def state(self) -> PartitionState:
        assert self.processor is not None, f"partition {self.partition} is not open"
        return self.processor.state

    def process(self, records: Sequence[SourceRecord], now: datetime, monotonic: float) -> None:
        assert self.processor is not None, f"partition {self.partition} is not open"
        self._inputs.append(("records", records, now))
        self.processor.process(records, now)
        self.last_record_at = monotonic

    def advance(self, until_ts: float, raised_at_ms: int) -> None:
        assert self.processor is not None, f"partition {self.partition} is not open"
        self._inputs.append(("advance", until_ts, raised_at_ms))
        self.processor.advance(until_ts, raised_at_ms)

    @property
    def has_pending(self) -> bool:
        """Work not yet durable: uncommitted effects, or a commit made behind still in flight."""
        return self._behind is not None or (self.processor is not None and self.processor.has_pending)

    # -- commit ----------------------------------------------------------------------------

    def _publishes(self, processor: PartitionProcessor, force: bool) -> bool | None:
        """Whether the next commit publishes the lake's staged rows (``force``: the
        partition is being let go, or the process stops); None: nothing to commit."""
        seq = processor.state.commit_seq + 1
        if self._plan is not None and self._plan[0] == seq:
            return self._plan[1]
        rows = sum(len(rows) for rows in processor.effects.events.values())
        publish = force or self.sink.publish_due(self.partition, rows)
        if not processor.has_pending and not (publish and self.sink.has_staged(self.partition)):
            return None
        return publish

    async def commit(self, *, publish: bool = False) -> CommitReport | None:
        """Make everything since the last commit durable (see the module docstring);
        ``publish``: whatever the roll policy says, publish the staged rows too."""
        await self.settle()  # a commit made behind goes first
        processor = self.processor
        if processor is None:
            return None
        if self._published is not None:
            return self._finish_published(processor)
        if self._unsure:
            await self._resolve_unsure()
            processor = self.processor
            assert processor is not None
        publishes = self._publishes(processor, publish)
        if publishes is None:
            return None
        assert self.store is not None
        started = time.perf_counter()
        batch = processor.prepare_commit()
        batch.publish = publishes
        self._plan = (batch.commit_seq, publishes)
        flushed: object = None
        files_failed = False

        def write_files() -> None:
            nonlocal flushed, files_failed
            try:
                flushed = self.sink.flush(batch)
            except BaseException:
                files_failed = True
                raise

        try:
            next_changelog_offset = await self.outputs.publish(batch, write_files)
        except Fenced as error:
            log.warning(
                "partition %d: commit %d refused, another owner fenced this one (%s): letting go",
                self.partition,
                batch.commit_seq,
                error,
            )
            await self.close()
            raise PartitionFenced(
                f"partition {self.partition}: commit {batch.commit_seq} refused: fenced by another owner"
            ) from error
        except Exception as error:
            log.error("partition %d: commit %d failed: %s", self.partition, batch.commit_seq, error)
            await self._recover(reopen=not files_failed)
            raise self._failed(batch, error) from error
        # The transaction committed: its outputs are out. A failure from here on is retried
        # by writing the store only, never by sending them again.
        self._published = (batch, next_changelog_offset)
        report = self._finish_published(processor)
        return CommitReport(report.batch, flushed, time.perf_counter() - started, report.gauges)

    def _finish_published(self, processor: PartitionProcessor) -> CommitReport:
        """Step 3 of a commit whose transaction committed (see ``_published``)."""
        assert self._published is not None and self.store is not None
        batch, next_changelog_offset = self._published
        started = time.perf_counter()
        try:
            self.store.apply(batch.changes, next_changelog_offset)
        except Exception as error:
            log.error(
                "partition %d: commit %d is in Kafka but its local state write failed (%s): "
                "retrying the write only",
                self.partition,
                batch.commit_seq,
                error,
            )
            raise self._failed(batch, error) from error
        self._published = None
        processor.committed(batch)
        self.sink.committed(self.partition, batch.commit_seq)
        self._plan = None
        self._inputs.clear()
        return CommitReport(batch, None, time.perf_counter() - started, PartitionGauges.of(processor))

    def _failed(self, batch: CommitBatch, error: BaseException) -> CommitFailed:
        return CommitFailed(
            f"partition {self.partition}: commit {batch.commit_seq} failed: {error}",
            partition=self.partition,
            kind=classify(error),
            offset=refused_offset(error),
            first_offset=batch.first_offset,
            last_offset=batch.last_offset,
        )

    async def _resolve_unsure(self) -> None:
        """Read the changelog's tail before publishing again (see ``_unsure``): if the last
        attempt committed after all, its records are skipped when re-applied."""
        try:
            await self._reopen_and_catch_up()
        except Exception as error:
            log.error("partition %d: changelog still unreadable: %s", self.partition, error)
            raise CommitFailed(
                f"partition {self.partition}: cannot tell whether the last commit was made: {error}",
                partition=self.partition,
                kind=classify(error),
            ) from error
        self._unsure = False
        self._rebuild()

    def skip(self, offsets: frozenset[int]) -> None:
        """Dead-letter the records at ``offsets`` (``skipped``) instead of reading them: the
        state is rebuilt from the store and the inputs since the last commit re-applied,
        so the next commit carries the dead letters in its transaction."""
        self.skips = frozenset(offsets)
        if self.processor is not None and self._published is None:
            self._rebuild()

    async def commit_behind(self, pool: Executor, *, publish: bool = False) -> CommitReport | None:
        """A commit for drivers without a Kafka step (the replay): frozen now, made durable
        on ``pool`` (files, then the store) while the caller processes on; the batch's
        dead letters, alerts and forwards are the caller's, in the report (``Outputs`` are
        not used). Waits for the previous one first (:meth:`settle`)."""
        await self.settle()
        processor = self.processor
        if processor is None:
            return None
        publishes = self._publishes(processor, publish)
        if publishes is None:
            return None
        store, sink = self.store, self.sink
        assert store is not None
        started = time.perf_counter()
        batch = processor.prepare_commit()
        batch.publish = publishes
        processor.committed(batch, behind=True)
        self._inputs.clear()

        def make_durable() -> object:
            flushed = sink.flush(batch)
            store.apply(batch.changes, None)
            sink.committed(batch.partition, batch.commit_seq)
            return flushed

        pending = asyncio.get_running_loop().run_in_executor(pool, make_durable)
        self._behind = (batch, pending)
        return CommitReport(batch, None, time.perf_counter() - started)

    async def settle(self) -> None:
        """Wait for the commit made behind; ``CommitFailed`` if it was not made durable
        (the task is closed then: its memory is past what the store holds)."""
        if self._behind is None:
            return
        batch, pending = self._behind
        try:
            # Shielded: a caller cancelled here (Ctrl-C) leaves it in flight, and close()
            # still waits for it before closing the store under its writer.
            await asyncio.shield(pending)
        except Exception as error:
            self._behind = None
            log.error("partition %d: commit %d failed: %s", self.partition, batch.commit_seq, error)
            await self.close()
            raise CommitFailed(
                f"partition {self.partition}: commit {batch.commit_seq} failed: {error}"
            ) from error
        self._behind = None
        assert self.processor is not None
        self.processor.state.durable()

    async def _recover(self, *, reopen: bool) -> None:
        """Back to the last committed state, then re-apply the inputs since: a retry then
        writes the same batch under the same file names.

        ``reopen``: the Kafka step failed, so its producer may be unusable (a fatal error);
        a new one is opened. Not after a fence (see ``commit``), nor when only the files
        failed: opening bumps the producer epoch, which would fence anyone else.

        Lake files are deliberately not cleaned here: another owner may be committing this
        partition right now (this one was fenced), and only opening a partition, which
        fences everyone else first, may decide which files are uncommitted."""
        assert self.store is not None
        self._reopen = self._reopen or reopen
        try:
            await self._reopen_and_catch_up()  # the failed transaction may have committed after all
        except Exception as error:  # the broker may be what failed; the store is still consistent
            log.warning("partition %d: changelog unreadable while recovering: %s", self.partition, error)
            self._unsure = True
        self._rebuild()

    async def _reopen_and_catch_up(self) -> None:
        if self._reopen:
            await self.outputs.open_partition(self.partition)
            self._reopen = False
        await self._catch_up()

    def _rebuild(self) -> None:
        """The state from the store, then the inputs since the last commit re-applied."""
        self._load()
        assert self.processor is not None
        # The transaction may have committed before the failure (a local store error after it).
        self.sink.committed(self.partition, self.processor.state.commit_seq)
        if self._plan is not None and self._plan[0] <= self.processor.state.commit_seq:
            self._plan = None  # that commit was made after all
        for kind, first, second in self._inputs:
            if kind == "records":
                self.processor.process(first, second)  # type: ignore[arg-type]
            else:
                self.processor.advance(first, second)  # type: ignore[arg-type]
