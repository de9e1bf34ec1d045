"""The ``crossings`` command: the group of subcommands and its entry point.

``main`` is the one entry for both ``crossings`` (the console script) and
``python -m streams.cli``: it configures logging, then runs the command, so both log the
same. The subcommands live beside this file: ``kafka`` (kafka up/down/status, topics),
``worker``, ``replay``, ``report``, ``checkpoints`` (validate, list) and ``backtest``.
"""

from __future__ import annotations

import logging

import click

from streams.cli.backtest import backtest
from streams.cli.checkpoints import checkpoints
from streams.cli.kafka import kafka, topics
from streams.cli.replay import replay
from streams.cli.report import report
from streams.cli.worker import worker


@click.group()
def cli() -> None:
    """crossings: streaming border-crossing counts, spike alerts and history."""


for _command in (kafka, topics, worker, replay, report, checkpoints, backtest):
    cli.add_command(_command)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Entry of ``crossings`` and ``python -m streams.cli``: configure logging, run the command."""
    _configure_logging()
    cli()
