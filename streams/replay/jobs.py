"""``crossings replay --jobs N``: a replay's partitions split across processes.

State is per partition and the lake's files are named by partition, so partitions are
independent: each job replays its share (its dead letters are lake files of its commits)
and hands back its stats, which the parent sums. Jobs are started with ``spawn``, not ``fork``:
a forked copy of a process holding RocksDB, DuckDB or threads is not safe to use. A
source is a generator, which cannot cross to another process, so a job gets a ``Source``
(plain data) and builds the generator itself.

Partitions are rarely equal (a checkpoint in a surge fills its own), and the replay
takes as long as its heaviest share: a topic's partitions are dealt by their record
counts, largest first onto the lightest job, and the heaviest share runs in this process
while the others start theirs, so the longest job pays no process start-up (about a
second of imports, a fifth of a 250,000-record replay here).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from streams.core.processor import CoreConfig
from streams.core.records import SourceRecord
from streams.domain.registry import Registry
from streams.ops.security import client_kwargs
from streams.replay.prefetch import Prefetch
from streams.replay.run import COMMIT_EVERY, PARQUET, ReplayStats, replay
from streams.replay.sources import (
    DEFAULT_MAX_BATCH_BYTES,
    kafka_records,
    ndjson_records,
    parquet_records,
    partition_sizes,
    topic_partitions,
)
from streams.settings import load_security
from streams.settings.lake import LakeConfig
from streams.sinks.ducklake import writer_lock

log = logging.getLogger(__name__)


def kafka_client() -> dict[str, Any]:
    """aiokafka's security keyword arguments, from this process's environment: a spawned
    job reads them itself (an SSL context and a password are not sent between processes)."""
    return client_kwargs(load_security(os.environ), "aiokafka")


@dataclass(frozen=True)
class Source:
    """What to replay, described so that it can be sent to another process."""

    kind: Literal["kafka", "ndjson", "parquet"]
    #: Partitions of the stream: file records are routed over this many.
    partitions: int
    paths: tuple[Path, ...] = ()
    bootstrap: str = ""
    topic: str = ""
    start: int = 0
    end: int | None = None
    #: CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES: a topic's batch over it is not read.
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES

    def open(
        self, keep: Sequence[int] | None = None
    ) -> AsyncIterator[list[SourceRecord]] | Iterable[list[SourceRecord]]:
        """The batches of this source, of the partitions in ``keep`` only (None: all)."""
        if self.kind == "kafka":
            return kafka_records(
                self.bootstrap,
                self.topic,
                start=self.start,
                end=self.end,
                keep=keep,
                client=kafka_client(),
                max_batch_bytes=self.max_batch_bytes,
            )
        if self.kind == "ndjson":
            return ndjson_records(self.paths, self.partitions, keep)
        return parquet_records(self.paths, self.partitions, keep)

    def check(self) -> None:
        """Raise ValueError now for what would fail every job at once (no Parquet files)."""
        if self.kind == "parquet":
            parquet_records(self.paths, self.partitions)

    def partition_sizes(self, partitions: Sequence[int]) -> dict[int, int] | None:
        """Records to replay per partition (offsets in range; transaction markers count
        too), to deal by; None for files, whose routing is known only once read."""
        if self.kind != "kafka":
            return None
        return asyncio.run(
            partition_sizes(self.bootstrap, self.topic, partitions, self.start, self.end, kafka_client())
        )

    def partition_numbers(self) -> list[int]:
        """The partitions to deal out: the topic's own, or all of the stream's for files."""
        if self.kind != "kafka":
            return list(range(self.partitions))
        found = asyncio.run(topic_partitions(self.bootstrap, self.topic, kafka_client()))
        if not found:
            raise ValueError(f"topic {self.topic!r} does not exist or has no partitions")
        return found


@dataclass(frozen=True)
class Job:
    source: Source
    keep: tuple[int, ...]
    data_dir: Path
    state_dir: Path
    core: CoreConfig
    registry: Registry
    log_level: int
    commit_every: int
    lake: LakeConfig = PARQUET


class ReplayJobsFailed(RuntimeError):
    """Some jobs failed; the message names their partitions and what went wrong."""

    def __init__(self, failures: list[tuple[tuple[int, ...], BaseException]]) -> None:
        self.failures = failures
        parts = [f"partitions {_names(keep)}: {_describe(error)}" for keep, error in failures]
        super().__init__(
            f"{len(failures)} replay job(s) failed, the replay is incomplete: " + "; ".join(parts)
        )

    @property
    def partitions(self) -> list[int]:
        return sorted(p for keep, _ in self.failures for p in keep)


def default_jobs(partitions: int) -> int:
    return max(1, min(os.cpu_count() or 1, partitions))


def deal(
    partitions: Sequence[int], jobs: int, sizes: Mapping[int, int] | None = None
) -> list[tuple[int, ...]]:
    """Shares of ``partitions`` for ``jobs`` jobs (no job gets none).

    Without ``sizes``: round-robin, job i gets partitions i, i + jobs, ... With ``sizes``
    (records per partition): largest first, each onto the job with the fewest records so
    far (LPT: never more than 4/3 of the best possible longest job), heaviest share first.
    """
    jobs = max(1, min(jobs, len(partitions)))
    if sizes is None:
        return [tuple(partitions[i::jobs]) for i in range(jobs)]
    loads = [0] * jobs
    shares: list[list[int]] = [[] for _ in range(jobs)]
    for partition in sorted(partitions, key=lambda p: (-sizes.get(p, 0), p)):
        # Ties (empty partitions) go to the job with the fewest partitions: none is left out.
        lightest = min(range(jobs), key=lambda j: (loads[j], len(shares[j]), j))
        shares[lightest].append(partition)
        loads[lightest] += sizes.get(partition, 0)
    order = sorted(range(jobs), key=lambda j: (-loads[j], min(shares[j])))
    return [tuple(sorted(shares[j])) for j in order]


def replay_in_jobs(
    source: Source,
    shares: Sequence[tuple[int, ...]],
    *,
    data_dir: Path,
    state_dir: Path,
    core: CoreConfig,
    registry: Registry,
    commit_every: int = COMMIT_EVERY,
    lake: LakeConfig = PARQUET,
) -> ReplayStats:
    """Replay ``source`` into ``lake``, a job per share of its partitions (see ``deal``): the first share
    in this process, each other in its own; a single share runs here as ``replay`` does.
    The share run here reads its source through ``Prefetch``. Raises ``ReplayJobsFailed``
    if any job failed, once the others have finished (what every job committed stays: a
    rerun goes on from there)."""
    if len(shares) == 1:
        run = replay(
            Prefetch(partial(source.open, None)),
            partitions=source.partitions,
            data_dir=data_dir,
            state_dir=state_dir,
            core=core,
            registry=registry,
            commit_every=commit_every,
            lake=lake,
        )
        return asyncio.run(run)
    started = time.perf_counter()
    level = logging.getLogger().getEffectiveLevel()
    results: list[ReplayStats] = []
    failures: list[tuple[tuple[int, ...], BaseException]] = []

    def done(keep: tuple[int, ...], result: ReplayStats) -> None:
        results.append(result)
        log.info(
            "replay job of partitions %s: %s records in %.1fs (%s since the start)",
            _names(keep),
            f"{result.records:,}",
            result.seconds,
            f"{time.perf_counter() - started:.1f}s",
        )

    here, *elsewhere = shares
    # The heaviest share's reader first: forked while this process has one thread.
    ahead = Prefetch(partial(source.open, here))
    try:
        with (
            # The jobs write under this process's hold of a SQLite catalog's writer lock.
            writer_lock.shared_with_children(),
            ProcessPoolExecutor(len(elsewhere), mp_context=multiprocessing.get_context("spawn")) as pool,
        ):
            futures = {}
            for keep in elsewhere:
                job = Job(source, keep, data_dir, state_dir, core, registry, level, commit_every, lake)
                futures[pool.submit(run_job, job)] = keep
            # The heaviest share, here, while the others start.
            try:
                job = Job(source, here, data_dir, state_dir, core, registry, level, commit_every, lake)
                done(here, run_job(job, ahead))
            except Exception as error:
                failures.append((here, error))
            for future in as_completed(futures):
                try:
                    done(futures[future], future.result())
                except Exception as error:  # the job's own exception, or BrokenProcessPool
                    failures.append((futures[future], error))
    finally:
        ahead.close()
    if failures:
        raise ReplayJobsFailed(sorted(failures, key=lambda failure: failure[0]))
    return ReplayStats(
        records=sum(stats.records for stats in results),
        counted=sum(stats.counted for stats in results),
        duplicates=sum(stats.duplicates for stats in results),
        dead_letters=sum(stats.dead_letters for stats in results),
        alerts=sum(stats.alerts for stats in results),
        seconds=time.perf_counter() - started,
        already_applied=sum(stats.already_applied for stats in results),
    )


def run_job(job: Job, batches: Prefetch | None = None) -> ReplayStats:
    """One job: the replay of its partitions (from ``batches``, the source read ahead, or
    read here)."""
    logging.basicConfig(level=job.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(
        replay(
            batches if batches is not None else job.source.open(job.keep),
            partitions=job.source.partitions,
            data_dir=job.data_dir,
            state_dir=job.state_dir,
            core=job.core,
            registry=job.registry,
            commit_every=job.commit_every,
            lake=job.lake,
        )
    )


def _names(partitions: Iterable[int]) -> str:
    return ", ".join(str(p) for p in partitions)


def _describe(error: BaseException) -> str:
    if isinstance(error, BrokenProcessPool):
        return "its process died (killed, or out of memory?)"
    return f"{type(error).__name__}: {error}"
