"""Compaction and retention of the DuckLake lake (issue 19, item 5).

Commits inline their rows in the catalog or write small files; :func:`compact` turns them
into few large files while readers keep reading, and :func:`expire` drops the days past
``CROSSINGS_LAKE_RETENTION_DAYS``. A reader's query -- ``crossings sql``'s or an analyst's
own DuckDB -- sees one snapshot, before or after each step, never a row twice nor one
missing, because no step removes a catalog row or a file that a snapshot still being read
needs:

- **Write-out** (:func:`write_out`), not ``ducklake_flush_inlined_data``. DuckLake 1.5.5's
  flush *physically* deletes the inlined rows in the transaction that adds their file; a
  reader reads its snapshot's file list and its inlined rows in separate reads of the
  catalog, so one that listed the files before the flush committed and read the inlined
  rows after found neither (measured, SQLite catalog: 600 of 195,600 rows missing, 2 runs
  in 3; a consistent read is fine, the flushed file being dated back to its rows). The
  write-out is a plain DuckLake transaction instead: the inlined rows inserted again (the
  upkeep's connection inlines nothing: :func:`open_for_upkeep`, so they go to a file) and
  deleted, which only stamps their ``end_snapshot``. A reader at an older snapshot still
  reads them where they were; one at the new snapshot reads the file.
- **Merge** (``ducklake_merge_adjacent_files``; row groups of DuckDB's default 122,880 rows
  where the data allows) and **rewrite** of files carrying many deleted rows: one catalog
  transaction swaps the files (a merged file is dated back to its oldest source and keeps
  each row's snapshot, so every snapshot reads the same rows); the old files stay on disk.
- **Expiry of snapshots** older than ``keep`` and no longer current for ``grace`` (a query
  reads the snapshot current when it began), never one a partition's undo may still
  travel to (``commits.base_snapshot``: ``sink.py`` restores daily counts as of that
  snapshot after a crash).
- **Deletion**, a run later: files no snapshot needs once ``grace`` has passed since they
  were unlinked (:func:`cleanup`), and the written-out inlined rows no kept snapshot sees
  once ``grace`` has passed since they were deleted (:func:`purge_inlined`), so a query
  that started before still finds them.

Every day is compacted, the open one too: its inlined rows would otherwise pile up in the
catalog until midnight (a day of live traffic), and the merge is cheap on files already
large. The tables are not partitioned by day, so "a closed day in few large files" is
"every day in few large files".

- **Expire**: one transaction deletes the rows of every local day before ``today -
  retention_days`` from ``events``, ``alerts`` and ``daily_counts``, and the
  ``dead_letters`` written to the lake before that day began (they carry no day: the
  snapshot that committed them dates them). The next compaction removes the emptied files.

A concurrent writer (the worker's commit, another worker's upkeep) may make the catalog
refuse a step, and a SQLite catalog is locked while another connection reads or writes it:
the step is run again (:data:`ATTEMPTS`, backing off), and what is still refused is left
to the next run; nothing is half done, each step being one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock
from typing import TypeVar

import duckdb

from streams.sinks.ducklake.commit import ALIAS, LakeLocation, transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Tables whose rows carry a local day, so retention applies to them.
DAY_TABLES = ("events", "alerts", "daily_counts")
#: The replay's table of records that could not be processed: no day, dated by its commit.
DEAD_LETTERS = "dead_letters"
#: What DuckLake's ``filename`` column says of a row inlined in the catalog (its table's name).
INLINED = "ducklake_inlined_data_%"
#: The catalog's own tables, as DuckLake attaches them beside the lake.
METADATA = f"__ducklake_metadata_{ALIAS}"
#: Runs of one step the catalog refused because another writer's commit landed first.
ATTEMPTS = 10
#: Snapshots (time travel) kept by default: a day of commits.
KEEP = timedelta(days=1)
#: How long a file no snapshot needs any more stays on disk for queries still reading it.
GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class CompactStats:
    files_before: int
    files_after: int
    inlined_rows_flushed: int
    snapshots_expired: int
    files_deleted: int
    seconds: float
    #: Written-out inlined rows no snapshot needs any more, deleted from the catalog.
    inlined_rows_purged: int = 0


@dataclass(frozen=True)
class ExpireStats:
    #: Rows of days before this one were deleted (None: retention is off).
    before: date | None
    rows_deleted: dict[str, int]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.rows_deleted.values())


def data_files(con: duckdb.DuckDBPyConnection) -> int:
    """Parquet files the lake's current snapshot reads (inlined rows are in no file)."""
    total = 0
    for table in _tables(con):
        listed = con.execute(f"SELECT count(*) FROM ducklake_list_files('{ALIAS}', ?)", [table])
        total += listed.fetchall()[0][0]
    return total


