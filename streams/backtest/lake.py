"""``crossings backtest`` on a lake: the worker's own core over the events it counted.

A lake's ``daily_counts/`` says how many crossed each day, not when each crossing reached
the worker, and the worker judged neither whole days nor a day cut at each hour: it judged
each whole hour of its partition's *stream time* (the time its latest events agree on,
``domain.clock``) when the first record past it arrived, with the counts of every record
that had arrived by then (a late upload counted after its hour was judged; an event ahead
of the clock counted before). Judged from daily totals, the same detector raised other
episodes (Sunday surges at a post whose Sundays the hourly view explains, a closure
resolved two days late).

So a lake is judged from its events (the ``events`` table of a DuckLake lake, the
``events/`` folder of a Parquet one): every row carries the partition and offset its
record had in the events topic, and its broker timestamp. The rows are fed, partition by
partition in offset order (the order the worker read them), through the worker's
``PartitionProcessor`` (clock, catch-up limit, counting, the detectors of each partition's
checkpoints and their post view) with a state kept in memory, committed every
``COMMIT_EVERY`` records as the worker commits (so day profiles past the retention are
forgotten as they were). The alerts it raises are the worker's, message for message.

What a lake cannot say: when the idle-partition timer (wall clock) judged a partition that
had stopped receiving records on the clock of the others; and which rows were copies
forwarded from another partition (``crossings.rekeyed.from``: the worker did not let those
move the clock; here every row does). The lake holds only counted events, so dead letters,
duplicates and records refused as too late are not replayed, as they changed nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from streams.backtest.run import EpisodeRow, alert_episodes
from streams.backtest.series import SeriesError, unknown_checkpoint
from streams.core.processor import CoreConfig, PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.domain.event import EventDecoder
from streams.domain.registry import Checkpoint
from streams.replay.sources import (
    LAKE_EVENT_COLUMNS,
    ducklake_events,
    is_ducklake_folder,
    lake_event_value,
    sorting_connection,
)
from streams.settings.lake import CATALOG_FILE
from streams.sinks.parquet.layout import EVENTS, STAGING

#: Records of one partition between two commits of the in-memory state.
COMMIT_EVERY = 5000


def is_lake(path: Path) -> bool:
    """A data folder of the worker or a replay: the default DuckLake lake's catalog, or a
    Parquet lake's ``events/`` dataset or events staged to be (even one whose worker has
    published nothing yet)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).exists() for name in (CATALOG_FILE, EVENTS, STAGING))


@dataclass
class LakeRun:
    """What a backtest of a lake found, and what it judged (for ``--labels`` scoring)."""

    episodes: list[EpisodeRow]
    #: Events replayed.
    events: int
    #: First and last event time judged (aware UTC, whole hours).
    first: datetime
    last: datetime
    #: The (checkpoint, direction) series the lake holds.
    series: dict[tuple[str, str], None] = field(default_factory=dict)
    #: Checkpoint ids of the lake not in the registry (judged as ``unknown_checkpoint``).
    unknown: tuple[str, ...] = ()
    granularity: str = "hour"
    #: The alert messages raised, as the worker would have published them.
    alerts: list[Any] = field(default_factory=list)  # alert_type.Alert


class _Forgetful:
    """The store the processor asks which event ids were counted before: none were. Every
    row of a lake is an event the worker counted once (a duplicate was never written)."""

    def remembered(self, event_ids: list[str], forgetting: Collection[int] = ()) -> list[str | None]:
        return [None] * len(event_ids)


