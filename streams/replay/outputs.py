"""Outputs without Kafka: for ``crossings replay`` over files, the tests and benchmarks.

No changelog (the local store is the only state) and no source offsets to commit;
dead letters and alerts are kept in memory for the caller to report or write out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from streams.core.effects import CommitBatch, DeadLetter, Forward
from streams.core.store import Change


class LocalOutputs:
    def __init__(self) -> None:
        self.dead_letters: list[DeadLetter] = []
        self.alerts: list[Any] = []  # alert_type.Alert
        #: Events of a checkpoint read on another's partition. Not sent anywhere: over a
        #: topic the worker has processed, its re-keyed copies are there to be counted.
        self.forwards: list[Forward] = []
        self.commits = 0

    async def open_partition(self, partition: int) -> None:
        return None

    async def close_partition(self, partition: int) -> None:
        return None

    async def changelog_end(self, partition: int) -> int | None:
        return None

    async def read_changelog(
        self, partition: int, start: int, end: int
    ) -> AsyncIterator[list[tuple[int, Change]]]:
        return
        yield  # pragma: no cover - an empty async generator

    async def publish(self, batch: CommitBatch, write_files: Callable[[], object]) -> int | None:
        write_files()
        self.dead_letters += batch.dead_letters
        self.alerts += batch.alerts
        self.forwards += batch.forwards
        self.commits += 1
        return None