def open_for_upkeep(location: LakeLocation, *, dead_letters: bool = False) -> duckdb.DuckDBPyConnection:
    """The lake opened for :func:`compact`: a connection that inlines nothing, so that the
    rows :func:`write_out` inserts go to a file (the limit is the connection's, not the
    catalog's: the worker's commits still inline)."""
    from streams.sinks.ducklake.sink import open_lake

    return open_lake(dataclasses.replace(location, inline_rows=0), dead_letters=dead_letters)


def compact(
    con: duckdb.DuckDBPyConnection,
    *,
    keep: timedelta = KEEP,
    grace: timedelta = GRACE,
    now: datetime | None = None,
) -> CompactStats:
    """Write inlined rows out, merge small files, expire old snapshots, delete what no
    snapshot needs any more (``con``: :func:`open_for_upkeep`)."""
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    before = data_files(con)
    # First, so that what this run unlinks waits a whole grace (the next run) in place.
    deleted = _retry(lambda: cleanup(con, now - grace))
    purged = _retry(lambda: purge_inlined(con, now - grace))
    # Not ``commits``: a row a partition, its live rows are few; the dead are purged.
    written = sum(_retry(lambda t=table: write_out(con, t)) for table in _tables(con) if table != "commits")
    _retry(lambda: _call(con, f"CALL ducklake_rewrite_data_files('{ALIAS}')"))
    _retry(lambda: _call(con, f"CALL ducklake_merge_adjacent_files('{ALIAS}')"))
    versions = expirable_snapshots(con, now - keep, now - grace)
    expired = 0
    if versions:
        listed = ", ".join(str(int(v)) for v in versions)
        statement = f"CALL ducklake_expire_snapshots('{ALIAS}', versions => [{listed}])"
        expired = len(_retry(lambda: _call(con, statement)))
    end = max(now, datetime.now(timezone.utc))
    # This run's too, if grace is 0.
    deleted += _retry(lambda: cleanup(con, end - grace))
    purged += _retry(lambda: purge_inlined(con, end - grace))
    stats = CompactStats(
        before, data_files(con), written, expired, deleted, time.perf_counter() - started, purged
    )
    log.info("lake compacted: %s", stats)
    return stats


