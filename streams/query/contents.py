"""What a lake holds, before a report reads it: is there a lake at all, which checkpoints
it has, and how many committed rows are still staged (not yet visible to readers).

A report over a folder that is not a lake, or over a checkpoint id with a typo, would
otherwise print empty tables that look like an answer; rows staged by a running worker
(``CROSSINGS_LAKE_ROLL_SECONDS``) would look like rows that never came.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from streams.query.scan import DuckLakeRoot, ducklake_has, ducklake_rows, lake_at, partition_files
from streams.sinks.parquet.layout import ALERTS, DAILY_COUNTS, EVENTS, STAGING

DATASETS = (EVENTS, DAILY_COUNTS, ALERTS)


@dataclass(frozen=True)
class Staged:
    """Rows committed but not yet published, for the filters of a report."""

    events: int = 0
    alerts: int = 0
    #: Wall-clock time (epoch seconds) the oldest staged file was written; None: none staged.
    oldest: float | None = None

    @property
    def rows(self) -> int:
        return self.events + self.alerts


def _staging_roots(root: Path) -> list[Path]:
    return sorted((Path(root) / STAGING).glob("p*"))


def holds_data(root: Path | DuckLakeRoot) -> bool:
    """True once anything was written: a published file of any dataset, or staged rows."""
    root = lake_at(root)
    if isinstance(root, DuckLakeRoot):
        return any(
            ducklake_has(root, dataset)
            and ducklake_rows(root, f"SELECT count(*) AS n FROM lake.{dataset}")[0]["n"] > 0
            for dataset in DATASETS
        )
    roots = [Path(root), *_staging_roots(root)]
    return any(partition_files(where, dataset, None, None, None) for where in roots for dataset in DATASETS)


def lake_checkpoints(root: Path | DuckLakeRoot) -> set[str]:
    """Checkpoint ids the lake has folders for (published or staged)."""
    root = lake_at(root)
    if isinstance(root, DuckLakeRoot):
        return {
            row["checkpoint_id"]
            for dataset in DATASETS
            if ducklake_has(root, dataset)
            for row in ducklake_rows(root, f"SELECT DISTINCT checkpoint_id FROM lake.{dataset}")
        }
    found = set()
    for where in [Path(root), *_staging_roots(root)]:
        for dataset in DATASETS:
            for folder in (where / dataset).glob("date=*/checkpoint=*"):
                found.add(folder.name.removeprefix("checkpoint="))
    return found


def staged(
    root: Path | DuckLakeRoot, checkpoint: str | None, since: date | None, until: date | None
) -> Staged:
    """How many event and alert rows of the selection are staged, and since when (DuckLake
    stages nothing: a commit's rows are visible at once)."""
    root = lake_at(root)
    if isinstance(root, DuckLakeRoot):
        return Staged()
    counts = {EVENTS: 0, ALERTS: 0}
    oldest: float | None = None
    for where in _staging_roots(root):
        for dataset in counts:
            for name in partition_files(where, dataset, checkpoint, since, until):
                path = Path(name)
                try:
                    counts[dataset] += pq.ParquetFile(path).metadata.num_rows
                    written = path.stat().st_mtime
                except (OSError, ValueError):  # published (moved away) while we looked
                    continue
                oldest = written if oldest is None else min(oldest, written)
    return Staged(counts[EVENTS], counts[ALERTS], oldest)
