"""``crossings replay``: the worker's core without Faust, over a topic's offsets, NDJSON files
or a lake's Parquet events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from streams.cli.common import broker_option, hold_writer_lock, registry_or_error, settings_or_usage_error
from streams.settings import ConfigError
from streams.settings.lake import writing_lake

if TYPE_CHECKING:
    from streams.replay.run import ReplayStats
    from streams.settings.lake import LakeConfig


@click.command()
@broker_option
@click.option("--topic", default=None, help="Replay this topic (default: the events topic) from Kafka.")
@click.option("--from-offset", "start", default=0, show_default=True, help="First offset of every partition.")
@click.option("--to-offset", "end", default=None, type=int, help="Stop before this offset (default: end).")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay NDJSON files (one event per line) instead of Kafka; may repeat.",
)
@click.option(
    "--parquet",
    "parquet",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Replay a lake's events instead of Kafka: a DuckLake lake's data folder (its "
    "lake.sqlite), or Parquet files or folders (a Parquet lake's events/); may repeat.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The lake's data folder [default: CROSSINGS_DATA_DIR].",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="State folder of the replay: what it has applied, so a rerun goes on from its last "
    "commit (default: <data>/_replay_state, kept with the lake; a state of another lake is refused).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to split the partitions across: a topic's by their sizes, files' round-robin "
    "(default: the CPUs or the partitions, whichever is fewer, and 1 into a SQLite or DuckDB-file "
    "catalog; 1: this process).",
)
def replay(
    broker: str | None,
    topic: str | None,
    start: int,
    end: int | None,
    files: tuple[Path, ...],
    parquet: tuple[Path, ...],
    data_dir: Path | None,
    state_dir: Path | None,
    jobs: int | None,
) -> None:
    """Write a lake from a topic, NDJSON files or Parquet events, without a worker.

    The worker's core, without Faust, over a topic's offsets, NDJSON files or Parquet
    events, writing the lake the worker would (backfills, catch-up, what-if runs into
    another folder)."""
    from streams.replay.jobs import ReplayJobsFailed, Source, deal, default_jobs, replay_in_jobs
    from streams.replay.state import StateOfAnotherLake, claim, default_state_dir

    settings = settings_or_usage_error(broker)
    registry = registry_or_error(settings)
    if files and parquet:
        raise click.UsageError("give --file or --parquet, not both")
    if parquet:
        source = Source("parquet", settings.partitions, paths=parquet)
    elif files:
        source = Source("ndjson", settings.partitions, paths=files)
    else:
        from streams.ops.security import check_access

        try:
            check_access(settings.bootstrap, settings.security, settings.external_broker)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        topic = topic or settings.topics.events
        source = Source(
            "kafka",
            settings.partitions,
            bootstrap=settings.bootstrap,
            topic=topic,
            start=start,
            end=end,
            max_batch_bytes=settings.max_batch_decompressed_bytes,
        )
    try:
        partitions = source.partition_numbers()
        source.check()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    data_dir = data_dir or settings.data_dir
    state_dir = state_dir or default_state_dir(data_dir)
    try:
        claim(state_dir, data_dir)
    except StateOfAnotherLake as error:
        raise click.UsageError(str(error)) from None
    try:
        lake = writing_lake(settings.lake, data_dir)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    if lake.single_process:
        # A DuckDB file: one process may attach it at a time.
        if jobs is not None and jobs > 1:
            raise click.UsageError(
                f"--jobs {jobs}: the DuckLake catalog {lake.catalog_for(data_dir)} is a DuckDB file, "
                "which one process opens at a time; use --jobs 1, or a SQLite or PostgreSQL catalog "
                "(CROSSINGS_LAKE)"
            )
        jobs = 1
    if jobs is None and lake.single_writer:
        # Its commits queue on one file: measured, two jobs took 1.18x one job's time on
        # 253,267 records of a file (load_tests/RESULTS.md). More on request.
        jobs = 1
    # A SQLite catalog takes one writing command: this one, whose jobs share its hold.
    hold_writer_lock(lake, data_dir)
    shares = deal(partitions, jobs or default_jobs(len(partitions)), source.partition_sizes(partitions))
    try:
        stats = replay_in_jobs(
            source,
            shares,
            data_dir=data_dir,
            state_dir=state_dir,
            core=settings.core_config(),
            registry=registry,
            lake=lake,
        )
    except ReplayJobsFailed as error:
        raise click.ClickException(str(error)) from None
    _outcome(stats, data_dir, state_dir, lake)


def _outcome(stats: ReplayStats, data_dir: Path, state_dir: Path, lake: LakeConfig) -> None:
    """Say what the replay wrote; a replay that wrote no events is never reported as a
    success (exit 1), unless its state had written them all to this lake before."""
    if stats.records == 0:
        raise click.ClickException("nothing to replay: the source holds no records (nothing written)")
    if stats.already_applied == stats.records:
        if _has_events(lake, data_dir):
            click.echo(
                f"nothing new: all {stats.records:,} records were applied to {data_dir} by an "
                f"earlier replay (its state: {state_dir}); to rebuild the lake, replay into a new "
                "--data folder"
            )
            return
        raise click.ClickException(
            f"nothing written: the state {state_dir} had applied all {stats.records:,} records "
            f"before, yet {data_dir} holds no events (were its files removed?); remove "
            f"{state_dir} and run again"
        )
    resumed = f", {stats.already_applied:,} applied before (resumed)" if stats.already_applied else ""
    line = (
        f"{stats.records:,} records in {stats.seconds:.1f}s ({stats.per_second:,.0f}/s): "
        f"{stats.counted:,} counted, {stats.duplicates:,} duplicates, {stats.dead_letters:,} dead "
        f"letters, {stats.alerts:,} alert messages{resumed}"
    )
    where = f"dead letters (original bytes and why): {data_dir / 'dead_letters'}/"
    if lake.is_ducklake:
        where = f"dead letters (original bytes and why): the table dead_letters of {lake.describe(data_dir)}"
    if stats.counted == 0 and stats.already_applied == 0:
        raise click.ClickException(
            f"no events counted, so nothing was written to the lake {lake.describe(data_dir)}: {line}"
            + (f"; {where}" if stats.dead_letters else "")
        )
    click.echo(f"replayed {line}")
    shown = lake.describe(data_dir) if lake.is_ducklake else data_dir
    click.echo(f"lake: {shown} (replay state: {state_dir})")
    if stats.dead_letters:
        click.echo(where)


def _has_events(lake: LakeConfig, data_dir: Path) -> bool:
    from streams.query.scan import partition_files
    from streams.sinks.parquet.layout import EVENTS

    if lake.is_ducklake:
        from streams.sinks.ducklake.read import attach, has_table

        con = attach(lake, data_dir)
        try:
            if not has_table(con, EVENTS):
                return False
            return con.execute("SELECT count(*) FROM lake.events").fetchall()[0][0] > 0
        finally:
            con.close()
    return bool(partition_files(data_dir, EVENTS, None, None, None))
