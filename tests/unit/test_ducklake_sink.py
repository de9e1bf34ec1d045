"""The DuckLake lake keeps the commit protocol's promises (``streams.sinks.ducklake.sink``).

The lake is written inside the Kafka transaction, so a crash between the catalog's commit
and Kafka's leaves the catalog one commit ahead: opening the partition again (or a retry
of that commit in the same process) must undo it, and the records processed again, which
may be cut into other batches, written afresh. The oracle is brute force over what was
sent (``test_core``): the first copy of each event id counts, once. A commit's rows are
visible to a reader at once (no staging), a zombie holding an older epoch is refused, and
a commit replaces its partition's daily counts of each day it touched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core import PARTITIONS, engine, make_records, oracle

from streams.core.engine import Engine
from streams.core.ports import Fenced
from streams.core.task import CommitFailed
from streams.replay.outputs import LocalOutputs
from streams.settings.lake import LakeConfig
from streams.sinks.ducklake.read import attach
from streams.sinks.ducklake.sink import DuckLakeSink, LakeAhead, LakeFenced

LAKE = LakeConfig("ducklake")


class Crash(BaseException):
    """The process dies here (not an error the commit protocol could handle)."""


class CrashingSink(DuckLakeSink):
    """Dies right after the catalog committed the flush of a commit numbered in
    ``crash_after`` (counted over this sink's flushes): the catalog is ahead of Kafka."""

    def __init__(self, data: Path, crash_after: set[int]) -> None:
        super().__init__(_location(data))
        self.crash_after = crash_after
        self.flushes = 0

    def flush(self, batch):
        flushed = super().flush(batch)
        self.flushes += 1
        if self.flushes in self.crash_after:
            raise Crash
        return flushed


class KafkaFails(LocalOutputs):
    """The Kafka transaction fails after the lake's files (here: its catalog commit) were
    written, ``failures`` times: the same process retries the commit."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, batch, write_files):
        if self.failures:
            self.failures -= 1
            write_files()
            raise ConnectionError("broker went away (injected)")
        return await super().publish(batch, write_files)


def _location(data: Path):
    from streams.sinks.ducklake.sink import location_of

    return location_of(LAKE, data)


def read(data: Path) -> tuple[list[str], Counter, dict[int, tuple[int, int]]]:
    """Event ids, (checkpoint, direction, day) -> sum of daily counts, and each
    partition's (commit sequence, epoch), as another process reading the lake sees them."""
    con = attach(LAKE, data)
    try:
        ids = [row[0] for row in con.execute("SELECT event_id FROM lake.events").fetchall()]
        counts: Counter = Counter()
        for checkpoint, direction, day, count in con.execute(
            "SELECT checkpoint_id, direction, local_day, sum(count) FROM lake.daily_counts GROUP BY ALL"
        ).fetchall():
            counts[(checkpoint, direction, day)] += count
        rows = con.execute("SELECT kafka_partition, commit_seq, epoch FROM lake.commits").fetchall()
        commits = {p: (seq, epoch) for p, seq, epoch in rows}
    finally:
        con.close()
    return ids, counts, commits


def parquet_files(data: Path) -> list[Path]:
    return sorted(data.rglob("*.parquet"))


def records_of(count: int, resent: int = 0):
    spec = [(n % (count - resent) if resent else n, n % 8, n * 7, n % 2) for n in range(count)]
    return make_records(spec)


def test_a_commits_rows_are_visible_at_once_and_inlined(tmp_path):
    records = records_of(120)
    data = tmp_path / "data"
    sink = DuckLakeSink(_location(data))
    core = engine(tmp_path, sink)

    async def go() -> None:
        await core.process(records[:60])
        await core.commit()
        # A reader in another connection sees the commit's rows now: nothing is staged.
        ids, counts, commits = read(data)
        assert sorted(ids) == sorted({i for i in ids}) and len(ids) == sum(oracle(records[:60]).values())
        assert +counts == oracle(records[:60])
        assert {p: seq for p, (seq, _) in commits.items()} == dict.fromkeys(range(PARTITIONS), 1)
        await core.process(records[60:])
        await core.commit()
        await core.close(list(core.tasks))

    asyncio.run(go())
    sink.close()
    ids, counts, _ = read(data)
    assert len(ids) == len(set(ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)
    assert parquet_files(data) == []  # small commits are inlined in the catalog


def test_a_commit_replaces_its_partitions_daily_counts_of_the_days_it_touched(tmp_path):
    # Twelve commits of the same days: the daily counts hold one snapshot per partition,
    # checkpoint and day (the last), not one per commit.
    records = records_of(240)
    data = tmp_path / "data"
    sink = DuckLakeSink(_location(data))
    core = engine(tmp_path, sink)

    async def go() -> None:
        for start in range(0, len(records), 20):
            await core.process(records[start : start + 20])
            await core.commit()
        await core.close(list(core.tasks))

    asyncio.run(go())
    sink.close()
    con = attach(LAKE, data)
    doubled = con.execute(
        "SELECT kafka_partition, checkpoint_id, local_day, direction, nationality, purpose, count(*) "
        "FROM lake.daily_counts GROUP BY ALL HAVING count(*) > 1"
    ).fetchall()
    con.close()
    assert doubled == []
    assert +read(data)[1] == oracle(records)


def test_a_zombie_holding_an_older_epoch_is_refused(tmp_path):
    records = [r for r in records_of(80) if r.partition == 0]
    data = tmp_path / "data"
    zombie = DuckLakeSink(_location(data))
    # A file catalog takes one writing process: the other writer is a second connection.
    owner = DuckLakeSink(_location(data), con=zombie.con.cursor())
    core = engine(tmp_path, zombie)

    async def go() -> None:
        await core.process(records)  # opens the partition: epoch 1
        owner.open_partition(0, 0)  # it moved while this one stalled: epoch 2
        assert await core.commit() == []
        # Refused, and the task let the partition go, as after Kafka's own fence.
        assert core.take_fenced() == {0} and 0 not in core.tasks

    asyncio.run(go())
    assert issubclass(LakeFenced, Fenced)
    ids, _, commits = read(data)
    assert ids == [] and commits[0] == (0, 2)
    zombie.close()


def test_opening_undoes_the_catalogs_commit_past_kafkas_and_refuses_a_lake_further_ahead(tmp_path):
    records = records_of(200)
    data = tmp_path / "data"
    first = [r for r in records if r.partition == 0][:50]
    second = [r for r in records if r.partition == 0][50:90]
    sink = CrashingSink(data, crash_after={2})
    core = engine(tmp_path, sink)

    async def go() -> None:
        await core.process(first)
        await core.commit()  # commit 1: in the catalog and in "Kafka"
        await core.process(second)
        with pytest.raises(Crash):
            await core.commit()  # commit 2: in the catalog only
        await core.close(list(core.tasks))

    asyncio.run(go())
    sink.close()
    ids, counts, commits = read(data)
    assert commits[0][0] == 2 and len(ids) == sum(oracle(first + second).values())

    again = DuckLakeSink(_location(data))
    assert again.open_partition(0, 1) == 1  # one commit undone
    ids, counts, commits = read(data)
    assert commits[0] == (1, 2)  # back at commit 1, under a new epoch
    assert len(ids) == len(set(ids)) == sum(oracle(first).values())
    assert +counts == oracle(first)  # the daily counts as commit 1 left them
    with pytest.raises(LakeAhead, match="new lake"):
        again.open_partition(0, 0)  # more than one commit ahead: not this stream's lake
    again.close()


def test_a_retry_after_kafka_failed_replaces_the_catalogs_commit_with_the_new_batch(tmp_path):
    # The catalog took commit 1, Kafka's transaction failed; more records arrive before the
    # retry, so commit 1 is made again with more rows than the catalog holds for it.
    records = [r for r in records_of(200, resent=40) if r.partition == 0]
    data = tmp_path / "data"
    sink = DuckLakeSink(_location(data))
    core = engine(tmp_path, sink, KafkaFails(1))

    async def go() -> None:
        await core.process(records[:40])
        with pytest.raises(CommitFailed):
            await core.commit()
        await core.process(records[40:])
        await core.commit()
        await core.close(list(core.tasks))

    asyncio.run(go())
    sink.close()
    ids, counts, commits = read(data)
    assert commits[0][0] == 1
    assert len(ids) == len(set(ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


async def _run_with_crashes(records, root: Path, sizes: list[int], crash_after: set[int]) -> None:
    """Deliver ``records`` in batches of ``sizes`` (cycled), committing after each; the
    lake dies after the catalog's commits numbered in ``crash_after``; after each crash a
    new process (engine and sink) gets every record after the committed offsets again, in
    batches cut elsewhere (the sizes rotated)."""
    committed = dict.fromkeys(range(PARTITIONS), -1)
    flushes = 0
    data = root / "data"

    def new_engine() -> tuple[Engine, CrashingSink]:
        sink = CrashingSink(data, {n - flushes for n in crash_after if n > flushes})
        return engine(root, sink), sink

    core, sink = new_engine()
    pending, turn = list(records), 0
    while pending:
        size = sizes[turn % len(sizes)]
        batch, pending, turn = pending[:size], pending[size:], turn + 1
        await core.process(batch)
        try:
            for report in await core.commit():
                committed[report.batch.partition] = report.batch.last_offset
        except Crash:
            flushes += sink.flushes
            await core.close(list(core.tasks))
            sink.close()
            core, sink = new_engine()
            # Kafka delivers again from the committed offsets.
            sent = records[: len(records) - len(pending)]
            pending = [r for r in sent if r.offset > committed[r.partition]] + pending
            turn += 1
    await core.commit()
    await core.close(list(core.tasks))
    sink.close()


@settings(max_examples=6, deadline=None)
@given(
    spec=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 7), st.integers(0, 2 * 24 * 60), st.integers(0, 1)),
        min_size=10,
        max_size=80,
    ),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    crash_after=st.sets(st.integers(1, 8), min_size=1, max_size=3),
)
def test_the_lake_is_exact_after_crashes_between_the_catalogs_commit_and_kafkas(
    tmp_path_factory, spec, sizes, crash_after
):
    records = make_records(sorted(spec, key=lambda item: item[2]))
    root = tmp_path_factory.mktemp("crashed")
    asyncio.run(_run_with_crashes(records, root, sizes, crash_after))
    ids, counts, _ = read(root / "data")
    expected = oracle(records)
    assert len(ids) == len(set(ids)) == sum(expected.values())
    assert +counts == expected


def test_crossings_sql_reads_the_ducklake_lake_while_its_writer_is_open(tmp_path):
    from click.testing import CliRunner

    from streams.cli.main import cli

    records = records_of(150)
    data = tmp_path / "data"
    sink = DuckLakeSink(_location(data))
    core = engine(tmp_path, sink)
    env = {"CROSSINGS_LAKE": "ducklake", "CROSSINGS_HOME": str(tmp_path / "home")}

    def sql(statement: str) -> str:
        result = CliRunner().invoke(cli, ["sql", statement, "--data", str(data), "--format", "csv"], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    # Before any commit: the views exist, with no rows.
    assert sql("SELECT count(*) AS n FROM events").splitlines()[-1] == "0"

    async def go() -> None:
        await core.process(records)
        await core.commit()

    asyncio.run(go())  # the writer stays open, as a running worker's
    expected = oracle(records)
    assert sql("SELECT count(*) AS n FROM events").splitlines()[-1] == str(sum(expected.values()))
    by_day = sql(
        "SELECT checkpoint_id, direction, local_day, sum(count) AS n FROM daily_counts "
        "GROUP BY ALL ORDER BY ALL"
    )
    found = Counter()
    for line in by_day.splitlines()[1:]:
        checkpoint, direction, day, n = line.split(",")
        found[(checkpoint, direction, date.fromisoformat(day))] += int(n)
    assert found == expected
    header = sql("SELECT * FROM events LIMIT 1").splitlines()[0].split(",")
    assert header[:3] == ["local_day", "checkpoint_id", "event_id"] and "commit_seq" not in header
    asyncio.run(core.close(list(core.tasks)))
    sink.close()


def test_crossings_report_gives_the_same_answers_over_both_lakes(tmp_path):
    # The same records through the Parquet lake (every commit published) and DuckLake:
    # every report, in JSON, says the same.
    from click.testing import CliRunner

    from streams.cli.main import cli
    from streams.sinks.parquet.sink import LakeSink

    records = records_of(400, resent=50)
    duck = DuckLakeSink(_location(tmp_path / "duck" / "data"))
    sinks = {"parquet": LakeSink(tmp_path / "parquet" / "data"), "ducklake": duck}

    async def write(name: str) -> None:
        core = engine(tmp_path / name, sinks[name])
        for start in range(0, len(records), 100):
            await core.process(records[start : start + 100])
            await core.commit()
        await core.close(list(core.tasks))

    answers = {}
    for name in sinks:
        asyncio.run(write(name))
        env = {"CROSSINGS_LAKE": name, "CROSSINGS_HOME": str(tmp_path / "home")}
        data = str(tmp_path / ("duck" if name == "ducklake" else "parquet") / "data")
        answers[name] = {}
        for what in ("daily", "nationality", "alerts", "reconcile"):
            result = CliRunner().invoke(cli, ["report", what, "--data", data, "--format", "json"], env=env)
            assert result.exit_code == 0, (name, what, result.output)
            answers[name][what] = result.output
    duck.close()
    reconciled = json.loads(answers["ducklake"]["reconcile"])
    assert reconciled["agree"] and reconciled["events_total"] == sum(oracle(records).values())
    assert len(json.loads(answers["ducklake"]["daily"])) > 10
    assert answers["ducklake"] == answers["parquet"]


def test_a_table_of_an_older_row_version_gets_the_new_columns_and_reads_them_null(tmp_path):
    # The lake was made by a version whose events had one column fewer (here: dropped from
    # the table); opening it with today's rows adds it back, the old row reads null, new
    # commits fill it.
    from streams.sinks.ducklake.sink import TABLES

    data = tmp_path / "data"
    newest = [f.name for f in TABLES["events"]][-2]  # kafka_timestamp, before commit_seq
    first = DuckLakeSink(_location(data))
    first.con.execute(f'ALTER TABLE lake.events DROP COLUMN "{newest}"')
    first.con.execute(
        "INSERT INTO lake.events BY NAME SELECT DATE '2024-03-01' AS local_day, 'dostyk' AS checkpoint_id, "
        "'old-1' AS event_id, 'entry' AS direction, TIMESTAMPTZ '2024-03-01 00:00:00+00' AS occurred_at, "
        "1::TINYINT AS local_hour, 'KAZ' AS nationality, 'work' AS purpose, 'car' AS mode, 'ok' AS outcome, "
        "0 AS kafka_partition, 0 AS kafka_offset, 0 AS commit_seq"
    )
    first.close()
    again = DuckLakeSink(_location(data))
    core = engine(tmp_path, again)
    records = [r for r in records_of(40) if r.partition == 0]

    async def go() -> None:
        await core.process(records)
        await core.commit()
        await core.close(list(core.tasks))

    asyncio.run(go())
    again.close()
    con = attach(LAKE, data)
    rows = con.execute(f'SELECT event_id, "{newest}" IS NULL FROM lake.events ORDER BY event_id').fetchall()
    con.close()
    assert ("old-1", True) in rows and len(rows) > 1
    assert all(not missing for event_id, missing in rows if event_id != "old-1")


def test_a_commit_meeting_another_processs_lock_on_the_sqlite_catalog_is_retried(tmp_path):
    """SQLite answers "database is locked" at once (DuckDB's SQLite catalog sets no busy
    timeout) while another process writes the catalog: a replay's other job. DuckLake
    fails the commit with a TransactionException, a refusal for now: the sink retries it,
    and the commit lands once."""
    records = records_of(120)
    data = tmp_path / "data"
    sink = DuckLakeSink(_location(data))
    core = engine(tmp_path, sink)
    hold = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(0.5); c.execute('ROLLBACK')"
    )

    async def go() -> None:
        await core.process(records[:60])
        await core.commit()
        other = subprocess.Popen(
            [sys.executable, "-c", hold, str(data / "lake.sqlite")], stdout=subprocess.PIPE, text=True
        )
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "held"
            started = time.monotonic()
            await core.process(records[60:])
            await core.commit()
            waited = time.monotonic() - started
        finally:
            other.wait(timeout=30)
        assert waited >= 0.3  # it did meet the lock
        await core.close(list(core.tasks))

    asyncio.run(go())
    sink.close()
    ids, counts, commits = read(data)
    assert len(ids) == len(set(ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)
    assert {p: seq for p, (seq, _) in commits.items()} == dict.fromkeys(range(PARTITIONS), 2)
