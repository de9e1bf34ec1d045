"""Reading a DuckLake lake: what the tests, ``crossings replay`` and the query views attach."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from streams.settings.lake import LakeConfig
from streams.sinks.ducklake.commit import ALIAS, _install_extensions, _secret


def attach(
    lake: LakeConfig, data_dir: Path, con: duckdb.DuckDBPyConnection | None = None, *, alias: str = ALIAS
) -> duckdb.DuckDBPyConnection:
    """``con`` (or a new in-memory connection) with the lake attached read-only as ``alias``."""
    from streams.sinks.ducklake.sink import location_of

    location = location_of(lake, data_dir)
    con = con if con is not None else duckdb.connect(config={"autoinstall_known_extensions": False})
    _install_extensions(con)
    if location.s3 is not None:
        _secret(con, location.s3)
    con.execute(f"ATTACH 'ducklake:{location.catalog}' AS {alias} (READ_ONLY)")
    con.execute(f"SET disabled_optimizers = '{COUNTS_FROM_CATALOG}'")
    return con


#: The DuckDB optimizer that answers ``count(*)``, and ``count(column)`` of a column without
#: nulls, from DuckLake's row counts in the catalog instead of the rows. DuckLake 1.5.5's
#: counts were seen to hold rows being written out of the catalog twice for a moment (1 read
#: in ~130 during compaction, pinned or not) while the rows read right in the same query, so
#: reading connections count rows. It costs a scan: 20 M rows counted in 10 ms, not 5.
COUNTS_FROM_CATALOG = "statistics_propagation"


#: The DuckDB variable that pinned reads take their snapshot from (:func:`pin`).
SNAPSHOT_VARIABLE = "lake_snapshot"


def pin(con: duckdb.DuckDBPyConnection, alias: str = ALIAS) -> int:
    """Fix the snapshot that :func:`pinned` reads on ``con`` see: the lake's newest now.

    A query reads each table's metadata in statements of its own; reads at a snapshot fixed
    before the query filter every table by that one id, so a query joining or comparing
    tables sees them as of one commit however long it runs (compaction keeps what an older
    snapshot reads for a grace, ``upkeep.py``). Counts read rows, not the catalog's row
    counts (:data:`COUNTS_FROM_CATALOG`)."""
    snapshot = int(con.execute(f"SELECT id FROM {alias}.current_snapshot()").fetchall()[0][0])
    con.execute(f"SET VARIABLE {SNAPSHOT_VARIABLE} = {snapshot}")
    return snapshot


def pinned(table: str, alias: str = ALIAS) -> str:
    """``table`` as a query's FROM item read at the snapshot :func:`pin` fixed."""
    return f"{alias}.{table} AT (VERSION => getvariable('{SNAPSHOT_VARIABLE}'))"


def has_table(con: duckdb.DuckDBPyConnection, name: str, alias: str = ALIAS) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [alias, name]
    ).fetchall()
    return bool(found[0][0])


def read_table(
    lake: LakeConfig, data_dir: Path, name: str, *, exclude: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Every row of one table (none if the lake or the table does not exist yet)."""
    con = attach(lake, data_dir)
    try:
        if not has_table(con, name):
            return []
        columns = f"* EXCLUDE ({', '.join(exclude)})" if exclude else "*"
        return con.execute(f"SELECT {columns} FROM {ALIAS}.{name}").to_arrow_table().to_pylist()
    finally:
        con.close()
