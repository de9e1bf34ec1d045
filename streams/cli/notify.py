"""``crossings notify``: deliver the alerts topic to Alertmanager and webhooks.

A process of its own (not an agent in the worker) so a slow or absent receiver can never
stall counting; see ``streams/notify``.
"""

from __future__ import annotations

import asyncio
import logging

import click

from streams.cli.common import broker_option, settings_or_usage_error
from streams.settings import ConfigError, is_loopback

log = logging.getLogger(__name__)


@click.command()
@broker_option
def notify(broker: str | None) -> None:
    """Deliver alerts to CROSSINGS_ALERTMANAGER_URLS and CROSSINGS_WEBHOOK_URLS (until Ctrl-C)."""
    from streams.notify.runner import run_notify
    from streams.ops.topics import ensure_topics

    settings = settings_or_usage_error(broker)
    if not settings.notify.receivers:
        raise click.UsageError(
            "nowhere to deliver: set CROSSINGS_ALERTMANAGER_URLS and/or CROSSINGS_WEBHOOK_URLS"
        )
    try:
        ensure_topics(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if not is_loopback(settings.web_host):
        log.warning("notify /metrics listens on %s, reachable from other hosts", settings.web_host)
    for receiver in settings.notify.receivers:
        log.info("receiver %s %s", receiver.kind, receiver.target)
    asyncio.run(run_notify(settings))
