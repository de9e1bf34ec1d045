"""What every ``crossings`` subcommand shares: settings from the environment (a bad value
is a usage error naming the variable) and the ``--broker`` option."""

from __future__ import annotations

from pathlib import Path

import click

from streams.domain.registry import Checkpoint, RegistryError, load_registry
from streams.settings import ConfigError, Settings, load_settings
from streams.settings.lake import LakeConfig


def settings_or_usage_error(broker: str | None) -> Settings:
    try:
        return load_settings(broker=broker)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def registry_or_error(settings: Settings) -> dict[str, Checkpoint]:
    """The configured checkpoint registry; a bad file stops the command, saying what to fix."""
    try:
        return load_registry(settings.checkpoints_file)
    except RegistryError as error:
        raise click.ClickException(f"{error} (CROSSINGS_CHECKPOINTS)") from None


def hold_writer_lock(lake: LakeConfig, data_dir: Path) -> None:
    """Take the lake's writer lock until the command ends (a SQLite catalog takes one
    writing command, ``sinks/ducklake/writer_lock.py``); a second writer stops here,
    before it touches Kafka, saying what to change. Let go when the command's context
    closes, so a command run in-process (a test, a notebook) leaves the catalog free."""
    if not lake.is_ducklake:
        return
    from streams.sinks.ducklake.writer_lock import CatalogTaken, CatalogUnlockable, take

    try:
        hold = take(lake.catalog_for(data_dir))
    except (CatalogTaken, CatalogUnlockable) as error:
        raise click.ClickException(str(error)) from None
    click.get_current_context().call_on_close(hold.release)


broker_option = click.option(
    "--broker",
    default=None,
    help="Use this Kafka cluster (host:port[,host:port]) instead of the embedded one. "
    "Same as setting KAFKA_BOOTSTRAP.",
)


class Group(click.Group):
    """A command group whose list of commands shows each one's first sentence whole:
    click cuts it at about 45 characters with "...", mid-phrase."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
