"""The lake as DuckLake tables: the worker's and the replay's sink (``CROSSINGS_LAKE=ducklake``).

The same interface as the Parquet lake's ``LakeSink`` (``streams.core.ports.Sink``); what
a commit makes durable is one catalog transaction:

- the commit's rows appended to ``events``, ``alerts`` and (a replay) ``dead_letters``,
  each row stamped with its source partition and commit sequence;
- its daily-count snapshots: the partition's rows of each (local day, checkpoint) in the
  batch replaced;
- the partition's row of ``commits``: sequence, last offset, the owner's epoch and the
  snapshot the transaction read (``base_snapshot``, for undoing it, below).

Kafka's changelog stays the truth of what is committed. The lake is written inside the
Kafka transaction (``streams.core.task``), so after a crash between the two commit points
the catalog is one commit *ahead* of Kafka. Then (:meth:`open_partition`, or a retry's
:meth:`flush` of the same sequence) the catalog's uncommitted commit is undone in one
transaction: its appended rows deleted, the partition's daily counts of the days it
replaced restored as they were at its ``base_snapshot`` (DuckLake time travel). The rows
are then written afresh: a re-processed batch may be cut at other offsets, so a sequence
is never taken to mean the same rows. Writing a commit twice therefore leaves the lake as
writing it once (idempotent by partition and sequence).

Fencing: opening a partition raises its ``epoch`` in the same transaction; a commit by a
writer holding an older epoch (a zombie that stalled past a rebalance) is refused with
:class:`LakeFenced`, which the core treats as Kafka's own fence (the task lets the
partition go). Two writers changing ``commits`` at once conflict in the catalog; the loser
runs again from a fresh read, and is fenced if it was the zombie.

Small commits are inlined in the catalog (``CROSSINGS_LAKE_INLINE_ROWS``): the rows are
visible to queries at the commit, with no file and no staging hour. One connection per
sink, reused by every commit (the worker commits on an executor thread, a replay behind on
a pool): a lock keeps them one at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from streams.core.effects import CommitBatch
from streams.core.ports import Fenced
from streams.settings.lake import LakeConfig
from streams.sinks.ducklake import writer_lock
from streams.sinks.ducklake.commit import ALIAS, LakeLocation, S3Access, connect, transaction
from streams.sinks.ducklake.wal import use_wal
from streams.sinks.parquet.layout import (
    ALERTS,
    ALERTS_SCHEMA,
    DAILY_COUNTS,
    DAILY_COUNTS_SCHEMA,
    DEAD_LETTERS,
    DEAD_LETTERS_SCHEMA,
    EVENTS,
    EVENTS_SCHEMA,
    check_partition,
)
from streams.sinks.parquet.sink import (
    FlushStats,
    _alerts_table,
    _dead_letters_table,
    _events_table,
    _snapshot_table,
)

log = logging.getLogger(__name__)

#: Runs of a transaction the catalog refused (another writer changed ``commits`` first).
ATTEMPTS = 8

_DAY = pa.field("local_day", pa.date32(), nullable=False)
_CHECKPOINT = pa.field("checkpoint_id", pa.string(), nullable=False)
_PARTITION = pa.field("kafka_partition", pa.int32(), nullable=False)
_SEQ = pa.field("commit_seq", pa.int64(), nullable=False)

#: The tables' columns: the Parquet lake's (``layout.py``), with the folder's day and
#: checkpoint as columns (named as the query views name them) and the commit's stamp.
TABLES: dict[str, pa.Schema] = {
    EVENTS: pa.schema([_DAY, _CHECKPOINT, *EVENTS_SCHEMA, _SEQ]),
    ALERTS: pa.schema([_DAY, _CHECKPOINT, *ALERTS_SCHEMA, _PARTITION, _SEQ]),
    DAILY_COUNTS: pa.schema([_DAY, _CHECKPOINT, _PARTITION, *DAILY_COUNTS_SCHEMA, _SEQ]),
    DEAD_LETTERS: pa.schema([*DEAD_LETTERS_SCHEMA, _SEQ]),
}
#: Not a table: the (day, checkpoint) pairs whose daily counts a batch replaces.
KEYS = "_snapshot_keys"
#: Appended by commits, removed by their undo (daily counts are replaced, then restored).
APPENDED = (EVENTS, ALERTS, DEAD_LETTERS)


class LakeFenced(Fenced):
    """Another writer opened the partition in the lake after this one: a zombie's commit."""


class LakeAhead(RuntimeError):
    """The catalog holds commits the state never made, more than a crash can leave: the lake
    belongs to another stream, or the topics were recreated."""


