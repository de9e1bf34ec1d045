"""How the DuckLake lake is kept (``streams.sinks.ducklake.upkeep``).

- ``CROSSINGS_LAKE_RETENTION_DAYS``: rows of local days more than this many days before
  today are deleted (``crossings lake expire``, and the worker's upkeep); 0 or unset keeps
  every day for ever.
- ``CROSSINGS_LAKE_UPKEEP_SECONDS``: how often the worker compacts (and expires) the lake
  by itself; 0 turns it off (run ``crossings lake compact|expire`` from cron instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.settings.values import _float, _int


@dataclass(frozen=True)
class UpkeepConfig:
    retention_days: int = 0
    interval_seconds: float = 3600.0


def load_upkeep(env: Mapping[str, str]) -> UpkeepConfig:
    return UpkeepConfig(
        retention_days=_int(env, "CROSSINGS_LAKE_RETENTION_DAYS", 0, 0, 100_000),
        interval_seconds=_float(env, "CROSSINGS_LAKE_UPKEEP_SECONDS", 3600.0, 0.0, 7 * 86400.0),
    )
