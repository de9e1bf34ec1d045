"""``crossings backtest FILE``: replay a count series through the worker's detector."""

from __future__ import annotations

from pathlib import Path

import click

#: Evaluations from which ``--jobs`` defaults to one process per CPU: below, a second
#: process costs more to start (a second or so of imports) than it saves.
PARALLEL_FROM = 20_000


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--time-column", "time_col", default=None, help="Time column [default: time, else date].")
@click.option(
    "--checkpoint-column", "checkpoint_col", default=None, help="Checkpoint column [default: checkpoint]."
)
@click.option(
    "--direction-column", "direction_col", default=None, help="Direction column [default: direction]."
)
@click.option("--count-column", "count_col", default=None, help="Count column [default: count].")
@click.option("--group-column", "group_col", default=None, help="Optional group column [default: group].")
# The names before issue 20 (--checkpoint named a column here and filters by id in report):
# still accepted, not shown.
@click.option("--time", "old_time_col", default=None, hidden=True)
@click.option("--checkpoint", "old_checkpoint_col", default=None, hidden=True)
@click.option("--direction", "old_direction_col", default=None, hidden=True)
@click.option("--count", "old_count_col", default=None, hidden=True)
@click.option("--group", "old_group_col", default=None, hidden=True)
@click.option("--checkpoints", "old_registry_path", type=click.Path(exists=True, path_type=Path), hidden=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CSV of labelled anomalies (date, checkpoint, kind[, direction, end]): prints recall, "
    "median delay and false alarms.",
)
@click.option("--tz", default="UTC", show_default=True, help="Time zone of series not in the registry.")
@click.option(
    "--country",
    "countries",
    multiple=True,
    help="Holiday country (ISO code) of series not in the registry; up to two.",
)
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Checkpoint registry [default: CROSSINGS_CHECKPOINTS or the shipped one].",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a terminal].")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to share the series out over (the episodes are the same) [default: one per CPU "
    f"for a file of {PARALLEL_FROM:,} evaluations or more, else 1].",
)
def backtest(
    source: Path,
    time_col: str | None,
    checkpoint_col: str,
    direction_col: str,
    count_col: str,
    group_col: str,
    old_time_col: str | None,
    old_checkpoint_col: str | None,
    old_direction_col: str | None,
    old_count_col: str | None,
    old_group_col: str | None,
    old_registry_path: Path | None,
    fmt: str,
    labels_path: Path | None,
    tz: str,
    countries: tuple[str, ...],
    registry_path: Path | None,
    progress: bool | None,
    jobs: int | None,
) -> None:
    """Run the worker's detector over a count series and print its alert episodes.

    SOURCE is a CSV or Parquet count series in long form (date or time, checkpoint,
    direction, count[, group]; daily or hourly) or a lake folder: its events, replayed
    through the worker's core as the worker received them, so its episodes are the
    worker's. One episode per line."""
    import os

    from tqdm import tqdm

    from streams.backtest import (
        Columns,
        SeriesError,
        SeriesSet,
        build_series,
        evaluation_count,
        read_labels,
        read_rows,
        render,
        score,
    )
    from streams.backtest import backtest as run
    from streams.backtest.lake import LakeRun, is_lake
    from streams.domain.registry import RegistryError, load_registry

    time_col = time_col or old_time_col
    checkpoint_col = checkpoint_col or old_checkpoint_col or "checkpoint"
    direction_col = direction_col or old_direction_col or "direction"
    count_col = count_col or old_count_col or "count"
    group_col = group_col or old_group_col or "group"
    registry_path = registry_path or old_registry_path
    try:
        registry_file = registry_path or (
            Path(os.environ["CROSSINGS_CHECKPOINTS"]) if os.environ.get("CROSSINGS_CHECKPOINTS") else None
        )
        registry = load_registry(registry_file)
        if is_lake(source):
            data: SeriesSet | LakeRun = _lake(source, registry, tz, countries, progress)
            episodes = data.episodes
        else:
            columns = Columns(time_col, checkpoint_col, direction_col, count_col, group_col)
            rows, time_column = read_rows(source, columns)
            data = build_series(
                rows,
                time_column,
                columns,
                registry,
                default_checkpoint=source.stem,
                tz=tz,
                countries=countries,
            )
            _warn_assumed(data.unknown, tz, countries)
            bar = tqdm(
                total=evaluation_count(data),
                unit="eval",
                disable=None if progress is None else not progress,
                file=click.get_text_stream("stderr"),
            )
            if jobs is None:
                cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
                jobs = (cpus or 1) if evaluation_count(data) >= PARALLEL_FROM else 1
            with bar:
                episodes = run(data, progress=bar.update, jobs=jobs)
    except (SeriesError, RegistryError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(render(episodes, fmt), nl=False)
    if labels_path is not None:
        try:
            labels = read_labels(labels_path, registry)
        except SeriesError as error:
            raise click.ClickException(str(error)) from None
        for line in score(episodes, labels, data).lines():
            click.echo(line, err=fmt != "table")


def _warn_assumed(unknown: tuple[str, ...], tz: str, countries: tuple[str, ...]) -> None:
    from streams.backtest.series import assumed_warning

    warning = assumed_warning(unknown, tz, countries)
    if warning is not None:
        click.echo(warning, err=True)


def _lake(source: Path, registry, tz: str, countries: tuple[str, ...], progress: bool | None):
    """A lake: its events replayed through the worker's core, as the worker received them."""
    from tqdm import tqdm

    from streams.backtest.lake import backtest_lake, lake_summary
    from streams.query.contents import staged

    events = sum(row[3] for row in lake_summary(source))
    bar = tqdm(
        total=events,
        unit="event",
        disable=None if progress is None else not progress,
        file=click.get_text_stream("stderr"),
    )
    with bar:
        found = backtest_lake(source, registry, tz=tz, countries=countries, progress=bar.update)
    _warn_assumed(found.unknown, tz, countries)
    left = staged(source, None, None, None)
    if left.events:
        click.echo(
            f"note: {left.events:,} event(s) are staged in {source / '_staging'} (committed, not yet "
            "published) and were not judged; the worker publishes them within "
            "CROSSINGS_LAKE_ROLL_SECONDS, or when it stops",
            err=True,
        )
    return found
