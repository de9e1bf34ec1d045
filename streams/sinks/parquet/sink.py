"""The Parquet lake as a sink of commits: one call per commit, right before the offsets move.

Appended rows are staged and published in larger files (``staging.py``); daily-count
snapshots are written where readers see them at every commit.

The sink contract of Quix Streams, reduced to what a commit needs: the core accumulates
rows as it processes records (its effects are the sink's buffer), and :meth:`flush` runs
first in the commit protocol. If it raises, the commit is aborted: the Kafka transaction
is not committed, the state is rebuilt from the store and the records are processed
again, and the files this attempt did write are either written again with the same
name and bytes or removed as uncommitted when the partition is next opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from streams.core.effects import CommitBatch, DailySnapshot, DeadLetter, EventColumns
from streams.domain import rows
from streams.sinks.parquet.files import FileJob, make_dirs, write_all
from streams.sinks.parquet.layout import (
    ALERTS,
    ALERTS_SCHEMA,
    DAILY_COUNTS,
    DAILY_COUNTS_SCHEMA,
    DEAD_LETTERS,
    DEAD_LETTERS_SCHEMA,
    EVENTS,
    EVENTS_SCHEMA,
    SCHEMAS,
    check_partition,
    commit_file_name,
    partition_dir,
    snapshot_file_name,
)
from streams.sinks.parquet.staging import StagedFile, Staging


@dataclass(frozen=True)
class FlushStats:
    events_rows: int = 0
    daily_counts_rows: int = 0
    alerts_rows: int = 0
    files: int = 0
    bytes_written: int = 0
    seconds: float = 0.0


class LakeSink:
    def __init__(
        self,
        root: Path,
        *,
        dead_letters: bool = False,
        roll_seconds: float = 0.0,
        roll_rows: int = 1_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        #: Write each commit's dead letters to ``dead_letters/`` (a replay: the worker's go
        #: to the dead-letter topic in its transaction instead).
        self.dead_letters = dead_letters
        #: Appended rows wait here until published (``roll_seconds`` 0: every commit publishes).
        self.staging = Staging(self.root, roll_seconds=roll_seconds, roll_rows=roll_rows, clock=clock)

    def open_partition(self, partition: int, committed_seq: int) -> int:
        """Remove what uncommitted attempts left for ``partition``; returns files removed."""
        return self.staging.recover(partition, committed_seq)

    def publish_due(self, partition: int, rows: int) -> bool:
        """Should the next commit of ``partition`` (with ``rows`` appended rows) publish?"""
        return self.staging.due(partition, rows)

    def has_staged(self, partition: int) -> bool:
        return self.staging.has_staged(partition)

    def flush(self, batch: CommitBatch) -> FlushStats:
        """Write the commit's appended rows (staged, or published with what was staged) and
        its daily-count snapshots; raises on any failure."""
        started = time.perf_counter()
        partition = batch.partition
        name = commit_file_name(partition, batch.commit_seq, batch.first_offset, batch.last_offset)
        appended: dict[str, tuple[Callable[[], pa.Table], int]] = {}
        for (day, checkpoint_id), columns in sorted(batch.events.items()):
            appended[_folder(EVENTS, day, checkpoint_id)] = (partial(_events_table, columns), len(columns))
        by_folder: dict[tuple[str, str], list[Any]] = {}
        for alert in batch.alerts:
            by_folder.setdefault((alert.local_day, alert.checkpoint_id), []).append(alert)
        for (day, checkpoint_id), alerts in sorted(by_folder.items()):
            folder = _folder(ALERTS, date.fromisoformat(day), checkpoint_id)
            appended[folder] = (partial(_alerts_table, alerts), len(alerts))
        if self.dead_letters and batch.dead_letters:
            appended[DEAD_LETTERS] = (
                partial(_dead_letters_table, batch.dead_letters),
                len(batch.dead_letters),
            )
        staging = self.staging.folder(partition)
        make_dirs(staging)
        jobs: list[FileJob] = []
        publication = None
        staged: list[StagedFile] = []
        if batch.publish:
            span = (batch.first_offset, batch.last_offset)
            publication = self.staging.plan(partition, batch.commit_seq, list(appended), span)
            if publication.names:
                self.staging.write_intent(partition, publication)
            for folder, file_name in publication.names.items():
                build = appended[folder][0] if folder in appended else None
                merge = partial(self._merged, partition, publication.replaced[folder], _schema(folder), build)
                jobs.append((self.root / folder, file_name, merge))
        else:
            last = batch.last_offset if batch.first_offset is not None else None
            for folder, (build, rows) in appended.items():
                jobs.append((staging / folder, name, build))
                staged.append(
                    StagedFile(f"{folder}/{name}", batch.commit_seq, batch.first_offset, last, rows)
                )
        snapshot_name = snapshot_file_name(partition)
        for snapshot in batch.snapshots:
            directory = partition_dir(self.root, DAILY_COUNTS, snapshot.local_day, snapshot.checkpoint_id)
            jobs.append((directory, snapshot_name, partial(_snapshot_table, snapshot)))
        size = write_all(jobs, partition, temp_dir=staging)
        self.staging.prepared(partition, batch.commit_seq, publication, staged)
        return FlushStats(
            events_rows=sum(len(c) for c in batch.events.values()),
            daily_counts_rows=sum(len(s.rows) for s in batch.snapshots),
            alerts_rows=len(batch.alerts),
            files=len(jobs),
            bytes_written=size,
            seconds=time.perf_counter() - started,
        )

    def committed(self, partition: int, committed_seq: int) -> None:
        """Runs after the commit point (and after a failed commit, with the sequence the
        partition's state says is committed): what a committed commit published is no
        longer staged; what a failed one wrote is forgotten (it is written again)."""
        self.staging.committed(partition, committed_seq)

    def _merged(
        self,
        partition: int,
        replaced: list[StagedFile],
        schema: pa.Schema,
        build: Callable[[], pa.Table] | None,
    ) -> pa.Table:
        tables = [self.staging.read(partition, staged, schema) for staged in replaced]
        if build is not None:
            tables.append(build())
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _folder(dataset: str, day: date, checkpoint_id: str) -> str:
    """A hive folder, relative to the lake's root."""
    check_partition(day, checkpoint_id)
    return f"{dataset}/date={day.isoformat()}/checkpoint={checkpoint_id}"


def _schema(folder: str) -> pa.Schema:
    return SCHEMAS[folder.split("/")[0]]


#: ``EventColumns`` holds times as integers: ``occurred_at`` in ``occurred_at_us``.
_UNIT = {"timestamp[us]": "_us", "timestamp[ms]": "_ms"}
#: (lake column, ``EventColumns`` attribute) of each column of ``events/``.
_EVENT_BUFFERS = tuple((c.lake_name, c.name + _UNIT.get(c.type, "")) for c in rows.lake_columns(rows.EVENT))


def _events_table(columns: EventColumns) -> pa.Table:
    """Column by column, never row by row: the hot path."""
    return pa.table({name: getattr(columns, attr) for name, attr in _EVENT_BUFFERS}, schema=EVENTS_SCHEMA)


def _alert_value(column: rows.Column, alert: Any) -> object:
    value = getattr(alert, column.name)
    if value is None:
        return None
    if column.json:
        return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)
    if column.type.startswith("timestamp"):
        return datetime.fromisoformat(value)
    return value


