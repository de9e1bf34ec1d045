"""Parquet history: raw events, daily count snapshots and alerts, hive-partitioned.

Layout under the data root (``date`` is the checkpoint's *local* day; ``date`` and
``checkpoint`` live only in the folder names, as Spark writes them)::

    events/date=YYYY-MM-DD/checkpoint=<id>/part-<writer_id>-<seq:08d>.parquet   append-only
    daily_counts/date=YYYY-MM-DD/checkpoint=<id>/counts.parquet                  one snapshot
    alerts/date=YYYY-MM-DD/checkpoint=<id>/part-<writer_id>-<seq:08d>.parquet   append-only

Every file is written as ``.tmp-<writer_id>-<uuid>.tmp`` in its final folder, fsync'ed,
then ``os.replace``d to its final name and the folder fsync'ed, so a reader sees a whole
file or none. The temporary name deliberately does not end in ``.parquet``: DuckDB's
globs (``*.parquet``, ``**/*.parquet``) *do* match dot-files, so a dot prefix alone
would not hide a half-written file from an analyst's query.

This module is plain Python (no Faust): the worker calls :meth:`ParquetSink.add_event`,
:meth:`~ParquetSink.put_daily_counts` and :meth:`~ParquetSink.add_alert` as it processes
records, and :meth:`~ParquetSink.flush` right before it commits Kafka offsets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

EVENTS = "events"
DAILY_COUNTS = "daily_counts"
ALERTS = "alerts"
COUNTS_FILE = "counts.parquet"
COMPRESSION = "zstd"
#: Temporary files are ``.tmp-<writer_id>-<uuid>.tmp``: never matched by ``*.parquet``.
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".tmp"
#: Another writer's temporary file this old is a crash leftover, not a write in progress.
STALE_TEMP_SECONDS = 3600

CHECKPOINT_ID = re.compile(r"^[a-z0-9-]{2,64}$")
WRITER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

_UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("occurred_at", _UTC_MICROS, nullable=False),
        pa.field("local_hour", pa.int8(), nullable=False),
        pa.field("nationality", pa.string(), nullable=False),
        pa.field("purpose", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("processed_at", _UTC_MICROS, nullable=False),
    ]
)

DAILY_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("direction", pa.string(), nullable=False),
        pa.field("nationality", pa.string(), nullable=False),
        pa.field("purpose", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("as_of", _UTC_MICROS, nullable=False),
    ]
)

ALERTS_SCHEMA = pa.schema(
    [
        pa.field("version", pa.int16(), nullable=False),
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("checkpoint_name", pa.string(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("window", pa.string(), nullable=False),
        pa.field("as_of", _UTC_MICROS, nullable=False),
        pa.field("raised_at", _UTC_MICROS, nullable=False),
        pa.field("observed", pa.int64(), nullable=False),
        pa.field("expected", pa.float64(), nullable=False),
        pa.field("ratio", pa.float64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("drivers_json", pa.string(), nullable=False),
        pa.field("summary", pa.string(), nullable=False),
    ]
)

_EVENT_TEXT_FIELDS = ("event_id", "direction", "nationality", "purpose", "mode", "outcome")
_ALERT_TEXT_FIELDS = (
    "alert_id",
    "episode_id",
    "status",
    "kind",
    "checkpoint_name",
    "direction",
    "window",
    "summary",
)

Partition = tuple[date, str]
"""(local_day, checkpoint_id): one hive folder of a dataset."""


@dataclass(frozen=True, slots=True)
class EventRow:
    """One valid, de-duplicated crossing as it is kept in history."""

    event_id: str
    checkpoint_id: str
    local_day: date
    direction: str
    occurred_at: datetime
    local_hour: int
    nationality: str
    purpose: str
    mode: str
    outcome: str
    kafka_partition: int
    kafka_offset: int
    processed_at: datetime


@dataclass(frozen=True)
class FlushStats:
    """What one :meth:`ParquetSink.flush` wrote; ``<dataset>_rows`` / ``<dataset>_files``."""

    events_rows: int = 0
    events_files: int = 0
    daily_counts_rows: int = 0
    daily_counts_files: int = 0
    alerts_rows: int = 0
    alerts_files: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return self.events_files + self.daily_counts_files + self.alerts_files


@dataclass(slots=True)
class _CountsSnapshot:
    directions: list[str]
    nationalities: list[str]
    purposes: list[str]
    counts: list[int]
    as_of: datetime


def partition_dir(root: Path, dataset: str, local_day: date, checkpoint_id: str) -> Path:
    """The hive folder of one checkpoint-day; refuses ids that could escape the root."""
    check_partition(local_day, checkpoint_id)
    return Path(root) / dataset / f"date={local_day.isoformat()}" / f"checkpoint={checkpoint_id}"


def check_partition(local_day: Any, checkpoint_id: Any) -> None:
    """Raise ValueError unless this is a calendar day and a path-safe checkpoint id."""
    if not isinstance(checkpoint_id, str) or not CHECKPOINT_ID.fullmatch(checkpoint_id):
        raise ValueError(f"checkpoint_id {checkpoint_id!r} does not match {CHECKPOINT_ID.pattern}")
    if not isinstance(local_day, date) or isinstance(local_day, datetime):
        raise ValueError(f"local_day must be a datetime.date, got {local_day!r}")


class ParquetSink:
    """Buffers history rows in memory and writes them as Parquet when offsets commit.

    Contract (the Quix Streams sink shape): ``add_event``/``put_daily_counts``/``add_alert``
    run for every processed record and only buffer; :meth:`flush` runs right before the
    application commits its Kafka offsets. If ``flush`` raises, the commit must be aborted;
    whatever was not durably written stays buffered, so calling ``flush`` again writes it,
    and what *was* written is not written twice by that retry. A crash between a flush and
    the commit replays records, so the append-only ``events``/``alerts`` folders are
    at-least-once (``event_id``/``alert_id`` identify duplicates); ``daily_counts`` is a
    snapshot and simply gets replaced.

    Bad input (a checkpoint id that is not path-safe, a naive datetime, a wrong type) is
    rejected with ValueError when it is *added*, so one bad record can never make every
    later flush fail.

    One process per ``writer_id`` at a time. File sequence numbers continue from the
    highest ``part-<writer_id>-*`` already in a folder, so a restarted writer never reuses a
    name. The sink is safe to use from several threads (e.g. ``flush`` in an executor while
    the event loop keeps adding); ``flush`` writes what was added before it was called.
    """

    def __init__(self, root: Path, writer_id: str) -> None:
        if not WRITER_ID.fullmatch(writer_id):
            raise ValueError(f"writer_id {writer_id!r} does not match {WRITER_ID.pattern}")
        self.root = Path(root)
        self.writer_id = writer_id
        self._lock = threading.Lock()  # guards the buffers
        self._flush_lock = threading.Lock()  # one flush at a time; guards _next_seq
        self._events: dict[Partition, list[EventRow]] = {}
        self._counts: dict[Partition, _CountsSnapshot] = {}
        self._alerts: dict[Partition, list[dict[str, Any]]] = {}
        self._known_checkpoints: set[str] = set()
        self._next_seq: dict[Path, int] = {}
        self._part_name = re.compile(rf"^part-{re.escape(writer_id)}-(\d{{8,}})\.parquet$")
        self._temp_prefix = f"{TEMP_PREFIX}{writer_id}-"
        self._own_temp = re.compile(
            rf"^{re.escape(self._temp_prefix)}[0-9a-f]{{32}}{re.escape(TEMP_SUFFIX)}$"
        )

    # ------------------------------------------------------------------ buffering

    def add_event(self, row: EventRow) -> None:
        """Buffer one event under its (local_day, checkpoint_id) folder."""
        self._check_event(row)
        key = (row.local_day, row.checkpoint_id)
        with self._lock:
            rows = self._events.get(key)
            if rows is None:
                self._events[key] = [row]
            else:
                rows.append(row)

    def put_daily_counts(
        self,
        checkpoint_id: str,
        local_day: date,
        rows: Iterable[tuple[str, str, str, int]],
        as_of: datetime,
    ) -> None:
        """Buffer the full (direction, nationality, purpose, count) snapshot of a day.

        The last snapshot put for a checkpoint-day before a flush is the one written; it
        replaces that day's ``counts.parquet`` as a whole.
        """
        check_partition(local_day, checkpoint_id)
        _check_aware("as_of", as_of)
        snapshot = _CountsSnapshot([], [], [], [], as_of)
        for direction, nationality, purpose, count in rows:
            _check_text("direction", direction)
            _check_text("nationality", nationality)
            _check_text("purpose", purpose)
            if type(count) is not int or count < 0:
                raise ValueError(f"count must be a non-negative int, got {count!r}")
            snapshot.directions.append(direction)
            snapshot.nationalities.append(nationality)
            snapshot.purposes.append(purpose)
            snapshot.counts.append(count)
        with self._lock:
            self._counts[(local_day, checkpoint_id)] = snapshot

    def add_alert(self, alert: Mapping[str, Any]) -> None:
        """Buffer one alert message (a dict shaped like schemas/alert.v1.json)."""
        try:
            local_day = alert["local_day"]
            if isinstance(local_day, str):
                local_day = date.fromisoformat(local_day)
            checkpoint_id = alert["checkpoint_id"]
            check_partition(local_day, checkpoint_id)
            record: dict[str, Any] = {"version": _check_int("version", alert["version"])}
            for name in _ALERT_TEXT_FIELDS:
                record[name] = _check_text(name, alert[name])
            record["as_of"] = _timestamp("as_of", alert["as_of"])
            record["raised_at"] = _timestamp("raised_at", alert["raised_at"])
            record["observed"] = _check_int("observed", alert["observed"])
            for name in ("expected", "ratio", "score"):
                record[name] = _check_number(name, alert[name])
            drivers = alert["drivers"]
            if not isinstance(drivers, list):
                raise ValueError(f"drivers must be a list, got {type(drivers).__name__}")
            record["drivers_json"] = json.dumps(drivers, ensure_ascii=False)
        except KeyError as missing:
            raise ValueError(f"alert is missing field {missing.args[0]!r}") from None
        key = (local_day, checkpoint_id)
        with self._lock:
            self._alerts.setdefault(key, []).append(record)

    def pending(self) -> int:
        """Buffered items not yet written: events + count snapshots + alerts."""
        with self._lock:
            return (
                sum(len(rows) for rows in self._events.values())
                + len(self._counts)
                + sum(len(rows) for rows in self._alerts.values())
            )

    # ------------------------------------------------------------------ writing

    def flush(self) -> FlushStats:
        """Write everything buffered; call right before committing Kafka offsets.

        Either every buffered item is durably on disk when this returns, or it raises.
        On failure the items not yet written go back into the buffer (ahead of anything
        added meanwhile; a count snapshot put meanwhile stays, being newer), so the next
        ``flush`` writes them, and the folders already written are not written again.
        """
        with self._flush_lock:
            started = time.perf_counter()
            with self._lock:
                events, self._events = self._events, {}
                counts, self._counts = self._counts, {}
                alerts, self._alerts = self._alerts, {}
            written: Counter[str] = Counter()  # FlushStats field -> amount
            try:
                for key in list(events):
                    rows = events[key]
                    written["bytes_written"] += self._append(EVENTS, key, _events_table(rows))
                    del events[key]
                    written["events_rows"] += len(rows)
                    written["events_files"] += 1
                for key in list(alerts):
                    records = alerts[key]
                    written["bytes_written"] += self._append(ALERTS, key, _alerts_table(records))
                    del alerts[key]
                    written["alerts_rows"] += len(records)
                    written["alerts_files"] += 1
                for key in list(counts):
                    snapshot = counts[key]
                    written["bytes_written"] += self._replace_counts(key, snapshot)
                    del counts[key]
                    written["daily_counts_rows"] += len(snapshot.counts)
                    written["daily_counts_files"] += 1
            except BaseException:
                self._put_back(events, counts, alerts)
                raise
            return FlushStats(**written, seconds=time.perf_counter() - started)

    def _put_back(
        self,
        events: dict[Partition, list[EventRow]],
        counts: dict[Partition, _CountsSnapshot],
        alerts: dict[Partition, list[dict[str, Any]]],
    ) -> None:
        with self._lock:
            for key, rows in events.items():
                self._events[key] = rows + self._events.get(key, [])
            for key, records in alerts.items():
                self._alerts[key] = records + self._alerts.get(key, [])
            for key, snapshot in counts.items():
                self._counts.setdefault(key, snapshot)

    def _append(self, dataset: str, key: Partition, table: pa.Table) -> int:
        directory = partition_dir(self.root, dataset, *key)
        self._prepare_dir(directory)
        seq = self._next_seq[directory]
        self._next_seq[directory] = seq + 1
        return self._write_atomically(table, directory, f"part-{self.writer_id}-{seq:08d}.parquet")

    def _replace_counts(self, key: Partition, snapshot: _CountsSnapshot) -> int:
        directory = partition_dir(self.root, DAILY_COUNTS, *key)
        self._prepare_dir(directory)
        table = pa.table(
            {
                "direction": snapshot.directions,
                "nationality": snapshot.nationalities,
                "purpose": snapshot.purposes,
                "count": snapshot.counts,
                "as_of": [snapshot.as_of] * len(snapshot.counts),
            },
            schema=DAILY_COUNTS_SCHEMA,
        )
        return self._write_atomically(table, directory, COUNTS_FILE)

    def _prepare_dir(self, directory: Path) -> None:
        """On first use in this process: create the folder (durably), delete temporary files
        left by a crash (this writer's, or anyone's older than STALE_TEMP_SECONDS), and
        find the next free sequence number for this writer."""
        if directory in self._next_seq:
            return
        _make_dirs(directory)
        highest = -1
        stale_before = time.time() - STALE_TEMP_SECONDS
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        own = self._own_temp.match(entry.name)
                        if own or entry.stat().st_mtime < stale_before:
                            os.unlink(entry.path)
                elif match := self._part_name.match(entry.name):
                    highest = max(highest, int(match.group(1)))
        self._next_seq[directory] = highest + 1

    def _write_atomically(self, table: pa.Table, directory: Path, name: str) -> int:
        temp = directory / f"{self._temp_prefix}{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            with open(temp, "wb") as handle:
                pq.write_table(table, handle, compression=COMPRESSION)
                handle.flush()
                os.fsync(handle.fileno())
                size = handle.tell()
            os.replace(temp, directory / name)
        except BaseException:
            _discard(temp)
            raise
        _fsync_dir(directory)
        return size

    # ------------------------------------------------------------------ validation

    def _check_event(self, row: EventRow) -> None:
        if row.checkpoint_id not in self._known_checkpoints:
            check_partition(row.local_day, row.checkpoint_id)
            self._known_checkpoints.add(row.checkpoint_id)
        elif type(row.local_day) is not date:
            check_partition(row.local_day, row.checkpoint_id)
        for name in _EVENT_TEXT_FIELDS:
            if type(getattr(row, name)) is not str:
                raise ValueError(f"{name} must be a str, got {getattr(row, name)!r}")
        _check_aware("occurred_at", row.occurred_at)
        _check_aware("processed_at", row.processed_at)
        if type(row.local_hour) is not int or not 0 <= row.local_hour <= 23:
            raise ValueError(f"local_hour must be an int 0..23, got {row.local_hour!r}")
        if type(row.kafka_partition) is not int or not 0 <= row.kafka_partition < 2**31:
            raise ValueError(f"kafka_partition must be an int32, got {row.kafka_partition!r}")
        if type(row.kafka_offset) is not int or not 0 <= row.kafka_offset < 2**63:
            raise ValueError(f"kafka_offset must be an int64, got {row.kafka_offset!r}")


def _events_table(rows: list[EventRow]) -> pa.Table:
    return pa.table(
        {
            "event_id": [row.event_id for row in rows],
            "direction": [row.direction for row in rows],
            "occurred_at": [row.occurred_at for row in rows],
            "local_hour": [row.local_hour for row in rows],
            "nationality": [row.nationality for row in rows],
            "purpose": [row.purpose for row in rows],
            "mode": [row.mode for row in rows],
            "outcome": [row.outcome for row in rows],
            "kafka_partition": [row.kafka_partition for row in rows],
            "kafka_offset": [row.kafka_offset for row in rows],
            "processed_at": [row.processed_at for row in rows],
        },
        schema=EVENTS_SCHEMA,
    )


def _alerts_table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {name: [record[name] for record in records] for name in ALERTS_SCHEMA.names},
        schema=ALERTS_SCHEMA,
    )


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {value!r}")
    return value


def _check_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return value


def _check_number(name: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_aware(name: str, value: Any) -> None:
    # pyarrow would silently read a naive datetime as UTC; refuse it instead.
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def _timestamp(name: str, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} is not an ISO 8601 date-time: {value!r}") from None
    _check_aware(name, value)
    return value


def _make_dirs(directory: Path) -> None:
    """mkdir -p, fsync'ing each parent that gained an entry so the folder survives a crash."""
    missing = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        _fsync_dir(folder.parent)


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
