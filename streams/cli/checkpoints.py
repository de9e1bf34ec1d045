"""``crossings checkpoints``: check and show the checkpoint registry (``CROSSINGS_CHECKPOINTS``)."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.common import Group, registry_or_error, settings_or_usage_error
from streams.domain.registry import RegistryError, default_registry_path, load_registry


@click.group(cls=Group)
def checkpoints() -> None:
    """Check or list the border crossing points the pipeline counts.

    The registry is a JSON or YAML file of yours (CROSSINGS_CHECKPOINTS), checked against
    schemas/checkpoints.schema.json; without it, the shipped one."""


@checkpoints.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
def validate(file: Path | None) -> None:
    """Check FILE (default: the configured registry); exit 1 with the reason if it is unusable."""
    path = file or settings_or_usage_error(None).checkpoints_file or default_registry_path()
    try:
        registry = load_registry(path)
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{path}: {len(registry)} checkpoints, valid")


@checkpoints.command(name="list")
def list_checkpoints() -> None:
    """The configured checkpoints: id, kind, countries, time zone, name (a header first)."""
    registry = registry_or_error(settings_or_usage_error(None))
    rows = [
        (
            c.checkpoint_id,
            c.kind,
            f"{c.country_a}-{c.country_b}" if c.country_b else c.country_a,
            str(c.tz),
            c.name,
        )
        for c in sorted(registry.values(), key=lambda c: c.checkpoint_id)
    ]
    rows.insert(0, ("id", "kind", "countries", "time zone", "name"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join(value.ljust(width) for value, width in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
