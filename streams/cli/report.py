"""``crossings report``: reports from the Parquet history (DuckDB)."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.common import settings_or_usage_error


@click.command()
@click.argument(
    "what", type=click.Choice(["all", "daily", "nationality", "alerts", "reconcile"]), default="all"
)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None, help="Parquet root.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--checkpoint", default=None, help="Only this checkpoint id.")
@click.option("--since", default=None, help="First local day, YYYY-MM-DD.")
@click.option("--until", default=None, help="Last local day, YYYY-MM-DD.")
def report(
    what: str, data_dir: Path | None, fmt: str, checkpoint: str | None, since: str | None, until: str | None
) -> None:
    """Daily totals, nationality mix and alerts from the Parquet history (DuckDB)."""
    from streams.query import report_main

    root = data_dir or settings_or_usage_error(None).data_dir
    try:
        click.echo(report_main(root, what, fmt, checkpoint, since, until))
    except ValueError as error:  # a malformed --since/--until
        raise click.BadParameter(str(error)) from None
