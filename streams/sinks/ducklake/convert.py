"""A lake of the project's own Parquet folders, copied into DuckLake tables (issue 19, item 6).

``crossings lake convert FOLDER``: the published files of ``events``, ``alerts``,
``daily_counts`` and ``dead_letters`` become the rows of the DuckLake tables, in one
catalog transaction (a failure leaves the DuckLake lake as it was). Rows keep what the
DuckLake sink stamps them with: the folder's day and checkpoint as columns, the source
partition and the publishing commit's sequence from the file name
(``p<PPP>-<seq>-o<first>-<last>.parquet``; a daily-count snapshot ``p<PPP>.parquet`` gets
sequence 0). Alerts are copied, not recomputed: the history says what was raised then.

No row of ``commits`` is written: a worker opening a partition of the converted lake
records the sequence its own state committed (``DuckLakeSink.open_partition``), so nothing
converted is ever taken for a commit to undo (undo deletes rows of sequences past the
committed one; converted rows carry sequences already committed, or 0).

Refused, saying what to do: rows still staged in the Parquet lake (``_staging/``: a worker
that was killed publishes them at its next start and stop), and a DuckLake lake that
already holds rows (a second run would double them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from streams.sinks.ducklake.commit import ALIAS, transaction
from streams.sinks.ducklake.sink import TABLES
from streams.sinks.parquet.layout import ALERTS, DAILY_COUNTS, DEAD_LETTERS, EVENTS

#: The folder's files, as ``read_parquet`` globs (``date=D/checkpoint=C`` folders, or none).
_GLOBS = {
    EVENTS: "events/*/*/*.parquet",
    ALERTS: "alerts/*/*/*.parquet",
    DAILY_COUNTS: "daily_counts/*/*/*.parquet",
    DEAD_LETTERS: "dead_letters/*.parquet",
}
#: Partition and sequence out of a commit file's name (a snapshot's name has no sequence).
_PARTITION = r"regexp_extract(filename, '/p(\d{3})[-.][^/]*$', 1)::INTEGER"
_SEQ = r"coalesce(nullif(regexp_extract(filename, '/p\d{3}-(\d{10})-[^/]*$', 1), '')::BIGINT, 0)"
#: How each stamped column of the DuckLake tables is read from the Parquet lake.
_STAMPS = {
    "local_day": 'CAST("date" AS DATE)',
    "checkpoint_id": 'CAST("checkpoint" AS VARCHAR)',
    "kafka_partition": _PARTITION,
    "commit_seq": _SEQ,
}


class ConvertRefused(ValueError):
    """The conversion would lose or double rows; the message says what to do first."""


@dataclass(frozen=True)
class ConvertStats:
    rows: dict[str, int]
    files: dict[str, int]
    seconds: float


def staged_files(source: Path) -> list[Path]:
    return sorted((source / "_staging").glob("**/*.parquet"))


def convert(source: Path, con: duckdb.DuckDBPyConnection) -> ConvertStats:
    """Copy the Parquet lake under ``source`` into the DuckLake lake attached on ``con``
    (its tables made by ``open_lake``, ``dead_letters`` too if ``source`` has any)."""
    started = time.perf_counter()
    source = source.resolve()
    if not (source / EVENTS).is_dir():
        raise ConvertRefused(f"{source} holds no events/ folder: give the Parquet lake's data folder")
    staged = staged_files(source)
    if staged:
        raise ConvertRefused(
            f"{len(staged)} file(s) still staged under {source / '_staging'}: start the worker on "
            "this lake and stop it (it publishes them), then convert"
        )
    present = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [ALIAS]
        ).fetchall()
    }
    for table in TABLES:
        if table in present and con.execute(f"SELECT count(*) FROM {ALIAS}.{table}").fetchall()[0][0]:
            raise ConvertRefused(
                f"the DuckLake lake's {table} table already holds rows: convert into a new lake "
                "(another CROSSINGS_LAKE catalog and data path)"
            )
    rows: dict[str, int] = {}
    files: dict[str, int] = {}
    with transaction(con):
        for table, pattern in _GLOBS.items():
            found = sorted(source.glob(pattern))
            if not found:
                continue
            if table not in present:
                raise ConvertRefused(f"{source} has {table}/ but the DuckLake lake has no {table} table")
            files[table] = len(found)
            rows[table] = _copy(con, table, [str(path) for path in found])
    return ConvertStats(rows, files, time.perf_counter() - started)


def _copy(con: duckdb.DuckDBPyConnection, table: str, paths: list[str]) -> int:
    hive = table != DEAD_LETTERS
    scan = (
        f"read_parquet($paths, filename = true, union_by_name = true, hive_partitioning = {hive}, "
        "hive_types_autocast = false)"
    )
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}", {"paths": paths}).fetchall()}
    # A file's own column first (events and dead letters carry kafka_partition), then the
    # stamp from the folder or file name; a column added after the file was written (a later
    # row version) reads null.
    columns = [f'{_value(f.name, present)} AS "{f.name}"' for f in TABLES[table]]
    inserted = con.execute(
        f"INSERT INTO {ALIAS}.{table} BY NAME SELECT {', '.join(columns)} FROM {scan}", {"paths": paths}
    ).fetchall()
    return int(inserted[0][0])


def _value(name: str, present: set[str]) -> str:
    return f'"{name}"' if name in present else _STAMPS.get(name, "NULL")
