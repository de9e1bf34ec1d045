"""``crossings replay``: the worker's core without Faust, over a topic's offsets, NDJSON files
or a lake's Parquet events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from streams.cli.common import broker_option, registry_or_error, settings_or_usage_error


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
    help="Replay Parquet events (files, or folders such as a lake's events/) instead of Kafka; may repeat.",
)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None, help="Parquet root.")
@click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="State folder of the replay (default: <home>/replay-state).",
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
) -> None:
    """Run the worker's core without Faust over a topic's offsets, NDJSON files or Parquet
    events, writing the same lake (backfills, catch-up, what-if runs into another folder)."""
    from streams.replay.run import replay as run_replay
    from streams.replay.sources import kafka_records, ndjson_records, parquet_records

    settings = settings_or_usage_error(broker)
    registry = registry_or_error(settings)
    if files and parquet:
        raise click.UsageError("give --file or --parquet, not both")
    if parquet:
        try:
            source = parquet_records(parquet, settings.partitions)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    elif files:
        source = ndjson_records(files, settings.partitions)
    else:
        from streams.ops.security import check_access, client_kwargs
        from streams.settings import ConfigError

        try:
            check_access(settings.bootstrap, settings.security, settings.external_broker)
            client = client_kwargs(settings.security, "aiokafka")
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        source = kafka_records(
            settings.bootstrap, topic or settings.topics.events, start=start, end=end, client=client
        )
    stats = asyncio.run(
        run_replay(
            source,
            partitions=settings.partitions,
            data_dir=data_dir or settings.data_dir,
            state_dir=state_dir or settings.worker_dir.parent / "replay-state",
            core=settings.core_config(),
            registry=registry,
        )
    )
    click.echo(
        f"replayed {stats.records:,} records in {stats.seconds:.1f}s ({stats.per_second:,.0f}/s): "
        f"{stats.counted:,} counted, {stats.duplicates:,} duplicates, {stats.dead_letters:,} dead letters, "
        f"{stats.alerts:,} alert messages"
    )
