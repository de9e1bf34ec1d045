"""``crossings report``: reports from the Parquet history (DuckDB), and ``report chart``."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.common import registry_or_error, settings_or_usage_error
from streams.settings import Settings


@click.command()
@click.argument(
    "what", type=click.Choice(["all", "daily", "nationality", "alerts", "reconcile", "chart"]), default="all"
)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None, help="Parquet root.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--checkpoint", default=None, help="Only this checkpoint id (chart: required).")
@click.option("--since", default=None, help="First local day, YYYY-MM-DD.")
@click.option("--until", default=None, help="Last local day, YYYY-MM-DD.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="chart: the PNG to write (an .html beside it); default ./<checkpoint>-daily.png.",
)
def report(
    what: str,
    data_dir: Path | None,
    fmt: str,
    checkpoint: str | None,
    since: str | None,
    until: str | None,
    output: Path | None,
) -> None:
    """Daily totals, nationality mix and alerts from the Parquet history (DuckDB); ``chart``
    draws one checkpoint's daily series, expected band and alert episodes (PNG + HTML)."""
    settings = settings_or_usage_error(None)
    root = data_dir or settings.data_dir
    if what == "chart":
        _chart(root, settings, checkpoint, since, until, output)
        return
    from streams.query import report_main

    try:
        click.echo(report_main(root, what, fmt, checkpoint, since, until))
    except ValueError as error:  # a malformed --since/--until
        raise click.BadParameter(str(error)) from None


def _chart(
    root: Path,
    settings: Settings,
    checkpoint: str | None,
    since: str | None,
    until: str | None,
    output: Path | None,
) -> None:
    from streams.query.chart import chart_data, write_chart

    if checkpoint is None:
        raise click.UsageError("report chart needs --checkpoint ID")
    registry = registry_or_error(settings)
    if checkpoint not in registry:
        raise click.BadParameter(f"{checkpoint!r} is not in the registry in use", param_hint="--checkpoint")
    try:
        data = chart_data(root, registry[checkpoint], since, until)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    png, page = write_chart(data, output or Path(f"{checkpoint}-daily.png"))
    days = len({p.local_day for p in data.points})
    click.echo(f"{png} and {page}: {days} days, {len(data.episodes)} alert episodes")
