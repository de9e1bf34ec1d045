"""Compaction and retention of the DuckLake lake (``streams.sinks.ducklake.upkeep``).

Compaction must leave every row exactly as it was, in far fewer files, with row groups of
at least 100,000 rows where there are that many; a reader querying throughout compaction
(the moment inlined rows leave the catalog included) and expiry sees the lake's one
content before, or (expiry) the one after, never a mix, never a row missing. Retention
deletes exactly the days before ``today - retention_days``, and the dead letters committed
before that day.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from streams.cli.main import cli
from streams.settings import ConfigError
from streams.settings.lake import LakeConfig
from streams.settings.lake_upkeep import load_upkeep
from streams.sinks.ducklake import upkeep
from streams.sinks.ducklake.read import attach, pin, pinned
from streams.sinks.ducklake.sink import location_of, open_lake

TODAY = date(2026, 3, 10)
DAYS = [TODAY - timedelta(days=n) for n in range(6)]  # today and the 5 days before
ROWS_PER_COMMIT = 5_000
INLINE = 1_000
TABLES = upkeep.DAY_TABLES


def _lake(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The worker's connection: it inlines commits of up to ``INLINE`` rows a table."""
    location = location_of(LakeConfig("ducklake", inline_rows=INLINE), tmp_path)
    return open_lake(location, dead_letters=True)