def location_of(config: LakeConfig, data_dir: Path, env: Mapping[str, str] | None = None) -> LakeLocation:
    """Where the lake is, with the S3 credentials read from the environment now."""
    env = os.environ if env is None else env
    data_path = config.data_path_for(data_dir)
    s3 = None
    if data_path.startswith("s3://"):
        endpoint = config.s3_endpoint
        s3 = S3Access(
            endpoint=endpoint.endpoint if endpoint else "",
            key_id=env.get("AWS_ACCESS_KEY_ID", ""),
            secret=env.get("AWS_SECRET_ACCESS_KEY", ""),
            use_ssl=endpoint.use_ssl if endpoint else True,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            session_token=env.get("AWS_SESSION_TOKEN") or None,
        )
    return LakeLocation(
        catalog=config.catalog_for(data_dir), data_path=data_path, s3=s3, inline_rows=config.inline_rows
    )


def open_lake(location: LakeLocation, *, dead_letters: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the lake, its tables created if missing."""
    if not location.catalog.startswith("postgres:"):  # a file: SQLite's or DuckDB's
        Path(location.catalog.removeprefix("sqlite:")).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in location.data_path:
        Path(location.data_path).mkdir(parents=True, exist_ok=True)
    use_wal(location.catalog)  # readers never lock the writer out (wal.py, issue 19 item 5)
    con = connect(location)
    for name, schema in TABLES.items():
        if name == DEAD_LETTERS and not dead_letters:
            continue
        columns = ", ".join(f'"{f.name}" {_sql_type(f.type)}' for f in schema)
        _retry(lambda c=columns, n=name: con.execute(f"CREATE TABLE IF NOT EXISTS {ALIAS}.{n} ({c})"))
        _add_new_columns(con, name, schema)
    return con


def _add_new_columns(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
    """A table made by an older version lacks the columns added since (row versions only
    add nullable columns, ``schemas/lake.json``): they are added, its old rows read null."""
    found = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ?",
            [ALIAS, name],
        ).fetchall()
    }
    for field in schema:
        if field.name not in found:
            log.info("lake table %s: adding column %s (a newer row version)", name, field.name)
            _retry(
                lambda f=field: con.execute(
                    f'ALTER TABLE {ALIAS}.{name} ADD COLUMN IF NOT EXISTS "{f.name}" {_sql_type(f.type)}'
                )
            )


class DuckLakeSink:
    """A commit's rows and sequence in one DuckLake transaction (see the module docstring)."""

    def __init__(
        self,
        location: LakeLocation,
        *,
        dead_letters: bool = False,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        self.location = location
        #: Write each commit's dead letters to ``dead_letters`` (a replay).
        self.dead_letters = dead_letters
        #: ``con``: a connection of a process that has the lake attached already (a file
        #: catalog takes one writing process: tests put two writers in one).
        #: A SQLite catalog's writer lock first: a second writing process stops here.
        self._writer = writer_lock.take(location.catalog)
        try:
            self.con = con if con is not None else open_lake(location, dead_letters=dead_letters)
        except BaseException:
            self._writer.release()
            raise
        weakref.finalize(self, self._writer.release)
        self._lock = threading.Lock()
        #: partition -> the epoch this sink took it with (:meth:`open_partition`).
        self._epochs: dict[int, int] = {}
        self._has_dead_letters = self._table_exists(DEAD_LETTERS)

    @classmethod
    def from_config(cls, config: LakeConfig, data_dir: Path, *, dead_letters: bool = False) -> DuckLakeSink:
        return cls(location_of(config, data_dir), dead_letters=dead_letters)

    def close(self) -> None:
        with self._lock:
            self.con.close()
        self._writer.release()

    # -- the Sink protocol -----------------------------------------------------------------

    def open_partition(self, partition: int, committed_seq: int) -> int:
        """Take ``partition`` (raise its epoch: every older writer is fenced) and undo the
        catalog's commits past ``committed_seq``; returns how many commits were undone."""
        with self._lock:
            epoch, undone = _retry(lambda: self._open_once(partition, committed_seq))
        self._epochs[partition] = epoch
        return undone

    def publish_due(self, partition: int, rows: int) -> bool:
        return True  # nothing is staged: every commit is visible at once

    def has_staged(self, partition: int) -> bool:
        return False

    def committed(self, partition: int, committed_seq: int) -> None:
        """Nothing to do: the catalog already holds the commit, and a failed one is undone
        by the retry's flush (or the next opening)."""

    def flush(self, batch: CommitBatch) -> FlushStats:
        """Write the batch and move the partition to its sequence, in one transaction;
        raises :class:`LakeFenced` if another writer took the partition."""
        started = time.perf_counter()
        epoch = self._epochs.get(batch.partition)
        if epoch is None:
            raise RuntimeError(f"partition {batch.partition}: open_partition() before a flush")
        tables = self._tables(batch)
        with self._lock:
            _retry(lambda: self._flush_once(batch, epoch, tables))
        return FlushStats(
            events_rows=len(tables[EVENTS]) if EVENTS in tables else 0,
            daily_counts_rows=len(tables[DAILY_COUNTS]) if DAILY_COUNTS in tables else 0,
            alerts_rows=len(tables[ALERTS]) if ALERTS in tables else 0,
            files=0,
            seconds=time.perf_counter() - started,
        )

    # -- transactions ------------------------------------------------------------------------

    def _open_once(self, partition: int, committed_seq: int) -> tuple[int, int]:
        with transaction(self.con) as con:
            row = self._commits_row(con, partition)
            if row is None:
                con.execute(
                    f"INSERT INTO {ALIAS}.commits (kafka_partition, commit_seq, last_offset, epoch) "
                    "VALUES (?, ?, -1, 1)",
                    [partition, committed_seq],
                )
                return 1, 0
            seq, _last, epoch, base = row
            undone = 0
            if seq > committed_seq:
                undone = self._undo(con, partition, committed_seq, seq, base)
            elif seq < committed_seq:
                log.warning(
                    "partition %d: the lake's catalog is at commit %d, the partition's state at %d: "
                    "commits %d..%d are not in this lake (a new lake for an existing stream?)",
                    partition,
                    seq,
                    committed_seq,
                    seq + 1,
                    committed_seq,
                )
                con.execute(
                    f"UPDATE {ALIAS}.commits SET commit_seq = ?, base_snapshot = NULL "
                    "WHERE kafka_partition = ?",
                    [committed_seq, partition],
                )
            con.execute(
                f"UPDATE {ALIAS}.commits SET epoch = ? WHERE kafka_partition = ?", [epoch + 1, partition]
            )
            if undone:
                log.warning(
                    "partition %d: undid lake commit %d, past the committed %d (a crash between "
                    "the lake's commit and Kafka's)",
                    partition,
                    seq,
                    committed_seq,
                )
            return epoch + 1, undone

    def _flush_once(self, batch: CommitBatch, epoch: int, tables: dict[str, pa.Table]) -> None:
        partition, seq = batch.partition, batch.commit_seq
        with transaction(self.con) as con:
            row = self._commits_row(con, partition)
            owner = row[2] if row is not None else None
            if owner != epoch:
                raise LakeFenced(
                    f"partition {partition}: the lake is owned by epoch {owner}, this writer holds {epoch}"
                )
            base = con.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchall()[0][0]
            if row[0] >= seq:  # a retry of a commit the catalog took and Kafka did not
                self._undo(con, partition, seq - 1, row[0], row[3])
            snapshot_keys = tables.get(KEYS)
            if snapshot_keys is not None and len(snapshot_keys):
                con.register("lake_keys", snapshot_keys)
                try:
                    con.execute(
                        f"DELETE FROM {ALIAS}.daily_counts WHERE kafka_partition = ? AND "
                        "(local_day, checkpoint_id) IN (SELECT local_day, checkpoint_id FROM lake_keys)",
                        [partition],
                    )
                finally:
                    con.unregister("lake_keys")
            for name, rows in tables.items():
                if name == KEYS or not len(rows):
                    continue
                con.register("lake_rows", rows)
                try:
                    con.execute(f"INSERT INTO {ALIAS}.{name} BY NAME SELECT * FROM lake_rows")
                finally:
                    con.unregister("lake_rows")
            con.execute(
                f"UPDATE {ALIAS}.commits SET commit_seq = ?, last_offset = ?, base_snapshot = ? "
                "WHERE kafka_partition = ?",
                [seq, batch.last_offset, base, partition],
            )

    def _undo(self, con: duckdb.DuckDBPyConnection, partition: int, to_seq: int, at_seq: int, base) -> int:
        """Undo the catalog's commit ``at_seq`` of ``partition`` (one past ``to_seq``): its
        appended rows deleted, its replaced daily counts restored as of ``base``."""
        if at_seq != to_seq + 1 or base is None:
            raise LakeAhead(
                f"partition {partition}: the lake's catalog is at commit {at_seq} but the partition's "
                f"state at {to_seq}; a crash leaves it at most one ahead. The lake was written by "
                "another stream, or the topics were recreated: write to a new lake "
                "(CROSSINGS_LAKE / CROSSINGS_DATA_DIR)"
            )
        # Read before anything is deleted: time travel inside a transaction sees its deletes.
        restored = con.execute(
            f"SELECT * FROM (SELECT * FROM {ALIAS}.daily_counts AT (VERSION => {int(base)})) "
            f"WHERE kafka_partition = ? AND (local_day, checkpoint_id) IN (SELECT DISTINCT local_day, "
            f"checkpoint_id FROM {ALIAS}.daily_counts WHERE kafka_partition = ? AND commit_seq > ?)",
            [partition, partition, to_seq],
        ).to_arrow_table()
        last = con.execute(
            f"SELECT last_offset FROM (SELECT * FROM {ALIAS}.commits AT (VERSION => {int(base)})) "
            "WHERE kafka_partition = ?",
            [partition],
        ).fetchall()
        last = last[0] if last else None
        for name in (*APPENDED, DAILY_COUNTS):
            if name == DEAD_LETTERS and not self._has_dead_letters:
                continue
            con.execute(
                f"DELETE FROM {ALIAS}.{name} WHERE kafka_partition = ? AND commit_seq > ?",
                [partition, to_seq],
            )
        if len(restored):
            con.register("lake_restored", restored)
            try:
                con.execute(f"INSERT INTO {ALIAS}.daily_counts BY NAME SELECT * FROM lake_restored")
            finally:
                con.unregister("lake_restored")
        con.execute(
            f"UPDATE {ALIAS}.commits SET commit_seq = ?, last_offset = ?, base_snapshot = NULL "
            "WHERE kafka_partition = ?",
            [to_seq, last[0] if last is not None else -1, partition],
        )
        return at_seq - to_seq

    def _commits_row(self, con: duckdb.DuckDBPyConnection, partition: int):
        # fetchall: a result left open on the connection holds the SQLite catalog's read lock.
        rows = con.execute(
            f"SELECT commit_seq, last_offset, epoch, base_snapshot FROM {ALIAS}.commits "
            "WHERE kafka_partition = ?",
            [partition],
        ).fetchall()
        return rows[0] if rows else None

    def _table_exists(self, name: str) -> bool:
        found = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [ALIAS, name]
        ).fetchall()
        return bool(found[0][0])

    # -- rows --------------------------------------------------------------------------------

    def _tables(self, batch: CommitBatch) -> dict[str, pa.Table]:
        """The batch as one Arrow table per lake table (plus ``_snapshot_keys``: the
        (day, checkpoint) pairs whose daily counts it replaces)."""
        partition, seq = batch.partition, batch.commit_seq
        tables: dict[str, pa.Table] = {}
        events = []
        for (day, checkpoint_id), columns in sorted(batch.events.items()):
            check_partition(day, checkpoint_id)
            events.append(_stamped(_events_table(columns), day, checkpoint_id, None, seq))
        if events:
            tables[EVENTS] = _concat(events, TABLES[EVENTS])
        if batch.alerts:
            alerts = []
            for alert in batch.alerts:
                day = date.fromisoformat(alert.local_day)
                check_partition(day, alert.checkpoint_id)
                alerts.append(_stamped(_alerts_table([alert]), day, alert.checkpoint_id, partition, seq))
            tables[ALERTS] = _concat(alerts, TABLES[ALERTS])
        if self.dead_letters and batch.dead_letters:
            letters = _dead_letters_table(batch.dead_letters)
            tables[DEAD_LETTERS] = letters.append_column(_SEQ, pa.array([seq] * len(letters), pa.int64()))
        if batch.snapshots:
            counts = []
            for snapshot in batch.snapshots:
                check_partition(snapshot.local_day, snapshot.checkpoint_id)
                table = _snapshot_table(snapshot)
                counts.append(_stamped(table, snapshot.local_day, snapshot.checkpoint_id, partition, seq))
            tables[DAILY_COUNTS] = _concat(counts, TABLES[DAILY_COUNTS])
            tables[KEYS] = pa.table(
                {
                    "local_day": pa.array([s.local_day for s in batch.snapshots], pa.date32()),
                    "checkpoint_id": [s.checkpoint_id for s in batch.snapshots],
                }
            )
        return tables


def _stamped(table: pa.Table, day: date, checkpoint_id: str, partition: int | None, seq: int) -> pa.Table:
    n = len(table)
    columns = {
        "local_day": pa.array([day] * n, pa.date32()),
        "checkpoint_id": pa.array([checkpoint_id] * n, pa.string()),
        "commit_seq": pa.array([seq] * n, pa.int64()),
    }
    if partition is not None:
        columns["kafka_partition"] = pa.array([partition] * n, pa.int32())
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])


def _sql_type(kind: pa.DataType) -> str:
    if pa.types.is_string(kind):
        return "VARCHAR"
    if pa.types.is_binary(kind):
        return "BLOB"
    if pa.types.is_date32(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    return {pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT"}[kind]


def _retry(run):
    """Run a catalog transaction, again (up to ``ATTEMPTS`` times) when the catalog refused
    it because another writer's commit landed first."""
    for attempt in range(ATTEMPTS):
        try:
            return run()
        except duckdb.TransactionException:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(min(0.05 * 2**attempt, 1.0))
    raise AssertionError("unreachable")
