"""Reference data for border crossing points (``schemas/checkpoints.json``).

The time zone is part of a checkpoint's identity: its "day" is the local calendar day
in that zone, so counts, baselines and Parquet partitions all follow from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from streams.schemas import load_json


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: str
    name: str
    kind: str
    country_a: str
    country_b: str | None
    region: str
    tz: ZoneInfo
    lat: float
    lon: float


@cache
def checkpoints() -> Mapping[str, Checkpoint]:
    """All known checkpoints by id; an unknown zone name fails here, at load, not mid-stream."""
    data = load_json("checkpoints.json")
    return {
        item["checkpoint_id"]: Checkpoint(
            checkpoint_id=item["checkpoint_id"],
            name=item["name"],
            kind=item["kind"],
            country_a=item["country_a"],
            country_b=item["country_b"],
            region=item["region"],
            tz=ZoneInfo(item["tz"]),
            lat=float(item["lat"]),
            lon=float(item["lon"]),
        )
        for item in data["checkpoints"]
    }
