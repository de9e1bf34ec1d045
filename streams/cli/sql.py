"""``crossings sql "SELECT ..."``: one read-only query over the lake's views (DuckDB)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from streams.cli.common import registry_or_error, settings_or_usage_error
from streams.settings.lake import CATALOG_FILE, reading_lake

SQL_FORMATS = ("table", "csv", "json", "parquet")


@click.command()
@click.argument("statement", metavar="QUERY")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None, help="Parquet root.")
@click.option(
    "--format", "fmt", type=click.Choice(SQL_FORMATS), default="table", show_default=True, help="Output."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of stdout (needed for parquet).",
)
def sql(statement: str, data_dir: Path | None, fmt: str, output: Path | None) -> None:
    """Run one read-only SELECT over the lake's views.

    QUERY is one SELECT ('-' reads it from stdin) over the views events, daily_counts,
    alerts and checkpoints (streams/query/views.sql; columns in the README)."""
    import pyarrow as pa

    from streams.query.lake import QueryError, open_lake, query
    from streams.query.scan import ParquetRoot, lake_files, read_retrying

    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs --output FILE")
    if statement == "-":
        statement = sys.stdin.read()
    settings = settings_or_usage_error(None)
    registry = registry_or_error(settings)
    root = data_dir or settings.data_dir
    lake = reading_lake(settings.lake, root)
    if lake.is_ducklake and lake.catalog is None and not (root / CATALOG_FILE).is_file():
        where = "--data" if data_dir is not None else "CROSSINGS_DATA_DIR (default: $CROSSINGS_HOME/data)"
        missing = f"no DuckLake catalog {CATALOG_FILE} there yet"
        missing = missing if root.is_dir() else "that folder does not exist"
        raise click.ClickException(f"no lake at {root}: {missing} ({where})")
    if lake.is_ducklake:  # the DuckLake tables, no files to re-read

        def run() -> pa.Table:
            with open_lake(root, registry, lake) as connection:
                return query(connection, statement)

        try:
            table = run()
        except QueryError as error:
            raise click.ClickException(f"query failed: {error}") from None
        _emit(table, fmt, output)
        return
    if not root.is_dir():  # a typo in --data is not a lake with no rows
        where = "--data" if data_dir is not None else "CROSSINGS_DATA_DIR (default: $CROSSINGS_HOME/data)"
        raise click.ClickException(f"no lake at {root}: that folder does not exist ({where})")

    def run() -> pa.Table:
        with open_lake(root, registry) as connection:
            return query(connection, statement)

    try:
        table = read_retrying(run, lambda: lake_files(root))  # again if a file changed under it
    except QueryError as error:
        raise click.ClickException(f"query failed: {error}") from None
    _emit(table, fmt, output)
    _say_what_is_staged(ParquetRoot(root), settings.lake_roll_seconds)


def _emit(table, fmt: str, output: Path | None) -> None:
    import pyarrow.parquet as pq

    from streams.query.render import render

    if fmt == "parquet":
        assert output is not None
        pq.write_table(table, output)
        click.echo(f"{table.num_rows} rows written to {output}", err=True)
    else:
        text = render(table.to_pylist(), fmt)
        if output is None:
            click.echo(text.rstrip("\n"))
        else:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            click.echo(f"{table.num_rows} rows written to {output}", err=True)


def _say_what_is_staged(root: Path, roll_seconds: float) -> None:
    """The events and alerts views do not hold what a running worker has staged: say how
    many rows and when they appear, on stderr so that any format's output stays clean."""
    import time

    from streams.query.contents import staged
    from streams.query.render import staged_note

    pending = staged(root, None, None, None)
    if pending.rows:
        click.echo(f"note: {staged_note(pending, roll_seconds, time.time())}", err=True)