def _alerts_table(alerts: list[Any]) -> pa.Table:
    """``alert_type.Alert`` structs as the lake's ``alerts`` rows."""
    columns = rows.lake_columns(rows.ALERT)
    data = {c.lake_name: [_alert_value(c, alert) for alert in alerts] for c in columns}
    return pa.table(data, schema=ALERTS_SCHEMA)


def _dead_letters_table(letters: list[DeadLetter]) -> pa.Table:
    return pa.table(
        {
            "kafka_partition": [letter.partition for letter in letters],
            "kafka_offset": [letter.offset for letter in letters],
            "reason": [letter.reason for letter in letters],
            "detail": [letter.detail for letter in letters],
            "key": [letter.key for letter in letters],
            "value": [letter.value for letter in letters],
            "original_size": [letter.original_size for letter in letters],
            "original_sha256": [letter.sha256 for letter in letters],
        },
        schema=DEAD_LETTERS_SCHEMA,
    )


def _snapshot_table(snapshot: DailySnapshot) -> pa.Table:
    as_of = round(snapshot.as_of_s * 1_000_000)
    return pa.table(
        {
            "direction": [r[0] for r in snapshot.rows],
            "nationality": [r[1] for r in snapshot.rows],
            "purpose": [r[2] for r in snapshot.rows],
            "count": [r[3] for r in snapshot.rows],
            "as_of": pa.array([as_of] * len(snapshot.rows), pa.int64()).cast(
                DAILY_COUNTS_SCHEMA.field(4).type
            ),
        },
        schema=DAILY_COUNTS_SCHEMA,
    )
