"""The ``crossings`` command: the group of subcommands and its entry point.

``main`` is the one entry for both ``crossings`` (the console script) and
``python -m streams.cli``: it configures logging, then runs the command, so both log the
same. The subcommands live beside this file: ``kafka`` (kafka up/down/status, topics),
``worker``, ``notify``, ``replay``, ``report``, ``sql``, ``checkpoints`` (validate, list), ``backtest``,
``quarantine`` (list, skip) and ``lake`` (compact, expire).
"""

from __future__ import annotations

import os
import sys

import click

from streams.cli.backtest import backtest
from streams.cli.checkpoints import checkpoints
from streams.cli.common import Group
from streams.cli.kafka import kafka, topics
from streams.cli.lake import lake
from streams.cli.logs import configure as configure_logging
from streams.cli.notify import notify
from streams.cli.quarantine import quarantine
from streams.cli.replay import replay
from streams.cli.report import report
from streams.cli.sql import sql
from streams.cli.worker import worker
from streams.settings import ConfigError, warn_unknown_variables

FIRST_STEPS = """\b
First steps (README, "Running it yourself"):
  crossings kafka up     a broker on 127.0.0.1:9092 (~30 s)
  crossings topics       the topics it needs
  crossings worker       counts, detects, writes the lake (Ctrl-C stops it)
  crossings report       what the lake holds, once the worker has committed
"""


@click.group(cls=Group, epilog=FIRST_STEPS)
def cli() -> None:
    """crossings: streaming border-crossing counts, spike alerts and history."""


for _command in (kafka, topics, worker, notify, replay, report, sql, checkpoints, backtest, quarantine, lake):
    cli.add_command(_command)


def main() -> None:
    """Entry of ``crossings`` and ``python -m streams.cli``: configure logging (``logs.py``:
    ``CROSSINGS_LOG_FORMAT``, ``CROSSINGS_LOG_LEVEL``), warn about unknown ``CROSSINGS_*``
    variables, run the command."""
    try:
        configure_logging()
    except ConfigError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)
    # Every command, also those that read no other setting (a typo is never silent).
    warn_unknown_variables(os.environ)
    cli()