def _upkeep(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The upkeep's own connection, as ``crossings lake`` and the worker open it."""
    return upkeep.open_for_upkeep(location_of(LakeConfig("ducklake", inline_rows=INLINE), tmp_path))


def _commit(con: duckdb.DuckDBPyConnection, first: int, rows: int, *, seq: int) -> None:
    """One commit's rows over the six days: events, alerts and daily counts."""
    days = ", ".join(f"DATE '{d}'" for d in DAYS)
    con.execute("BEGIN")
    try:
        for table in upkeep.DAY_TABLES:
            column = {"daily_counts": "count", "events": "kafka_offset", "alerts": "kafka_partition"}[table]
            con.execute(
                f"INSERT INTO lake.{table} (local_day, checkpoint_id, {column}, commit_seq) "
                f"SELECT ([{days}])[1 + i % 6], 'CP' || (i % 4), i, ? FROM range(?, ?) t(i)",
                [seq, first, first + rows],
            )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def _fill(con: duckdb.DuckDBPyConnection) -> int:
    """40 file-sized commits and 30 inlined ones, one undone (rows deleted): a live lake."""
    first = 0
    for seq in range(40):
        _commit(con, first, ROWS_PER_COMMIT, seq=seq)
        first += ROWS_PER_COMMIT
    for seq in range(40, 70):
        _commit(con, first, 20, seq=seq)
        first += 20
    for table in upkeep.DAY_TABLES:  # an undo, as sink.py does after a crash
        con.execute(f"DELETE FROM lake.{table} WHERE commit_seq = 7")
    return first


def _contents(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {table: con.execute(f"SELECT * FROM lake.{table} ORDER BY ALL").fetchall() for table in TABLES}


def _row_group_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[int]:
    listed = con.execute("SELECT data_file FROM ducklake_list_files('lake', ?)", [table]).fetchall()
    files = [r[0] for r in listed]
    groups = []
    for file in files:
        query = "SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(?)"
        groups += [r[1] for r in con.execute(query, [file]).fetchall()]
    return groups


def test_compaction_keeps_every_row_in_few_large_files(tmp_path):
    _fill(_lake(tmp_path))
    con = _upkeep(tmp_path)
    before = _contents(con)
    files_before = upkeep.data_files(con)

    stats = upkeep.compact(con, keep=timedelta(0), grace=timedelta(0))

    assert _contents(con) == before
    assert stats.files_before == files_before == 39 * 3  # a file a table a commit, one undone
    assert stats.inlined_rows_flushed == 30 * 20 * 3
    assert stats.files_after == upkeep.data_files(con) <= 2 * len(upkeep.DAY_TABLES)
    assert stats.snapshots_expired > 0 and stats.files_deleted > 0
    inlined = con.execute(f"SELECT count(*) FROM lake.events WHERE filename LIKE '{upkeep.INLINED}'")
    assert inlined.fetchall() == [(0,)]
    # 195,600 rows a table: the row groups are large (the last one takes the rest).
    for table in upkeep.DAY_TABLES:
        groups = sorted(_row_group_rows(con, table), reverse=True)
        assert sum(groups) == len(before[table])
        assert groups[0] >= 100_000
    on_disk = list((tmp_path / "lake").rglob("*.parquet"))
    assert len(on_disk) == stats.files_after  # unlinked files were deleted (grace 0)


def test_unlinked_files_stay_on_disk_for_a_grace(tmp_path):
    """A query that started before the merge may still read the merged-away files."""
    _fill(_lake(tmp_path))
    con = _upkeep(tmp_path)
    on_disk = lambda: len(list((tmp_path / "lake").rglob("*.parquet")))  # noqa: E731
    files = on_disk()

    first = upkeep.compact(con, keep=timedelta(0))  # grace: an hour
    assert first.files_deleted == 0 and on_disk() > files
    soon = upkeep.compact(con, keep=timedelta(0), now=datetime.now(timezone.utc) + timedelta(minutes=30))
    assert soon.files_deleted == 0
    later = upkeep.compact(con, keep=timedelta(0), now=datetime.now(timezone.utc) + timedelta(hours=2))
    assert later.files_deleted > 0 and on_disk() == later.files_after == 3


@pytest.mark.parametrize("rows", [ROWS_PER_COMMIT, 20], ids=["files", "inlined"])
def test_compaction_keeps_the_snapshot_an_undo_travels_to(tmp_path, rows):
    """Also once the written-out inlined rows are purged from the catalog (grace 0)."""
    con = _lake(tmp_path)
    _commit(con, 0, rows, seq=1)
    base = con.execute("SELECT id FROM lake.current_snapshot()").fetchall()[0][0]
    counted = con.execute("SELECT count(*) FROM lake.daily_counts").fetchall()[0][0]
    con.execute("INSERT INTO lake.commits VALUES (0, 2, 99, 1, ?)", [base])
    _commit(con, rows, rows, seq=2)
    con.execute("DELETE FROM lake.daily_counts WHERE commit_seq = 1")  # dead inlined rows
    con = _upkeep(tmp_path)

    stats = upkeep.compact(con, keep=timedelta(0), grace=timedelta(0))

    kept = {r[0] for r in con.execute("SELECT snapshot_id FROM ducklake_snapshots('lake')").fetchall()}
    assert base in kept
    at_base = f"SELECT count(*) FROM (SELECT * FROM lake.daily_counts AT (VERSION => {base}))"
    assert con.execute(at_base).fetchall()[0][0] == counted
    assert con.execute("SELECT count(*) FROM lake.daily_counts").fetchall()[0][0] == rows  # seq 2's
    if rows > INLINE:
        return
    # Written out, the inlined rows stay in the catalog while a kept snapshot sees them ...
    assert stats.inlined_rows_purged == 0 and _inlined_in_catalog(con, "daily_counts") == 2 * rows
    # ... and go once none does: the partition's next commit read a later snapshot.
    later = con.execute("SELECT id FROM lake.current_snapshot()").fetchall()[0][0]
    con.execute("UPDATE lake.commits SET base_snapshot = ?", [later])
    again = upkeep.compact(con, keep=timedelta(0), grace=timedelta(0))
    assert again.inlined_rows_purged >= 3 * 2 * rows
    assert _inlined_in_catalog(con, "daily_counts") == 0
    at_later = f"SELECT count(*) FROM (SELECT * FROM lake.daily_counts AT (VERSION => {later}))"
    assert con.execute(at_later).fetchall()[0][0] == rows


def _inlined_in_catalog(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows, dead or alive, in the catalog's inlined-data tables of ``table``."""
    meta = upkeep.METADATA
    names = con.execute(
        f"SELECT i.table_name FROM {meta}.ducklake_inlined_data_tables i JOIN {meta}.ducklake_table t "
        "USING (table_id) WHERE t.table_name = ? AND t.end_snapshot IS NULL",
        [table],
    ).fetchall()
    return sum(con.execute(f"SELECT count(*) FROM {meta}.{n}").fetchall()[0][0] for (n,) in names)


def test_retention_deletes_exactly_the_old_days(tmp_path):
    _fill(_lake(tmp_path))
    con = _upkeep(tmp_path)
    before = _contents(con)

    assert upkeep.expire(con, 0, TODAY).total == 0
    stats = upkeep.expire(con, 2, TODAY)

    after = _contents(con)
    cutoff = TODAY - timedelta(days=2)
    for table in upkeep.DAY_TABLES:
        kept = [row for row in before[table] if row[0] >= cutoff]
        assert after[table] == kept
        assert stats.rows_deleted[table] == len(before[table]) - len(kept) > 0
    days = con.execute("SELECT DISTINCT local_day FROM lake.events").fetchall()
    assert {r[0] for r in days} == set(DAYS[:3])


def test_retention_deletes_the_dead_letters_written_before_the_cut_off(tmp_path):
    """Dead letters carry no day: those committed before the cut-off go, with the old days."""
    con = _lake(tmp_path)

    def dead_letters(first: int, rows: int) -> None:
        con.execute(
            "INSERT INTO lake.dead_letters (kafka_partition, kafka_offset, reason, detail, commit_seq) "
            "SELECT 0, i, 'undecodable', '', 1 FROM range(?, ?) t(i)",
            [first, first + rows],
        )

    dead_letters(0, 5_000)  # a file
    dead_letters(5_000, 20)  # inlined
    cut = con.execute("SELECT max(snapshot_time) FROM ducklake_snapshots('lake')").fetchall()[0][0]
    cut += timedelta(microseconds=1)
    while datetime.now(timezone.utc) <= cut:  # the next commit is taken after the cut
        threading.Event().wait(0.001)
    dead_letters(6_000, 7)
    con = _upkeep(tmp_path)

    kept = upkeep.expire(con, 2, TODAY, dead_letters_before=cut - timedelta(days=1))
    assert kept.rows_deleted["dead_letters"] == 0
    stats = upkeep.expire(con, 2, TODAY, dead_letters_before=cut)
    assert stats.rows_deleted["dead_letters"] == 5_020
    left = con.execute("SELECT min(kafka_offset), count(*) FROM lake.dead_letters").fetchall()
    assert left == [(6_000, 7)]
    # By default the cut-off is the start of the first day kept: today's letters stay.
    assert upkeep.expire(con, 1, date.today()).rows_deleted["dead_letters"] == 0
    assert upkeep.expire(con, 1, date.today() + timedelta(days=2)).rows_deleted["dead_letters"] == 7


def test_inlined_dead_letters_are_dated_by_their_write_out(tmp_path):
    """A row compaction wrote out of the catalog is dated by that write-out (at most an
    upkeep interval late): kept a little longer, never deleted early."""
    con = _lake(tmp_path)
    con.execute(
        "INSERT INTO lake.dead_letters (kafka_partition, kafka_offset, reason, detail, commit_seq) "
        "SELECT 0, i, 'undecodable', '', 1 FROM range(20) t(i)"
    )
    cut = con.execute("SELECT max(snapshot_time) FROM ducklake_snapshots('lake')").fetchall()[0][0]
    cut += timedelta(microseconds=1)
    while datetime.now(timezone.utc) <= cut:
        threading.Event().wait(0.001)
    con = _upkeep(tmp_path)
    assert upkeep.compact(con, keep=timedelta(0)).inlined_rows_flushed == 20

    assert upkeep.expire(con, 2, TODAY, dead_letters_before=cut).rows_deleted["dead_letters"] == 0
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert upkeep.expire(con, 2, TODAY, dead_letters_before=later).rows_deleted["dead_letters"] == 20


def _totals(where: str = "TRUE", table=lambda name: f"lake.{name}") -> str:
    """A count and sums over every table: one query, one snapshot. ``count(*)``, as an
    analyst writes it: on a reading connection (``read.attach``) it counts the rows read,
    not DuckLake 1.5.5's row counts in the catalog, which were seen to hold rows being
    written out twice for a moment (1 read in ~130 during compaction, pinned or not)."""
    return (
        f"SELECT (SELECT count(*) FROM {table('events')} WHERE {where}), "
        f"(SELECT sum(kafka_offset) FROM {table('events')} WHERE {where}), "
        f"(SELECT count(*) FROM {table('alerts')} WHERE {where}), "
        f"(SELECT sum(count) FROM {table('daily_counts')} WHERE {where})"
    )


TOTALS = _totals()
#: The same, read as ``crossings sql`` and the reports read: at the snapshot pinned just
#: before the query (``read.pin``). Unpinned, a query over the SQLite catalog that spans
#: the write-out's commit was seen to count the written-out rows twice (1 read in ~900).
PINNED_TOTALS = _totals(table=pinned)


class _Reader:
    """A second, read-only connection (as an analyst's or ``crossings sql``'s: its own view
    of the SQLite catalog) running ``query`` without pause on a thread. Each answer is kept
    with what the lake held when it was asked (``expected()``, read under ``lock``: the
    test changes the lake's contents only while holding it; upkeep runs without it)."""

    def __init__(self, tmp_path: Path, query: str, expected) -> None:
        self.con = attach(LakeConfig("ducklake"), tmp_path)  # read-only, as crossings sql
        self.query, self.expected = query, expected
        self.lock = threading.Lock()
        self.seen: list[tuple[object, tuple]] = []
        self.errors: list[BaseException] = []
        self.locked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Reader:
        self._thread.start()
        self.wait_for(1)
        return self

    def __exit__(self, *exc) -> None:
        self.wait_for(len(self.seen) + 1)  # one read after everything
        self._stop.set()
        self._thread.join(60)

    def wait_for(self, reads: int) -> None:
        while len(self.seen) < reads and self._thread.is_alive():
            threading.Event().wait(0.005)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self.lock:
                    want = self.expected()
                    try:
                        pin(self.con)
                        got = self.con.execute(self.query).fetchall()[0]
                    except duckdb.Error as error:  # SQLite's lock: no answer, asked again
                        if not upkeep.refused(error):
                            raise
                        self.locked += 1
                        continue
                self.seen.append((want, got))
        except BaseException as error:  # the test fails on it
            self.errors.append(error)


def test_a_reader_never_sees_a_row_twice_or_miss_one(tmp_path):
    """Reading without pause while the lake is compacted (its inlined rows written out,
    files merged and rewritten), then expired, then compacted again: every answer is the
    lake before the expiry or after it, never a mix, never another count."""
    _fill(_lake(tmp_path))
    con = _upkeep(tmp_path)
    whole = con.execute(TOTALS).fetchall()[0]
    expired = con.execute(_totals(f"local_day >= DATE '{TODAY - timedelta(days=3)}'")).fetchall()[0]

    with _Reader(tmp_path, PINNED_TOTALS, lambda: None) as reader:
        upkeep.compact(con, keep=timedelta(0))
        upkeep.expire(con, 3, TODAY)
        upkeep.compact(con, keep=timedelta(0))

    assert not reader.errors, reader.errors
    seen = [got for _, got in reader.seen]
    print("reads", len(seen), "refused by SQLite's lock", reader.locked)
    assert set(seen) <= {whole, expired}, (set(seen), whole, expired)
    assert seen[0] == whole and seen[-1] == expired
    # once the expiry is seen, never the whole lake again
    assert seen[seen.index(expired) :] == [expired] * (len(seen) - seen.index(expired))


#: Rounds of inlined commits then compaction: DuckLake 1.5.5's own flush, which upkeep ran
#: before, let a reader miss the flushed rows about 2 rounds in 3 (a SQLite catalog).
ROUNDS = 8


def test_every_read_counts_exactly_what_was_committed_while_inlined_rows_leave_the_catalog(tmp_path):
    """The worker's small commits inlined, then compaction writes them out of the catalog,
    merges and expires, ``ROUNDS`` times, with a reader asking throughout: each answer is
    exactly what the lake held (counted by the writer when it last committed)."""
    writer = _lake(tmp_path)
    first = _fill(writer)
    con = _upkeep(tmp_path)
    totals = [writer.execute(TOTALS).fetchall()[0]]
    during: list[int] = []

    with _Reader(tmp_path, PINNED_TOTALS, lambda: totals[-1]) as reader:
        for round_ in range(ROUNDS):
            with reader.lock:  # the worker commits: the reader waits, then expects the new totals
                for seq in range(30):
                    _commit(writer, first, 20, seq=1_000 + round_ * 30 + seq)
                    first += 20
                totals.append(writer.execute(TOTALS).fetchall()[0])
            reads = len(reader.seen)
            stats = upkeep.compact(con, keep=timedelta(0))
            rounds_inlined = 2 if round_ == 0 else 1  # _fill's own 30 small commits, first
            assert stats.inlined_rows_flushed == rounds_inlined * 30 * 20 * len(TABLES)
            during.append(len(reader.seen) - reads)
            reader.wait_for(len(reader.seen) + 1)

    assert not reader.errors, reader.errors
    print("reads during each compaction", during, "refused by SQLite's lock", reader.locked)
    wrong = [(want, got) for want, got in reader.seen if got != want]
    assert not wrong, f"{len(wrong)} of {len(reader.seen)} reads off, e.g. {wrong[:3]}"
    assert len({want for want, _ in reader.seen}) == ROUNDS + 1  # read in every round
    # and while the compactions ran (a quick one on a quiet machine may see none of its own)
    assert sum(1 for n in during if n) >= ROUNDS // 2, during
    assert reader.seen[-1][1] == totals[-1] != totals[0]


def test_a_writer_committing_during_compaction_loses_nothing(tmp_path):
    """The worker commits while its upkeep compacts: each commit lands once, refused
    transactions are retried by whichever side was refused."""
    con = _lake(tmp_path)
    _fill(con)
    expected = _contents(con)["events"]
    writer = _lake(tmp_path)  # the worker's sink: its own connection
    first = 10_000_000
    done = threading.Event()
    errors: list[BaseException] = []
    commits = 0

    def write() -> None:
        nonlocal commits
        try:
            for seq in range(100, 140):
                start = first + seq * 10_000
                upkeep._retry(lambda s=start, q=seq: _commit(writer, s, 50 if q % 2 else 1_500, seq=q))
                commits += 1
                if done.is_set() and commits >= 3:
                    break
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    upkeep.compact(con, keep=timedelta(0), grace=timedelta(0))
    done.set()
    thread.join(120)
    upkeep.compact(con, keep=timedelta(0), grace=timedelta(0))

    assert not errors
    added = sum(50 if q % 2 else 1_500 for q in range(100, 100 + commits))
    events = _contents(con)["events"]
    assert len(events) == len(expected) + added
    offsets = con.execute("SELECT kafka_offset FROM lake.events").fetchall()
    assert len(set(offsets)) == len(offsets)  # each commit's rows once


def test_a_reading_connection_counts_rows_not_the_catalogs_row_counts(tmp_path):
    """``count(*)`` and ``count(column)`` over a lake table read the rows on the
    connections ``crossings sql``, the reports and replays read through; a plain DuckDB
    connection answers them from the catalog (the row counts compaction upsets)."""
    _fill(_lake(tmp_path))
    reader = attach(LakeConfig("ducklake"), tmp_path)
    plain = attach(LakeConfig("ducklake"), tmp_path)
    plain.execute("SET disabled_optimizers = ''")  # DuckDB's default
    for query in ("SELECT count(*) FROM lake.events", "SELECT count(kafka_offset) FROM lake.events"):
        assert "DUCKLAKE_SCAN" in reader.execute(f"EXPLAIN {query}").fetchall()[0][1]
        assert "DUCKLAKE_SCAN" not in plain.execute(f"EXPLAIN {query}").fetchall()[0][1]
        rows = [(39 * ROWS_PER_COMMIT + 30 * 20,)]  # _fill's commits, one undone
        assert reader.execute(query).fetchall() == plain.execute(query).fetchall() == rows


def test_retention_setting_fails_fast_naming_itself():
    assert load_upkeep({}).retention_days == 0
    assert load_upkeep({"CROSSINGS_LAKE_RETENTION_DAYS": "400"}).retention_days == 400
    for bad in ("forty", "-1", "1.5"):
        with pytest.raises(ConfigError, match="CROSSINGS_LAKE_RETENTION_DAYS"):
            load_upkeep({"CROSSINGS_LAKE_RETENTION_DAYS": bad})


def test_cli_compacts_and_expires(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSINGS_HOME", str(tmp_path))
    monkeypatch.setenv("CROSSINGS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CROSSINGS_LAKE", "ducklake")
    con = _lake(tmp_path / "data")
    for seq in range(5):
        _commit(con, seq * ROWS_PER_COMMIT, ROWS_PER_COMMIT, seq=seq)
    _commit(con, 5 * ROWS_PER_COMMIT, 20, seq=5)  # inlined: the command's connection writes it out
    rows = con.execute("SELECT count(*) FROM lake.events").fetchall()[0][0]
    con.close()
    runner = CliRunner()

    result = runner.invoke(cli, ["lake", "compact", "--keep-hours", "0"])
    assert result.exit_code == 0, result.output
    assert "files 15 -> 3, 60 inlined rows written out" in result.output

    result = runner.invoke(cli, ["lake", "expire"])
    assert result.exit_code == 2 and "CROSSINGS_LAKE_RETENTION_DAYS" in result.output
    monkeypatch.setenv("CROSSINGS_LAKE_RETENTION_DAYS", "nope")
    result = runner.invoke(cli, ["lake", "expire"])
    assert result.exit_code == 2 and "CROSSINGS_LAKE_RETENTION_DAYS='nope'" in result.output
    monkeypatch.setenv("CROSSINGS_LAKE_RETENTION_DAYS", "100000")  # 1752: nothing is that old
    result = runner.invoke(cli, ["lake", "expire"])
    assert result.exit_code == 0, result.output
    assert "events 0," in result.output
    result = runner.invoke(cli, ["lake", "expire", "--days", "1"])  # the rows' days are past
    assert result.exit_code == 0, result.output
    assert f"events {rows}," in result.output
    con = _lake(tmp_path / "data")
    assert con.execute("SELECT count(*) FROM lake.events").fetchall()[0][0] == 0


def test_the_sqlite_catalog_is_opened_in_wal_mode(tmp_path):
    """Readers must not lock the writer out (``wal.py``): SQLite's WAL mode, kept in the file."""
    import sqlite3

    _lake(tmp_path).close()
    connection = sqlite3.connect(tmp_path / "lake.sqlite")
    assert connection.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
