"""``crossings report``: reports from the Parquet history (DuckDB), and ``report chart``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streams.cli.common import registry_or_error, settings_or_usage_error
from streams.settings import Settings
from streams.settings.lake import CATALOG_FILE, LakeConfig, reading_lake

if TYPE_CHECKING:
    from streams.query.scan import DuckLakeRoot


@click.command()
@click.argument(
    "what",
    type=click.Choice(["all", "daily", "nationality", "alerts", "reconcile", "chart"]),
    default="all",
    metavar="[WHAT]",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The lake [default: CROSSINGS_DATA_DIR, else $CROSSINGS_HOME/data].",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--checkpoint", default=None, help="Only this checkpoint id (chart: required).")
@click.option("--since", default=None, help="First local day, YYYY-MM-DD.")
@click.option("--until", default=None, help="Last local day, YYYY-MM-DD.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="chart: the PNG to write (an .html beside it); default ./<checkpoint>-daily.png.",
)
def report(
    what: str,
    data_dir: Path | None,
    fmt: str,
    checkpoint: str | None,
    since: str | None,
    until: str | None,
    output: Path | None,
) -> None:
    """Daily totals, nationality mix, alerts and checks of the lake (DuckDB).

    WHAT picks one report: all (the default), daily, nationality, alerts, reconcile (the
    daily counts against the raw events), or chart (one checkpoint's daily series, expected
    band and alert episodes, PNG + HTML)."""
    settings = settings_or_usage_error(None)
    root = data_dir or settings.data_dir
    _folder_or_error(root, settings.lake, data_dir is not None)
    lake = reading_lake(settings.lake, root)
    from streams.query.scan import DuckLakeRoot, ParquetRoot

    # The same reports over its tables, or over the Parquet folders even where the folder
    # also holds a DuckLake catalog (CROSSINGS_LAKE=parquet said which).
    root = DuckLakeRoot(lake, root) if lake.is_ducklake else ParquetRoot(root)
    _lake_or_error(root, data_dir is not None)
    if checkpoint is not None:
        _known_checkpoint_or_error(root, settings, checkpoint)
    if what == "chart":
        _chart(root, settings, checkpoint, since, until, output)
        return
    from streams.query import report_main

    # On a terminal, long cells (an alert's summary) wrap to its width.
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    try:
        click.echo(report_main(root, what, fmt, checkpoint, since, until, width))
    except ValueError as error:  # a malformed --since/--until
        raise click.BadParameter(str(error)) from None
    _say_what_is_staged(root, settings, fmt, checkpoint, since, until)


def _folder_or_error(root: Path, lake: LakeConfig, given: bool) -> None:
    """A lake kept in the data folder (the Parquet lake, or DuckLake's default catalog
    file) is not there before its folder and, for DuckLake, its catalog are: say so, and
    which setting points there, rather than fail to open a file."""
    where = "--data" if given else "CROSSINGS_DATA_DIR (default: $CROSSINGS_HOME/data)"
    if lake.is_ducklake and lake.catalog is not None:
        return  # the catalog is elsewhere (CROSSINGS_LAKE): opening it says what is wrong
    if not root.is_dir():
        raise click.ClickException(
            f"no lake at {root}: that folder does not exist ({where}). The worker "
            "(crossings worker) writes the lake there, or crossings replay --data FOLDER"
        )
    if reading_lake(lake, root).is_ducklake and not (root / CATALOG_FILE).is_file():
        raise click.ClickException(
            f"the lake at {root} holds no data yet ({where}; no DuckLake catalog {CATALOG_FILE} "
            "there): with a worker running, its first rows appear within "
            "CROSSINGS_COMMIT_INTERVAL seconds of the first events it reads"
        )


def _lake_or_error(root: Path | DuckLakeRoot, given: bool) -> None:
    """A folder that is not there, or holds nothing yet, is not an empty answer."""
    from streams.query.contents import holds_data
    from streams.query.scan import DuckLakeRoot

    where = "--data" if given else "CROSSINGS_DATA_DIR (default: $CROSSINGS_HOME/data)"
    if isinstance(root, DuckLakeRoot):
        where = "CROSSINGS_LAKE" if root.lake.chosen else where
        try:
            found = holds_data(root)
        except Exception as error:  # no catalog yet, or it cannot be reached
            raise click.ClickException(f"cannot open the lake {root}: {error}") from None
        if not found:
            raise click.ClickException(
                f"the lake {root} holds no data yet ({where}): with a worker running, its first "
                "rows appear within CROSSINGS_COMMIT_INTERVAL seconds of the first events it reads"
            )
        return
    if not root.is_dir():
        raise click.ClickException(
            f"no lake at {root}: that folder does not exist ({where}). The worker "
            "(crossings worker) writes the lake there, or crossings replay --data FOLDER"
        )
    if not holds_data(root):
        raise click.ClickException(
            f"the lake at {root} holds no data yet ({where}): with a worker running, its first "
            "rows appear within CROSSINGS_COMMIT_INTERVAL seconds of the first events it reads"
        )


def _known_checkpoint_or_error(root: Path | DuckLakeRoot, settings: Settings, checkpoint: str) -> None:
    """An id that is neither in the registry in use nor in the lake is a typo: say which
    ids are nearest, rather than print empty tables."""
    import difflib

    from streams.query.contents import lake_checkpoints

    known = set(registry_or_error(settings)) | lake_checkpoints(root)
    if checkpoint in known:
        return
    nearest = difflib.get_close_matches(checkpoint, sorted(known), n=3, cutoff=0.5)
    hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
    raise click.BadParameter(
        f"{checkpoint!r} is not a checkpoint id of the registry in use nor of the lake{hint} "
        "(crossings checkpoints list shows them all)",
        param_hint="--checkpoint",
    )


def _say_what_is_staged(
    root: Path | DuckLakeRoot,
    settings: Settings,
    fmt: str,
    checkpoint: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Rows a running worker committed but has not published yet are not in the events and
    alerts a report reads: say how many, and when they will be (on stderr for CSV and JSON,
    so the output stays machine-readable)."""
    import time

    from streams.query.contents import staged
    from streams.query.render import staged_note
    from streams.query.scan import _as_day

    pending = staged(root, checkpoint, _as_day("since", since), _as_day("until", until))
    if pending.rows:
        note = staged_note(pending, settings.lake_roll_seconds, time.time())
        click.echo(note if fmt == "table" else f"note: {note}", err=fmt != "table")


def _chart(
    root: Path,
    settings: Settings,
    checkpoint: str | None,
    since: str | None,
    until: str | None,
    output: Path | None,
) -> None:
    from streams.query.chart import chart_data, write_chart

    if checkpoint is None:
        raise click.UsageError("report chart needs --checkpoint ID")
    registry = registry_or_error(settings)
    if checkpoint not in registry:
        raise click.BadParameter(f"{checkpoint!r} is not in the registry in use", param_hint="--checkpoint")
    try:
        data = chart_data(root, registry[checkpoint], since, until)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    png, page = write_chart(data, output or Path(f"{checkpoint}-daily.png"))
    days = len({p.local_day for p in data.points})
    episodes = len(data.episodes)
    click.echo(f"{png} and {page}: {days} days, {episodes} alert episode{'' if episodes == 1 else 's'}")
