"""``crossings kafka up|down|status`` (the embedded broker) and ``crossings topics``."""

from __future__ import annotations

import sys

import click

from streams.cli.common import broker_option, settings_or_usage_error
from streams.settings import ConfigError, Settings


@click.group()
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

    settings = settings_or_usage_error(broker)
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

    settings = settings_or_usage_error(broker)
    if settings.external_broker:
        click.echo("external cluster configured; nothing to stop")
        return
    click.echo(embedded.down(settings.kafka_dir).detail)


@kafka.command("status")
@broker_option
def kafka_status(broker: str | None) -> None:
    """Say whether the embedded broker runs; exit 1 if not."""
    from streams.ops import broker as embedded

    settings = settings_or_usage_error(broker)
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


@click.command()
@broker_option
def topics(broker: str | None) -> None:
    """Create the events, dead-letter and alerts topics if they are missing."""
    from streams.ops.topics import ensure_topics

    settings = settings_or_usage_error(broker)
    try:
        found = ensure_topics(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for name, partitions in sorted(found.items()):
        click.echo(f"{name}: {partitions} partitions")
