"""``crossings lake compact|expire|convert``: keep the DuckLake lake by hand (or from cron),
or fill it from a Parquet lake.

The worker does the same by itself every ``CROSSINGS_LAKE_UPKEEP_SECONDS``; running both
at once is safe: DuckLake refuses the later of two conflicting transactions, which is
retried or left to the next run (``streams.sinks.ducklake.upkeep``).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import click

from streams.cli.common import Group, hold_writer_lock, settings_or_usage_error
from streams.settings.lake import reading_lake


@click.group(cls=Group)
def lake() -> None:
    """Compact the DuckLake lake, drop its old days, or fill it from a Parquet lake.

    For CROSSINGS_LAKE=ducklake (or ducklake:<catalog>)."""


def _connect(*, dead_letters: bool = False, upkeep: bool = True, converting: bool = False):
    """The lake, for upkeep (a connection that inlines nothing: ``upkeep.open_for_upkeep``)
    or, ``upkeep=False``, as the worker opens it."""
    from streams.sinks.ducklake.sink import location_of, open_lake
    from streams.sinks.ducklake.upkeep import open_for_upkeep

    settings = settings_or_usage_error(None)
    if not reading_lake(settings.lake, settings.data_dir).is_ducklake:
        if converting:
            raise click.UsageError(
                f"{settings.data_dir} holds a Parquet lake: convert into another, empty data folder "
                "(CROSSINGS_DATA_DIR=<new folder> crossings lake convert SOURCE), or set "
                "CROSSINGS_LAKE=ducklake to put the DuckLake lake beside it in the same folder"
            )
        raise click.UsageError(
            f"the lake in {settings.data_dir} is a Parquet lake (CROSSINGS_LAKE=parquet, or one "
            "written before DuckLake was the default): compaction and retention are for the "
            "DuckLake lake; copy it into one with crossings lake convert"
        )
    location = location_of(settings.lake, settings.data_dir)
    if converting:  # a writer: not beside a worker or a replay (compaction may be)
        hold_writer_lock(settings.lake, settings.data_dir)
    if upkeep:
        return open_for_upkeep(location, dead_letters=dead_letters)
    return open_lake(location, dead_letters=dead_letters)


@lake.command()
@click.option(
    "--keep-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Snapshots (time travel) younger than this are kept.",
)
def compact(keep_hours: float) -> None:
    """Write inlined rows out, merge small files, expire old snapshots, delete unused files."""
    from streams.sinks.ducklake import upkeep

    con = _connect()
    try:
        stats = upkeep.compact(con, keep=timedelta(hours=keep_hours))
    finally:
        con.close()
    click.echo(
        f"files {stats.files_before} -> {stats.files_after}, {stats.inlined_rows_flushed} inlined rows "
        f"written out, {stats.snapshots_expired} snapshots expired, {stats.files_deleted} files deleted "
        f"({stats.seconds:.2f} s)"
    )


@lake.command()
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many days before today (default: CROSSINGS_LAKE_RETENTION_DAYS).",
)
def expire(days: int | None) -> None:
    """Delete the rows of local days older than the retention, in one transaction."""
    from streams.settings import ConfigError
    from streams.settings.lake_upkeep import load_upkeep
    from streams.sinks.ducklake import upkeep

    if days is None:
        import os

        try:
            days = load_upkeep(os.environ).retention_days
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        if not days:
            raise click.UsageError(
                "no retention: set CROSSINGS_LAKE_RETENTION_DAYS (days to keep) or pass --days"
            )
    con = _connect()
    try:
        stats = upkeep.expire(con, days, date.today())
    finally:
        con.close()
    rows = ", ".join(f"{table} {n}" for table, n in stats.rows_deleted.items())
    click.echo(f"deleted the days before {stats.before}: {rows} rows ({stats.seconds:.2f} s)")


@lake.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
def convert(source: Path) -> None:
    """Copy a Parquet lake (its data folder) into the DuckLake lake, in one transaction.

    Events, alerts, daily counts and dead letters as they were written (alerts are copied,
    not recomputed). The DuckLake lake must be empty; stop the worker first."""
    from streams.sinks.ducklake.convert import ConvertRefused
    from streams.sinks.ducklake.convert import convert as run

    con = _connect(dead_letters=(Path(source) / "dead_letters").is_dir(), upkeep=False, converting=True)
    try:
        stats = run(Path(source), con)
    except ConvertRefused as error:
        raise click.UsageError(str(error)) from None
    finally:
        con.close()
    copied = ", ".join(
        f"{table} {n:,} rows ({stats.files[table]:,} files)" for table, n in stats.rows.items()
    )
    click.echo(f"converted {source}: {copied or 'nothing'} ({stats.seconds:.2f} s)")
