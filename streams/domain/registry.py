"""Reference data for border crossing points: the checkpoint registry.

The time zone is part of a checkpoint's identity: its "day" is the local calendar day
in that zone, so counts, baselines and Parquet partitions all follow from it. The
registry is user data (``CROSSINGS_CHECKPOINTS``: a JSON or YAML file; the shipped
``schemas/checkpoints.json`` by default), loaded once by the caller and passed in;
nothing in the domain reads it from a global.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import fastjsonschema
import yaml

from streams.schemas import load_json, schemas_dir


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


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the file and what to fix."""


def default_registry_path() -> Path:
    return schemas_dir() / "checkpoints.json"


def load_registry(path: Path | None = None) -> dict[str, Checkpoint]:
    """All checkpoints by id, from a JSON or YAML file (default: the shipped one), checked
    against ``schemas/checkpoints.schema.json``; every problem fails here, at load, with
    the file and the entry named, not mid-stream."""
    source = Path(path) if path is not None else default_registry_path()
    data = _read(source)
    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaValueException as error:
        raise RegistryError(f"{source}: {error.message}") from None
    registry: dict[str, Checkpoint] = {}
    for n, item in enumerate(data["checkpoints"]):
        checkpoint_id = item["checkpoint_id"]
        if checkpoint_id in registry:
            raise RegistryError(f"{source}: checkpoint_id {checkpoint_id!r} is listed twice (entry {n})")
        try:
            tz = ZoneInfo(item["tz"])
        except (ZoneInfoNotFoundError, ValueError):
            raise RegistryError(
                f"{source}: checkpoint {checkpoint_id!r} has tz {item['tz']!r}, not a tz database zone "
                "(e.g. Asia/Almaty)"
            ) from None
        registry[checkpoint_id] = Checkpoint(
            checkpoint_id=checkpoint_id,
            name=item["name"],
            kind=item["kind"],
            country_a=item["country_a"],
            country_b=item["country_b"],
            region=item["region"],
            tz=tz,
            lat=float(item["lat"]),
            lon=float(item["lon"]),
        )
    return registry


def _read(source: Path) -> Any:
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise RegistryError(f"cannot read the checkpoint registry {source}: {error.strerror}") from None
    try:
        if source.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as error:
        raise RegistryError(
            f"{source} is not valid {source.suffix.lstrip('.').upper() or 'JSON'}: {error}"
        ) from None


@cache
def _validator() -> Any:
    return fastjsonschema.compile(load_json("checkpoints.schema.json"))
