"""What the core needs from the outside world, as protocols: the worker plugs Kafka in,
``crossings replay`` and the tests plug in local stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from streams.core.effects import CommitBatch
from streams.core.store import Change


class Fenced(Exception):
    """Another owner opened the partition's outputs after this one (a newer producer epoch
    for its transactional id): this process no longer owns the partition and must let it
    go without writing again. Reopening would fence the new owner in turn."""


class Outputs(Protocol):
    """Kafka's side of a commit: messages, changelog and source offset, all or nothing."""

    async def open_partition(self, partition: int) -> None:
        """Take ownership of ``partition``'s outputs, fencing any earlier owner still alive."""

    async def close_partition(self, partition: int) -> None:
        """Give ownership back (after a rebalance moved the partition, or at shutdown)."""

    async def changelog_end(self, partition: int) -> int | None:
        """The changelog's committed end offset, or None when there is no changelog."""

    def read_changelog(self, partition: int, start: int, end: int) -> AsyncIterator[list[tuple[int, Change]]]:
        """Committed changelog records of ``partition`` in [start, end), in order, in chunks."""

    async def publish(self, batch: CommitBatch, write_files: Callable[[], object]) -> int | None:
        """Atomically publish the batch's dead letters, alerts and changelog records and
        commit its source offset; returns the next changelog offset (None: no changelog).
        ``write_files`` (the sink's flush; it may run on a worker thread, nothing else
        touches the partition meanwhile) is called before the commit point, once this
        process is known to own the partition still (a transactional producer: its records
        were accepted); if it raises, nothing is committed.
        Raises if anything failed, in which case none of it is visible to readers;
        ``Fenced`` when the failure is that another owner took the partition over."""


class Sink(Protocol):
    """A destination for committed effects (the Parquet lake)."""

    def open_partition(self, partition: int, committed_seq: int) -> int:
        """Runs when a partition is opened: remove what uncommitted attempts left behind."""

    def flush(self, batch: CommitBatch) -> object:
        """Runs in every commit before its commit point (see ``Outputs.publish``); raising
        aborts the commit."""

    def committed(self, partition: int, committed_seq: int) -> None:
        """Runs after a commit point, and after a failed commit with the sequence the
        partition's recovered state holds: commits up to ``committed_seq`` happened."""

    def publish_due(self, partition: int, rows: int) -> bool:
        """Should the partition's next commit (of ``rows`` appended rows) publish what is
        staged (``CommitBatch.publish``)?"""

    def has_staged(self, partition: int) -> bool:
        """Committed rows wait to be published: a commit is worth making even with no
        records, once :meth:`publish_due` says so."""
