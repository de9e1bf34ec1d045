"""``crossings kafka up|down|status`` (the embedded broker) and ``crossings topics``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from streams.cli.common import Group, broker_option, settings_or_usage_error
from streams.settings import ConfigError, Settings

if TYPE_CHECKING:
    from streams.ops.broker import ScramListener


@click.group(cls=Group)
def kafka() -> None:
    """Start, stop or inspect the embedded single-node Kafka (KRaft) broker."""


def _embedded_port(settings: Settings) -> int:
    return int(settings.bootstrap.rsplit(":", 1)[1])


def _scram(settings: Settings) -> ScramListener | None:
    """The embedded broker's listener for the security settings: PLAINTEXT (None), or
    SASL_PLAINTEXT with the configured SCRAM user; TLS needs a cluster of one's own."""
    from streams.ops.broker import ScramListener

    security = settings.security
    if security.protocol == "PLAINTEXT":
        return None
    if security.protocol != "SASL_PLAINTEXT":
        raise click.UsageError(
            f"the embedded broker speaks PLAINTEXT or SASL_PLAINTEXT (SCRAM), not "
            f"CROSSINGS_KAFKA_SECURITY_PROTOCOL={security.protocol}: for TLS use your own cluster "
            "(KAFKA_BOOTSTRAP)"
        )
    assert security.sasl_username is not None and security.sasl_mechanism is not None
    return ScramListener(security.sasl_username, security.sasl_password, security.sasl_mechanism)


def _wait_external(settings: Settings, timeout: float) -> None:
    """Wait for an external cluster to answer, with the configured security; wrong
    credentials stop at once rather than after ``timeout``."""
    from streams.ops import broker as embedded
    from streams.ops.security import AuthenticationFailed, check_access, client_kwargs

    try:
        check_access(settings.bootstrap, settings.security, external=True, timeout=min(timeout, 20.0))
    except AuthenticationFailed as error:
        raise click.ClickException(str(error)) from None
    except ConfigError:
        pass  # not up yet, maybe: wait for it below
    try:
        client = client_kwargs(settings.security, "kafka-python")
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    embedded.wait_ready(settings.bootstrap, timeout, client)


@kafka.command("up")
@broker_option
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the broker.")
def kafka_up(broker: str | None, timeout: float) -> None:
    """Install the Kafka jars if needed, start the broker, wait until it answers.

    With CROSSINGS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT its client listener asks for the
    configured SCRAM user (created when its storage is first formatted)."""
    from streams.ops import broker as embedded

    settings = settings_or_usage_error(broker)
    try:
        if settings.external_broker:
            _wait_external(settings, timeout)
            click.echo(f"external cluster at {settings.bootstrap} answers; nothing started")
            return
        status = embedded.up(
            settings.kafka_dir, _embedded_port(settings), timeout=timeout, scram=_scram(settings)
        )
    except embedded.BrokerError as error:
        raise click.ClickException(str(error)) from None
    click.echo(status.detail)


@kafka.command("down")
@broker_option
def kafka_down(broker: str | None) -> None:
    """Stop the embedded broker (its data stays under $CROSSINGS_HOME/kafka)."""
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
            _wait_external(settings, 10.0)
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
    """Create the five topics if they are missing, and check those that exist.

    Events, dead letters, alerts, undelivered alerts and the worker's state changelog."""
    from streams.ops.topics import ensure_topics

    settings = settings_or_usage_error(broker)
    try:
        found = ensure_topics(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for name, partitions in sorted(found.items()):
        click.echo(f"{name}: {partitions} partitions")
