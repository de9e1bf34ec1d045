"""The ``crossings`` command: broker, topics, worker and report."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from streams.settings import ConfigError, Settings, load_settings


def _settings(broker: str | None) -> Settings:
    try:
        return load_settings(broker=broker)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


broker_option = click.option(
    "--broker",
    default=None,
    help="Use this Kafka cluster (host:port[,host:port]) instead of the embedded one. "
    "Same as setting KAFKA_BOOTSTRAP.",
)


@click.group()
def main() -> None:
    """crossings: streaming border-crossing counts, spike alerts and history."""


@main.group()
def kafka() -> None:
    """Start, stop or inspect the embedded single-node Kafka (KRaft) broker."""


def _embedded_port(settings: Settings) -> int:
    return int(settings.bootstrap.rsplit(":", 1)[1])


@kafka.command("up")
@broker_option
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the broker.")
def kafka_up(broker: str | None, timeout: float) -> None:
    """Install the Kafka jars if needed, start the broker, wait until it answers."""
    from streams.ops import broker as embedded

    settings = _settings(broker)
    try:
        if settings.external_broker:
            embedded.wait_ready(settings.bootstrap, timeout)
            click.echo(f"external cluster at {settings.bootstrap} answers; nothing started")
            return
        status = embedded.up(settings.kafka_dir, _embedded_port(settings), timeout=timeout)
    except embedded.BrokerError as error:
        raise click.ClickException(str(error)) from None
    click.echo(status.detail)


@kafka.command("down")
@broker_option
def kafka_down(broker: str | None) -> None:
    """Stop the embedded broker (its data stays under .local/kafka)."""
    from streams.ops import broker as embedded

    settings = _settings(broker)
    if settings.external_broker:
        click.echo("external cluster configured; nothing to stop")
        return
    click.echo(embedded.down(settings.kafka_dir).detail)


@kafka.command("status")
@broker_option
def kafka_status(broker: str | None) -> None:
    """Say whether the embedded broker runs; exit 1 if not."""
    from streams.ops import broker as embedded

    settings = _settings(broker)
    if settings.external_broker:
        try:
            embedded.wait_ready(settings.bootstrap, 10.0)
        except embedded.BrokerError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"external cluster at {settings.bootstrap} answers")
        return
    status = embedded.status(settings.kafka_dir, _embedded_port(settings))
    click.echo(status.detail)
    sys.exit(0 if status.running else 1)


@main.command()
@broker_option
def topics(broker: str | None) -> None:
    """Create the events, dead-letter and alerts topics if they are missing."""
    from streams.ops.topics import ensure_topics

    settings = _settings(broker)
    try:
        found = ensure_topics(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for name, partitions in sorted(found.items()):
        click.echo(f"{name}: {partitions} partitions")


@main.command()
@broker_option
@click.option("--loglevel", default="info", show_default=True)
def worker(broker: str | None, loglevel: str) -> None:
    """Run a Faust worker: consume events, count, detect, write Parquet, serve /metrics."""
    import faust

    from streams.ops.topics import ensure_topics
    from streams.worker.faust_app import create_app

    settings = _settings(broker)
    try:
        ensure_topics(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


@main.command()
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
    data_dir: Path | None,
    state_dir: Path | None,
) -> None:
    """Run the worker's core without Faust over a topic's offsets or NDJSON files,
    writing the same lake (backfills, catch-up, what-if runs into another folder)."""
    from streams.core.processor import CoreConfig
    from streams.replay.run import replay as run_replay
    from streams.replay.sources import kafka_records, ndjson_records

    settings = _settings(broker)
    if files:
        source = ndjson_records(files, settings.partitions)
    else:
        source = kafka_records(settings.bootstrap, topic or settings.topics.events, start=start, end=end)
    stats = asyncio.run(
        run_replay(
            source,
            partitions=settings.partitions,
            data_dir=data_dir or settings.data_dir,
            state_dir=state_dir or settings.worker_dir.parent / "replay-state",
            core=CoreConfig(dedup_horizon_s=settings.dedup_horizon_hours * 3600.0),
        )
    )
    click.echo(
        f"replayed {stats.records:,} records in {stats.seconds:.1f}s ({stats.per_second:,.0f}/s): "
        f"{stats.counted:,} counted, {stats.duplicates:,} duplicates, {stats.dead_letters:,} dead letters, "
        f"{stats.alerts:,} alert messages"
    )


@main.command()
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

    root = data_dir or _settings(None).data_dir
    try:
        click.echo(report_main(root, what, fmt, checkpoint, since, until))
    except ValueError as error:  # a malformed --since/--until
        raise click.BadParameter(str(error)) from None


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
