"""``crossings worker``: a Faust worker over the events topic."""

from __future__ import annotations

import logging

import click

from streams.cli.common import broker_option, registry_or_error, settings_or_usage_error
from streams.settings import ConfigError, is_loopback

log = logging.getLogger(__name__)


@click.command()
@broker_option
@click.option("--loglevel", default="info", show_default=True)
def worker(broker: str | None, loglevel: str) -> None:
    """Run a Faust worker: consume events, count, detect, write Parquet, serve /metrics."""
    import faust

    from streams.ops.topics import ensure_topics
    from streams.worker.faust_app import create_app

    settings = settings_or_usage_error(broker)
    registry = registry_or_error(settings)
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
    app = create_app(settings, registry)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
