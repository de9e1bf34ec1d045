"""Locate the JSON files in ``schemas/``: beside the package in a wheel, at the repo root in a checkout."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def schemas_dir() -> Path:
    for candidate in (_HERE / "schemas", _HERE.parent / "schemas"):
        if (candidate / "crossing_event.v1.json").is_file():
            return candidate
    raise FileNotFoundError(
        "schemas/ not found beside the streams package; reinstall crossings or run from a checkout"
    )


@cache
def load_json(name: str) -> Any:
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))
