"""``crossings worker``: a Faust worker over the events topic."""

from __future__ import annotations

import logging
import socket

import click

from streams.cli.common import broker_option, hold_writer_lock, registry_or_error, settings_or_usage_error
from streams.cli.logs import log_options, logging_config
from streams.settings import ConfigError, is_loopback
from streams.settings.lake import writing_lake

log = logging.getLogger(__name__)


@click.command()
@broker_option
@click.option("--loglevel", default=None, help="Log level; default CROSSINGS_LOG_LEVEL or info.")
def worker(broker: str | None, loglevel: str | None) -> None:
    """Run a Faust worker: consume events, count, detect, write the lake, serve /metrics."""
    import faust

    from streams.ops.topics import ensure_topics
    from streams.worker.faust_app import create_app

    settings = settings_or_usage_error(broker)
    try:
        lake = writing_lake(settings.lake, settings.data_dir)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    hold_writer_lock(lake, settings.data_dir)
    registry = registry_or_error(settings)
    _web_port_free_or_error(settings.web_host, settings.web_port)
    try:
        ensure_topics(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if not is_loopback(settings.web_host):
        log.warning(
            "/metrics listens on %s:%d, reachable from other hosts (CROSSINGS_WEB_HOST); "
            "it shows counts per checkpoint",
            settings.web_host,
            settings.web_port,
        )
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "worker %r: events from %s at %s (%d partitions); lake %s; state %s; metrics http://%s:%d/metrics",
        settings.app_id,
        settings.topics.events,
        settings.bootstrap,
        settings.partitions,
        settings.data_dir,
        settings.state_dir,
        settings.web_host,
        settings.web_port,
    )
    app = create_app(settings, registry)
    # Faust's worker replaces the root logger's handlers when it starts: hand it ours, so
    # CROSSINGS_LOG_FORMAT=json holds for Faust's and aiokafka's lines too.
    fmt, level = log_options()
    level = (loglevel or level).upper()
    faust.Worker(
        app, loglevel=level, quiet=True, logging_config=logging_config(fmt, level)
    ).execute_from_commandline()


def _web_port_free_or_error(host: str, port: int) -> None:
    """A second worker on the same /metrics address stops here, in one line saying what to
    set, before it touches Kafka (Faust would fail later, with a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As aiohttp binds (a port left in TIME_WAIT by a stopped worker is free).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise click.ClickException(
                f"{host}:{port} (CROSSINGS_WEB_HOST:CROSSINGS_WEB_PORT, this worker's /metrics) "
                f"is taken ({error.strerror}), by another crossings worker perhaps: set "
                "CROSSINGS_WEB_PORT to a free port for this one"
            ) from None
