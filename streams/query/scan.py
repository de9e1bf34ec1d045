"""Reading the Parquet history with DuckDB: which files, which filters, bound parameters.

Nothing a user types is pasted into SQL: checkpoint, days, direction and limits are bound
parameters, and so is the data itself. The files are listed here with ``pathlib`` (which
treats the root literally, so a data root containing ``[`` or ``*`` still works, and which
lets us skip dot-files such as a half-written ``.tmp-*`` file) and passed as one bound
list: ``read_parquet($files, hive_partitioning = true, ...)``. DuckDB 2.0 accepts a bound
parameter there, as a string glob or a list of paths; it does not accept an *empty* list,
so a dataset with no files (no alerts yet) short-circuits to an empty result.

Folder names prune files before DuckDB opens them; the same filters are also in each
query's WHERE clause, so the SQL is correct on its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from streams.settings.lake import CATALOG_FILE, LakeConfig, folder_lake

DayLike = date | str | None

SCAN = (
    "read_parquet($files, hive_partitioning = true, union_by_name = true, "
    "hive_types = {'date': DATE, 'checkpoint': VARCHAR})"
)

FILTER = (
    "($checkpoint IS NULL OR checkpoint = $checkpoint) "
    "AND ($since IS NULL OR date >= $since) "
    "AND ($until IS NULL OR date <= $until)"
)


#: A worker renames each commit's new daily-count snapshot over the old one (atomically,
#: so a reader opening it sees one whole file), but DuckDB opens a file more than once per
#: query (its footer when binding, its row groups when scanning), so the second open can
#: meet the next version, and fail with any of several messages ("Invalid data",
#: "Prefetch ... outside file", ...). A query that failed while a file it read changed is
#: run again from a fresh listing; any other error is shown at once.
READ_ATTEMPTS = 5

T = TypeVar("T")
Fingerprint = dict[str, tuple[int, int, int]]


def fingerprint(paths: Iterable[Path]) -> Fingerprint:
    """Each file's inode, modification time and size (a replaced file changes them)."""
    found: Fingerprint = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found[str(path)] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


def lake_files(root: Path) -> list[Path]:
    """Every Parquet file of the lake at ``root`` (for a fingerprint of all of it)."""
    return sorted(Path(root).glob("*/**/*.parquet"))


def read_retrying(
    run: Callable[[], T], files: Callable[[], Iterable[Path]], attempts: int = READ_ATTEMPTS
) -> T:
    """``run()``, again (after a short pause) when it failed while one of ``files()``
    changed under it; any other error at once."""
    for attempt in range(attempts):
        before = fingerprint(files())
        try:
            return run()
        except Exception:
            if attempt == attempts - 1 or fingerprint(files()) == before:
                raise
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class DuckLakeRoot:
    """A DuckLake lake (``CROSSINGS_LAKE``) where the reports take a lake's root: the same
    queries, over its tables instead of the Parquet folders."""

    lake: LakeConfig
    data_dir: Path

    def __str__(self) -> str:
        return self.lake.describe(self.data_dir)


class ParquetRoot(type(Path())):  # type: ignore[misc]  # PosixPath or WindowsPath
    """A folder read as a Parquet lake whatever else it holds (``CROSSINGS_LAKE=parquet``
    chose it, or the folder holds only that lake): :func:`lake_at` leaves it alone."""


def lake_at(root: Path | DuckLakeRoot) -> Path | DuckLakeRoot:
    """What a report reads at ``root``: a folder holding the default DuckLake lake's catalog
    (``lake.sqlite``, what the worker writes by default) is that lake; any other folder, or
    a :class:`ParquetRoot`, is read as a Parquet lake."""
    if isinstance(root, DuckLakeRoot | ParquetRoot) or not (Path(root) / CATALOG_FILE).is_file():
        return root
    return DuckLakeRoot(folder_lake(os.environ), Path(root))


@cache
def _ducklake(root: DuckLakeRoot) -> duckdb.DuckDBPyConnection:
    """One read-only attachment per lake and process (attaching loads four extensions)."""
    from streams.sinks.ducklake.read import attach

    connection = attach(root.lake, root.data_dir)
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def ducklake_rows(root: DuckLakeRoot, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict]:
    """``sql`` over the attached lake (its tables as ``lake.<name>``, or ``read.pinned``:
    the snapshot pinned just before), as dicts."""
    from streams.sinks.ducklake.read import pin

    cursor = _ducklake(root).cursor()
    try:
        pin(cursor)  # the query's pinned tables read one snapshot, whoever commits meanwhile
        cursor.execute(sql, dict(parameters or {}))
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    finally:
        cursor.close()


def ducklake_has(root: DuckLakeRoot, dataset: str) -> bool:
    from streams.sinks.ducklake.read import has_table

    return has_table(_ducklake(root), dataset)


def _fetch_ducklake(
    sql: str, root: DuckLakeRoot, dataset: str, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """A report's query with its ``SCAN`` over the dataset's table, columns named as the
    Parquet folders name them (``date``, ``checkpoint``)."""
    if not ducklake_has(root, dataset):
        return []
    from streams.sinks.ducklake.read import pinned

    table = (
        "(SELECT local_day AS date, checkpoint_id AS checkpoint, * EXCLUDE (local_day, checkpoint_id) "
        f"FROM {pinned(dataset)})"
    )
    parameters.pop("files")
    return ducklake_rows(root, sql.replace(SCAN, table), parameters)


def fetch_rows(
    sql: str,
    root: Path | DuckLakeRoot,
    dataset: str,
    checkpoint: str | None,
    since: DayLike,
    until: DayLike,
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    since_day, until_day = _as_day("since", since), _as_day("until", until)
    root = lake_at(root)
    if isinstance(root, DuckLakeRoot):
        parameters = {"files": None, "checkpoint": checkpoint, "since": since_day, "until": until_day}
        return _fetch_ducklake(sql, root, dataset, {**parameters, **(extra or {})})

    def listed() -> list[str]:
        return partition_files(Path(root), dataset, checkpoint, since_day, until_day)

    def run() -> list[dict[str, Any]]:
        files = listed()
        if not files:
            return []
        parameters = {
            "files": files,
            "checkpoint": checkpoint,
            "since": since_day,
            "until": until_day,
            **(extra or {}),
        }
        with duckdb.connect() as connection:
            connection.execute("SET TimeZone = 'UTC'")
            cursor = connection.execute(sql, parameters)
            columns = [column[0] for column in cursor.description]
            return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]

    return read_retrying(run, lambda: map(Path, listed()))


def partition_files(
    root: Path, dataset: str, checkpoint: str | None, since: date | None, until: date | None
) -> list[str]:
    """Parquet files of a dataset whose folders match the filters; dot-files skipped."""
    files = []
    for path in (root / dataset).glob("date=*/checkpoint=*/*.parquet"):
        if path.name.startswith("."):
            continue
        try:
            local_day = date.fromisoformat(path.parent.parent.name.removeprefix("date="))
        except ValueError:
            continue  # not a folder this project writes
        if checkpoint is not None and path.parent.name != f"checkpoint={checkpoint}":
            continue
        if (since is not None and local_day < since) or (until is not None and local_day > until):
            continue
        files.append(str(path))
    return sorted(files)


def _as_day(name: str, value: DayLike) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be a day like 2025-03-01, got {value!r}") from None
    raise ValueError(f"{name} must be a date or YYYY-MM-DD, got {value!r}")
