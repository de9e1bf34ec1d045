"""The partitions one process owns, driven the same way by the Faust worker and the replay.

``Engine`` routes records to their partition's task, runs the idle-partition timer, and
commits on a schedule. It holds no Kafka or Faust object: those come in as ``Outputs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.core.faults import classify
from streams.core.partitioning import checkpoints_by_partition
from streams.core.ports import Outputs, Sink
from streams.core.processor import CoreConfig
from streams.core.records import SourceRecord
from streams.core.task import CommitFailed, CommitReport, PartitionFenced, PartitionTask, RestoreProgress
from streams.domain.clock import partition_clocks
from streams.domain.event import EventDecoder
from streams.domain.registry import Registry

log = logging.getLogger(__name__)


class PartitionsFailed(CommitFailed):
    """Some partitions failed (a commit, or opening one) while the others went on:
    ``failures`` by partition, and the ``reports`` of the commits that were made."""

    def __init__(self, failures: dict[int, CommitFailed], reports: list[CommitReport] | None = None) -> None:
        first = failures[min(failures)]
        super().__init__(
            "; ".join(str(failures[p]) for p in sorted(failures)),
            partition=first.partition,
            kind=first.kind,
            offset=first.offset,
            first_offset=first.first_offset,
            last_offset=first.last_offset,
        )
        self.failures = failures
        self.reports = reports or []


@dataclass(frozen=True)
class EngineConfig:
    partitions: int
    state_dir: Path
    #: Seconds between commits of a partition with pending work.
    commit_interval: float = 10.0
    #: Wall-clock seconds without records after which a partition counts as idle.
    idle_after: float = 30.0
    core: CoreConfig = CoreConfig()


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        registry: Registry,
        sink: Sink,
        outputs: Outputs,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.registry = registry
        self.sink = sink
        self.outputs = outputs
        self.decoder = EventDecoder(registry, timedelta(seconds=config.core.max_clock_skew_s))
        self.owned = checkpoints_by_partition(registry, config.partitions)
        #: Each registered checkpoint's partition: events that arrive elsewhere go there.
        self.home = {cid: p for p, cids in self.owned.items() for cid in cids}
        self.tasks: dict[int, PartitionTask] = {}
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._last_commit = monotonic()
        #: Partitions let go because another owner fenced them, until ``take_fenced``.
        self.fenced: set[int] = set()
        #: Partitions being opened right now (fence, changelog catch-up, lake clean-up):
        #: their state is not recovered yet, so the worker is not ready (``/readyz``).
        self.opening: set[int] = set()
        #: Told how far each opening partition has read its changelog (the worker's gauge).
        self.restore_progress: RestoreProgress | None = None
        #: Where commits made behind are written (one thread: they run in order).
        self._pool: ThreadPoolExecutor | None = None

    def use_registry(self, registry: Registry) -> None:
        """Switch to another registry between two commits (the caller has just committed,
        so every open partition's state is its store's): the decoder and the checkpoints
        each partition owns change, state is reloaded from the stores, nothing is lost.
        State of a checkpoint no longer registered stays until it expires."""
        if any(task.has_pending for task in self.tasks.values()):
            raise RuntimeError("use_registry needs every partition committed first")
        self.registry = registry
        self.decoder = EventDecoder(registry, timedelta(seconds=self.config.core.max_clock_skew_s))
        self.owned = checkpoints_by_partition(registry, self.config.partitions)
        self.home = {cid: p for p, cids in self.owned.items() for cid in cids}
        for partition, task in self.tasks.items():
            task.reconfigure(registry, self.owned.get(partition, ()), self.decoder, self.home)

    def task_path(self, partition: int) -> Path:
        return self.config.state_dir / f"partition-{partition:03d}"

    async def open(self, partition: int) -> PartitionTask:
        task = self.tasks.get(partition)
        if task is None:
            task = PartitionTask(
                partition,
                self.task_path(partition),
                self.sink,
                self.outputs,
                self.registry,
                self.owned.get(partition, ()),
                self.decoder,
                self.config.core,
                self.home,
                self.restore_progress,
            )
            self.opening.add(partition)
            try:
                await task.open()
            finally:
                self.opening.discard(partition)
            self.tasks[partition] = task
        return task

    async def close(self, partitions: Iterable[int]) -> None:
        for partition in sorted(partitions):
            task = self.tasks.pop(partition, None)
            if task is not None:
                await task.close()
        if not self.tasks and self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    async def settle(self) -> None:
        """Wait for every commit made behind (see :meth:`commit`); the first that failed
        raises CommitFailed."""
        for partition in sorted(self.tasks):
            await self.tasks[partition].settle()

    async def process(self, records: Sequence[SourceRecord]) -> None:
        """Apply records of any partitions (each partition's in offset order). A partition
        that cannot be opened (its changelog or store unreachable) does not stop the
        others: ``PartitionsFailed`` names it once the others are applied."""
        by_partition: dict[int, list[SourceRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        now = self._wall_clock()
        monotonic = self._monotonic()
        failures: dict[int, CommitFailed] = {}
        for partition, batch in by_partition.items():
            task = self.tasks.get(partition)
            if task is None:
                try:
                    task = await self.open(partition)
                except Exception as error:
                    failures[partition] = self.open_failed(partition, error, batch[0].offset)
                    continue
            task.process(batch, now, monotonic)
        if failures:
            raise PartitionsFailed(failures)

    def open_failed(self, partition: int, error: BaseException, first_offset: int | None) -> CommitFailed:
        """What opening ``partition`` failing is reported as (its outputs are let go)."""
        log.error("partition %d: could not be opened: %s", partition, error)
        return CommitFailed(
            f"partition {partition}: could not be opened: {error}",
            partition=partition,
            kind=classify(error),
            first_offset=first_offset,
        )

    def tick(self, held: Iterable[int] = ()) -> None:
        """Judge idle partitions on the clock of the active ones (see ``domain.clock``);
        ``held`` partitions (commits failing) are left as they are until they commit."""
        skip = set(held)
        tasks = {p: t for p, t in self.tasks.items() if t.processor is not None and p not in skip}
        clocks = partition_clocks(
            {p: t.state.stream_ts for p, t in tasks.items()},
            {p: t.last_record_at for p, t in tasks.items()},
            self._monotonic(),
            self.config.idle_after,
        )
        raised_at_ms = int(self._wall_clock().timestamp() * 1000)
        for partition, clock in clocks.items():
            task = tasks[partition]
            if task.state.stream_ts is not None and clock > task.state.stream_ts:
                task.advance(clock, raised_at_ms)

    def commit_due(self) -> bool:
        return self._monotonic() - self._last_commit >= self.config.commit_interval

    async def commit(
        self, partitions: Iterable[int] | None = None, *, behind: bool = False, publish: bool = False
    ) -> list[CommitReport]:
        """Commit every partition with pending work. Each is tried whatever the others do:
        failures raise ``PartitionsFailed`` (a ``CommitFailed``) once all were tried, with
        the reports of those committed. A partition whose commit was refused because
        another owner fenced it is dropped (its task closed itself), noted in ``fenced``,
        and the others are committed.

        ``behind`` (a replay's commits, with no Kafka step): each is made durable on a
        thread while the caller goes on (``PartitionTask.commit_behind``); :meth:`settle`
        waits for them. ``publish``: the lake's staged rows are published whatever the roll
        policy says (partitions being let go, a process stopping)."""
        self._last_commit = self._monotonic()
        reports = []
        failures: dict[int, CommitFailed] = {}
        for partition in sorted(self.tasks if partitions is None else partitions):
            task = self.tasks.get(partition)
            if task is None:
                continue
            try:
                if behind:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(1, thread_name_prefix="commit-behind")
                    report = await task.commit_behind(self._pool, publish=publish)
                else:
                    report = await task.commit(publish=publish)
            except PartitionFenced:
                del self.tasks[partition]
                self.fenced.add(partition)
                continue
            except CommitFailed as error:
                failures[partition] = error
                continue
            if report is not None:
                reports.append(report)
        if failures:
            raise PartitionsFailed(failures, reports)
        return reports

    def take_fenced(self) -> set[int]:
        """The partitions let go since the last call because another owner fenced them."""
        fenced, self.fenced = self.fenced, set()
        return fenced
