"""The ``crossings`` command: broker, topics, worker and report."""

from __future__ import annotations

import logging

import click

from streams.cli.kafka import kafka, topics
from streams.cli.replay import replay
from streams.cli.report import report
from streams.cli.worker import worker


@click.group()
def main() -> None:
    """crossings: streaming border-crossing counts, spike alerts and history."""


for _command in (kafka, topics, worker, replay, report):
    main.add_command(_command)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
