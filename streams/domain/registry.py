"""Reference data for border crossing points: the checkpoint registry.

The time zone is part of a checkpoint's identity: its "day" is the local calendar day
in that zone, so counts, baselines and Parquet partitions all follow from it. The
registry is loaded once by the caller and passed in; nothing in the domain reads it from
a global.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from streams.schemas import schemas_dir


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


Registry = Mapping[str, Checkpoint]


def load_registry(path: Path | None = None) -> dict[str, Checkpoint]:
    """All checkpoints by id; an unknown zone name fails here, at load, not mid-stream."""
    source = path or schemas_dir() / "checkpoints.json"
    data = json.loads(Path(source).read_text(encoding="utf-8"))
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