@contextmanager
def _events(root: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A sorting connection and the FROM item of the lake's events, their checkpoint in a
    ``checkpoint`` column (the Parquet lake's folder name)."""
    with sorting_connection() as connection:
        if not is_ducklake_folder(Path(root)):
            files = _files(root)
            yield connection, f"read_parquet({files!r}, hive_partitioning = true, union_by_name = true)"
            return
        try:
            events = ducklake_events(connection, Path(root))
        except ValueError as error:
            raise SeriesError(str(error)) from None
        yield connection, events


def _files(root: Path) -> list[str]:
    files = sorted(str(f) for f in (Path(root) / EVENTS).glob("date=*/checkpoint=*/*.parquet"))
    if not files:
        from streams.query.contents import staged

        waiting = staged(Path(root), None, None, None).events
        hint = (
            f"; {waiting:,} event(s) are staged, not yet published: the worker publishes them within "
            "CROSSINGS_LAKE_ROLL_SECONDS, or when it stops"
            if waiting
            else ""
        )
        raise SeriesError(f"{root}: no events Parquet files (events/date=*/checkpoint=*/*.parquet){hint}")
    return files


def lake_summary(root: Path) -> list[tuple[int, str, str, int, datetime, datetime]]:
    """(partition, checkpoint, direction, events, first and last event time) of each series."""
    with _events(root) as (connection, events):
        return connection.sql(
            f"""SELECT kafka_partition, checkpoint, direction, count(*), min(occurred_at), max(occurred_at)
                FROM {events} GROUP BY ALL ORDER BY ALL"""
        ).fetchall()


def lake_records(root: Path) -> Iterator[list[SourceRecord]]:
    """The lake's events as the records they were counted from: each partition's in offset
    order (partitions one after another), with their broker timestamps."""
    with _events(root) as (connection, events):
        query = f"""
            SELECT kafka_partition, kafka_offset, {LAKE_EVENT_COLUMNS}
            FROM {events} ORDER BY kafka_partition, kafka_offset
        """
        reader = connection.sql(query).to_arrow_reader(COMMIT_EVERY)
        for chunk in reader:
            yield [
                SourceRecord(
                    row["kafka_partition"],
                    row["kafka_offset"],
                    row["timestamp_ms"],
                    row["checkpoint"].encode(),
                    lake_event_value(row),
                )
                for row in chunk.to_pylist()
            ]


@contextmanager
def _quiet_alert_log() -> Iterator[None]:
    """The processor logs every alert it raises (the worker's log); a backtest prints them."""
    logger = logging.getLogger("streams.core.processor")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def backtest_lake(
    root: Path,
    registry: Mapping[str, Checkpoint],
    *,
    tz: str = "UTC",
    countries: tuple[str, ...] = (),
    config: CoreConfig = CoreConfig(),
    progress: Callable[[int], None] | None = None,
) -> LakeRun:
    """Replay the lake's events through the worker's core; its episodes, ordered by start."""
    summary = lake_summary(root)
    ids = sorted({checkpoint for _, checkpoint, *_ in summary})
    unknown = tuple(c for c in ids if c not in registry)
    judged = dict(registry) | {c: unknown_checkpoint(c, tz, countries) for c in unknown}
    own: dict[int, set[str]] = {}
    for partition, checkpoint, *_ in summary:
        own.setdefault(partition, set()).add(checkpoint)
    decoder = EventDecoder(judged, timedelta(seconds=config.max_clock_skew_s))
    processors = {
        partition: PartitionProcessor(
            partition, PartitionState(partition), _Forgetful(), judged, sorted(checkpoints), decoder, config
        )  # type: ignore[arg-type]  # the store: only ``remembered`` is asked
        for partition, checkpoints in own.items()
    }
    alerts: list[Any] = []
    events = 0
    # Only records without a broker timestamp read it; every lake row has one.
    now = datetime.now(UTC)
    with _quiet_alert_log():
        for batch in lake_records(root):
            by_partition: dict[int, list[SourceRecord]] = {}
            for record in batch:
                by_partition.setdefault(record.partition, []).append(record)
            for partition, records in by_partition.items():
                processor = processors[partition]
                processor.process(records, now)
                counted = sum(processor.effects.metrics.processed.values())
                if counted != len(records):
                    raise SeriesError(
                        f"{root}: partition {partition}: {len(records) - counted} of {len(records)} "
                        f"events from offset {records[0].offset} were not counted again (a lake written "
                        "by more than one run into the same folder?)"
                    )
                alerts += processor.effects.alerts
                processor.committed(processor.prepare_commit())
            events += len(batch)
            if progress is not None:
                progress(len(batch))
    # The worker publishes a partition's alerts in the order it raised them; partitions
    # are independent, so order them by the event time they speak of.
    alerts.sort(key=lambda a: datetime.fromisoformat(a.as_of))
    episodes = alert_episodes(judged, "hour", alerts)
    episodes.sort(key=lambda r: (r.opened_at, r.checkpoint, r.direction, r.kind))
    first = min(row[4] for row in summary).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = max(row[5] for row in summary).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    series = {(checkpoint, direction): None for _, checkpoint, direction, *_ in summary}
    return LakeRun(episodes, events, first, last, dict(sorted(series.items())), unknown, alerts=alerts)
