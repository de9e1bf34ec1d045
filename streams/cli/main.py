"""The ``crossings`` command: the group of subcommands and its entry point.

``main`` is the one entry for both ``crossings`` (the console script) and
``python -m streams.cli``: it configures logging, then runs the command, so both log the
same. The subcommands live beside this file: ``kafka`` (kafka up/down/status, topics),
``worker``, ``notify``, ``replay``, ``report``, ``sql``, ``checkpoints`` (validate, list), ``backtest``
and ``quarantine`` (list, skip).
"""

from __future__ import annotations

import sys

import click

from streams.cli.backtest import backtest
from streams.cli.checkpoints import checkpoints
from streams.cli.kafka import kafka, topics
from streams.cli.logs import configure as configure_logging
from streams.cli.notify import notify
from streams.cli.quarantine import quarantine
from streams.cli.replay import replay
from streams.cli.report import report
from streams.cli.sql import sql
from streams.cli.worker import worker
from streams.settings import ConfigError


@click.group()
def cli() -> None:
    """crossings: streaming border-crossing counts, spike alerts and history."""


for _command in (kafka, topics, worker, notify, replay, report, sql, checkpoints, backtest, quarantine):
    cli.add_command(_command)


def main() -> None:
    """Entry of ``crossings`` and ``python -m streams.cli``: configure logging (``logs.py``:
    ``CROSSINGS_LOG_FORMAT``, ``CROSSINGS_LOG_LEVEL``), run the command."""
    try:
        configure_logging()
    except ConfigError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)
    cli()
