"""``crossings quarantine``: the partitions a worker holds back, and moving a record aside.

Run it where the worker runs (same ``CROSSINGS_HOME``, e.g. ``kubectl exec``): it reads
and writes the worker's quarantine board (``worker/quarantine.py``), no network needed.
"""

from __future__ import annotations

import getpass
import time

import click

from streams.cli.common import Group, settings_or_usage_error
from streams.worker.quarantine import QuarantineBoard


@click.group(cls=Group)
def quarantine() -> None:
    """Partitions the worker holds back because their commits fail, and moving the record
    that blocks one to the dead-letter topic."""


def _board() -> QuarantineBoard:
    return QuarantineBoard(settings_or_usage_error(None).quarantine_dir)


@quarantine.command(name="list")
def list_quarantined() -> None:
    """Quarantined partitions: cause, since when, the offsets held, what to do."""
    board = _board()
    held = board.held()
    requests = board.skip_requests()
    if not held:
        click.echo(f"no partition is quarantined (board: {board.root})")
    for entry in held:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(entry.since))
        offsets = (
            f"offsets {entry.first_offset}-{entry.last_offset}"
            if entry.first_offset is not None
            else "no records held"
        )
        tries = f"{entry.attempts} attempt(s)"
        click.echo(f"partition {entry.partition}: {entry.cause}, since {since}, {tries}, {offsets}")
        if entry.offset is not None:
            click.echo(f"  refused record: offset {entry.offset}")
        click.echo(f"  error: {entry.error}")
        click.echo(f"  what to do: {entry.hint}")
    for partition, offsets in sorted(requests.items()):
        click.echo(f"skip requested, not yet committed: partition {partition}, offsets {sorted(offsets)}")


@quarantine.command()
@click.option("--partition", type=int, required=True, help="The quarantined partition.")
@click.option("--offset", type=int, required=True, help="The offset of the record to move aside.")
def skip(partition: int, offset: int) -> None:
    """Move the record at OFFSET of a quarantined PARTITION to the dead-letter topic.

    Reason skipped; its first KiB, size and SHA-256 kept; the original stays in the events
    topic at that offset until its retention. Done in the next commit's transaction,
    exactly once; the partition then goes on."""
    board = _board()
    held = {entry.partition: entry for entry in board.held()}
    entry = held.get(partition)
    if entry is None:
        quarantined = ", ".join(str(p) for p in sorted(held)) or "none"
        raise click.ClickException(
            f"partition {partition} is not quarantined here (quarantined: {quarantined}; "
            f"board {board.root}). Run this where the worker that holds it runs."
        )
    if entry.first_offset is not None and not (entry.first_offset <= offset <= (entry.last_offset or offset)):
        raise click.ClickException(
            f"offset {offset} is not among the records partition {partition} holds "
            f"({entry.first_offset}-{entry.last_offset}): see `crossings quarantine list`"
        )
    path = board.request_skip(partition, offset, getpass.getuser())
    click.echo(
        f"asked the worker to move partition {partition} offset {offset} to the dead-letter topic "
        f"({path}); it does so at its next commit: `crossings quarantine list` shows when it is done"
    )
