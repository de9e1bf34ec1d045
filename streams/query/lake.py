"""The lake as DuckDB views, for ``crossings sql`` and anyone who wants a connection.

The views themselves are SQL, in ``views.sql`` beside this file (shipped in the wheel),
so an analyst can read them and run the same file in the DuckDB shell. This module sets
what the file expects: the list of each dataset's files (found with ``scan.partition_files``,
which skips half-written dot-files and treats the root literally), headed by an empty file
of the dataset's current schema (``read_parquet`` refuses an empty list, a view that fails
until the first alert is no use, and a column added since a file was written must read
null there, not be missing from the view), and the registry in use as a table.

Queries are read-only: only one SELECT (or EXPLAIN) statement is accepted, so nothing a
user types can write a file, attach a database or change a setting.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from streams.domain.registry import Registry
from streams.query.scan import partition_files
from streams.settings.lake import LakeConfig
from streams.sinks.parquet.layout import (
    ALERTS,
    ALERTS_SCHEMA,
    DAILY_COUNTS,
    DAILY_COUNTS_SCHEMA,
    EVENTS,
    EVENTS_SCHEMA,
)

DATASETS = {EVENTS: EVENTS_SCHEMA, DAILY_COUNTS: DAILY_COUNTS_SCHEMA, ALERTS: ALERTS_SCHEMA}
VIEWS = (EVENTS, DAILY_COUNTS, ALERTS, "checkpoints")
READ_ONLY = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)

REGISTRY_SCHEMA = pa.schema(
    [
        ("checkpoint_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("country_a", pa.string()),
        ("country_b", pa.string()),
        ("region", pa.string()),
        ("tz", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
    ]
)


class QueryError(ValueError):
    """A query that was refused or failed; the message is DuckDB's, or says what is allowed."""


def views_sql() -> str:
    return files("streams.query").joinpath("views.sql").read_text(encoding="utf-8")


def registry_table(registry: Registry) -> pa.Table:
    rows = [
        {
            "checkpoint_id": c.checkpoint_id,
            "name": c.name,
            "kind": c.kind,
            "country_a": c.country_a,
            "country_b": c.country_b,
            "region": c.region,
            "tz": c.tz.key,
            "lat": c.lat,
            "lon": c.lon,
        }
        for c in registry.values()
    ]
    return pa.Table.from_pylist(rows, schema=REGISTRY_SCHEMA)


#: A DuckLake table's columns that the Parquet lake's views do not have (the commit's stamp).
DUCKLAKE_ONLY = {
    EVENTS: ("commit_seq",),
    DAILY_COUNTS: ("kafka_partition", "commit_seq"),
    ALERTS: ("kafka_partition", "commit_seq"),
}


@contextmanager
def open_lake(
    root: Path, registry: Registry, lake: LakeConfig | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the views of ``views.sql`` over the lake at
    ``root`` (with a DuckLake ``lake``: the same views over its tables, attached read-only
    as ``lake``)."""
    if lake is not None and lake.is_ducklake:
        with _open_ducklake(root, registry, lake) as connection:
            yield connection
        return
    with tempfile.TemporaryDirectory(prefix="crossings-sql-") as scratch, duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for dataset, schema in DATASETS.items():
            # An empty file of the current schema first: a view has every column even when no
            # file has it yet, and a column added since older files were written reads null.
            found = [_empty_file(Path(scratch), dataset, schema)]
            found += partition_files(Path(root), dataset, None, None, None)
            connection.execute(f"SET VARIABLE {dataset}_files = $files", {"files": found})
        connection.register("registry_checkpoints", registry_table(registry))
        connection.execute(views_sql())
        yield connection


@contextmanager
def _open_ducklake(root: Path, registry: Registry, lake: LakeConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    from streams.sinks.ducklake.read import attach, has_table, pin, pinned

    with duckdb.connect(config={"autoinstall_known_extensions": False}) as connection:
        try:
            attach(lake, root, connection)
        except duckdb.Error as error:
            raise QueryError(f"cannot open the lake {lake.describe(root)}: {error}") from None
        connection.execute("SET TimeZone = 'UTC'")
        pin(connection)  # the views read the lake as of now, whoever commits meanwhile
        for dataset, schema in DATASETS.items():
            if has_table(connection, dataset):
                source = f"SELECT * EXCLUDE ({', '.join(DUCKLAKE_ONLY[dataset])}) FROM {pinned(dataset)}"
            else:  # no commit has made it yet: its columns, no rows
                connection.register(f"empty_{dataset}", schema.empty_table())
                source = (
                    f"SELECT NULL::DATE AS local_day, NULL AS checkpoint_id, * FROM empty_{dataset} LIMIT 0"
                )
            connection.execute(f"CREATE OR REPLACE VIEW {dataset} AS {source}")
        connection.register("registry_checkpoints", registry_table(registry))
        checkpoints = views_sql().split("CREATE OR REPLACE VIEW checkpoints", 1)[1]
        connection.execute("CREATE OR REPLACE VIEW checkpoints" + checkpoints)
        yield connection


def _empty_file(scratch: Path, dataset: str, schema: pa.Schema) -> str:
    """A file with no rows and the dataset's columns, in a hive folder like the lake's."""
    folder = scratch / dataset / "date=1970-01-01" / "checkpoint=none"
    folder.mkdir(parents=True)
    path = folder / "empty.parquet"
    pq.write_table(schema.empty_table(), path)
    return str(path)


def check_read_only(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one SELECT/EXPLAIN statement, naming what was found."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(str(error)) from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one SELECT statement, not {len(statements)}")
    kind = statements[0].type
    if kind not in READ_ONLY:
        raise QueryError(
            f"only SELECT (or EXPLAIN) is allowed here, not {kind.name}: the lake is read-only "
            "to crossings sql (export with --format csv|json|parquet --output FILE)"
        )


def query(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run one read-only statement over the views; DuckDB's errors become QueryError."""
    check_read_only(connection, sql)
    try:
        return connection.sql(sql).to_arrow_table()
    except duckdb.Error as error:
        raise QueryError(str(error)) from None
