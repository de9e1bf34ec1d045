"""The lake sink ``CROSSINGS_LAKE`` names: one place that chooses, for the worker and the replay."""

from __future__ import annotations

import logging
from pathlib import Path

from streams.core.ports import Sink
from streams.settings.lake import LakeConfig

log = logging.getLogger(__name__)


def lake_sink(
    lake: LakeConfig,
    data_dir: Path,
    *,
    dead_letters: bool = False,
    roll_seconds: float = 0.0,
    roll_rows: int = 1_000_000,
) -> Sink:
    """The Parquet lake under ``data_dir`` (``roll_*``: its staging), or DuckLake."""
    if lake.is_ducklake:
        from streams.sinks.ducklake.sink import DuckLakeSink

        log.info("lake: %s", lake.describe(data_dir))
        return DuckLakeSink.from_config(lake, data_dir, dead_letters=dead_letters)
    from streams.sinks.parquet.sink import LakeSink

    return LakeSink(data_dir, dead_letters=dead_letters, roll_seconds=roll_seconds, roll_rows=roll_rows)