def write_out(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Move ``table``'s inlined rows into a file in one DuckLake transaction; returns how
    many. Their copies are inserted (a file: ``con`` inlines nothing), the inlined rows
    deleted -- which stamps their ``end_snapshot`` and leaves them in the catalog for the
    readers of older snapshots until :func:`purge_inlined`."""
    inlined = f"{ALIAS}.{table} WHERE filename LIKE '{INLINED}'"
    with transaction(con):
        moved = con.execute(f"INSERT INTO {ALIAS}.{table} SELECT * FROM {inlined}").fetchall()[0][0]
        if moved:
            deleted = con.execute(f"DELETE FROM {inlined}").fetchall()[0][0]
            left = con.execute(f"SELECT count(*) FROM {inlined}").fetchall()[0][0]
            if deleted != moved or left:
                raise RuntimeError(
                    f"lake upkeep: {table}'s inlined rows were inlined again ({moved} copied, "
                    f"{deleted} deleted, {left} left): open the lake for compaction with "
                    "upkeep.open_for_upkeep(), a connection that inlines nothing"
                )
    return moved


def purge_inlined(con: duckdb.DuckDBPyConnection, before: datetime) -> int:
    """Delete from the catalog the inlined rows that were deleted (written out, undone or
    expired) before ``before`` and that no snapshot still kept can see; returns how many.

    DuckLake's expiry of snapshots leaves a live table's dead inlined rows in place (only
    its flush removes them, too early: see the module docstring), so without this the
    catalog would keep every row ever inlined. The rule is the one DuckLake applies to the
    files of expired snapshots, and the grace the one :func:`cleanup` waits."""
    latest = _call(
        con,
        f"SELECT max(snapshot_id) FROM {METADATA}.ducklake_snapshot WHERE snapshot_time::TIMESTAMPTZ < ?",
        [before],
    )[0][0]
    if latest is None:
        return 0
    names = _call(con, f"SELECT table_name FROM {METADATA}.ducklake_inlined_data_tables ORDER BY 1")
    purged = 0
    for (name,) in names:
        purged += _call(
            con,
            f"DELETE FROM {METADATA}.{name} d WHERE d.end_snapshot IS NOT NULL AND d.end_snapshot <= ? "
            f"AND NOT EXISTS (SELECT 1 FROM {METADATA}.ducklake_snapshot s "
            "WHERE s.snapshot_id >= d.begin_snapshot AND s.snapshot_id < d.end_snapshot)",
            [latest],
        )[0][0]
    return purged


def cleanup(con: duckdb.DuckDBPyConnection, before: datetime) -> int:
    """Delete the files unlinked from the lake (merged away, or of expired snapshots) if
    every one of them was unlinked before ``before``; returns how many.

    Not ``ducklake_cleanup_old_files(older_than => ...)``: on a SQLite catalog (DuckLake
    1.5.5) it deleted files unlinked a second before with ``older_than`` an hour ago, which
    would pull files from under a query that started before the merge. All or none, then:
    upkeep runs an interval apart, so the last run's files are that old at the next run."""
    youngest = _call(
        con,
        f"SELECT max(schedule_start::TIMESTAMPTZ) FROM __ducklake_metadata_{ALIAS}."
        "ducklake_files_scheduled_for_deletion",
    )[0][0]
    if youngest is None or youngest > before:
        return 0
    return len(_call(con, f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)"))


def expirable_snapshots(
    con: duckdb.DuckDBPyConnection, older_than: datetime, superseded_before: datetime | None = None
) -> list[int]:
    """Snapshots taken before ``older_than`` that no partition's undo needs (older than the
    oldest ``commits.base_snapshot``) and that stopped being the current one before
    ``superseded_before`` (the next one was taken by then): a query reads the snapshot
    current when it began, and one that began less than a grace ago may still be reading
    it (``--keep-hours 0`` included)."""
    floor = None
    if "commits" in _tables(con):
        floor = con.execute(f"SELECT min(base_snapshot) FROM {ALIAS}.commits").fetchall()[0][0]
    current = con.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchall()[0][0]
    rows = con.execute(
        f"SELECT snapshot_id FROM (SELECT snapshot_id, snapshot_time, lead(snapshot_time) OVER "
        f"(ORDER BY snapshot_id) AS superseded FROM ducklake_snapshots('{ALIAS}')) "
        "WHERE snapshot_time < ? AND superseded < ? AND snapshot_id < ? ORDER BY snapshot_id",
        [older_than, superseded_before or older_than, current if floor is None else min(int(floor), current)],
    ).fetchall()
    return [row[0] for row in rows]


def expire(
    con: duckdb.DuckDBPyConnection,
    retention_days: int,
    today: date,
    *,
    dead_letters_before: datetime | None = None,
) -> ExpireStats:
    """Delete, in one transaction, the rows of every local day before ``today -
    retention_days`` (0: keep for ever, nothing deleted), and the dead letters written to
    the lake before that day began here (``dead_letters_before``, for tests)."""
    started = time.perf_counter()
    if retention_days <= 0:
        return ExpireStats(None, {}, 0.0)
    before = today - timedelta(days=retention_days)
    dead_before = dead_letters_before or datetime.combine(before, clock.min).astimezone()
    present = _tables(con)
    tables = [t for t in DAY_TABLES if t in present]

    def once() -> dict[str, int]:
        deleted: dict[str, int] = {}
        with transaction(con):
            for table in tables:
                deleted[table] = con.execute(
                    f"DELETE FROM {ALIAS}.{table} WHERE local_day < ?", [before]
                ).fetchall()[0][0]
            if DEAD_LETTERS in present:
                deleted[DEAD_LETTERS] = _delete_written_before(con, DEAD_LETTERS, dead_before)
        return deleted

    stats = ExpireStats(before, _retry(once), time.perf_counter() - started)
    log.info("lake expired the days before %s: %s", before, stats.rows_deleted)
    return stats


def _delete_written_before(con: duckdb.DuckDBPyConnection, table: str, before: datetime) -> int:
    """Delete the rows of ``table`` committed before ``before``: the rows of snapshots older
    than the first one taken at or after it (snapshot ids grow with time; an expired
    snapshot's rows are dated by the next kept one's id). A row an upkeep wrote out of the
    catalog is dated by that write-out, at most an upkeep interval late."""
    first_after = con.execute(
        f"SELECT coalesce(min(snapshot_id) FILTER (WHERE snapshot_time >= ?), max(snapshot_id) + 1) "
        f"FROM ducklake_snapshots('{ALIAS}')",
        [before],
    ).fetchall()[0][0]
    return con.execute(f"DELETE FROM {ALIAS}.{table} WHERE snapshot_id < ?", [first_after]).fetchall()[0][0]


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1", [ALIAS]
    ).fetchall()
    return [row[0] for row in rows]


def _call(con: duckdb.DuckDBPyConnection, statement: str, parameters: list | None = None) -> list[tuple]:
    """One statement; on failure the connection's transaction is rolled back, so a retry
    starts clean (a refused commit can leave it aborted)."""
    try:
        return con.execute(statement, parameters).fetchall()
    except duckdb.Error:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def refused(error: duckdb.Error) -> bool:
    """The catalog refused the transaction for now: another writer's commit landed first
    (DuckLake's conflict), or a SQLite catalog was locked by another connection (SQLite
    answers "database is locked" at once; DuckDB's SQLite catalog sets no busy timeout), or
    a refusal left the connection's transaction aborted (``_call`` has rolled it back)."""
    text = str(error)
    return (
        isinstance(error, duckdb.TransactionException)
        or "database is locked" in text
        or "Current transaction is aborted" in text
    )


def _retry(run: Callable[[], T]) -> T:
    for attempt in range(ATTEMPTS):
        try:
            return run()
        except duckdb.Error as error:
            if attempt == ATTEMPTS - 1 or not refused(error):
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")
