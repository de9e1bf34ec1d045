"""Broken payloads, each broken the way a real border network breaks them.

Every variant fails the v1 schema or the checkpoint reference check, so the pipeline
must dead-letter all of them. The list of reasons and the recipes live side by side so
that neither can gain a reason the other lacks.
"""

from __future__ import annotations

import json
import random
from typing import Any

from load_tests.scenario.model import Cell

INVALID_REASONS = (
    "malformed_json",
    "unknown_checkpoint",
    "bad_nationality",
    "missing_field",
    "bad_timestamp",
    "unknown_enum",
    "naive_timestamp",
)

_BOGUS_CHECKPOINTS = ("zhibek-zholy-2", "shymkent-bazaar", "khorgos-icbc", "tashkent-airport")
_BAD_NATIONALITIES = ("Uzb", "UZBK", "UZ", "U2B", "", "uzb")
_BAD_ENUMS = (
    ("direction", "in"),
    ("direction", "ENTRY"),
    ("purpose", "smuggling"),
    ("purpose", "work"),
    ("mode", "horse"),
    ("outcome", "escaped"),
)


def invalid_payload(
    rng: random.Random,
    reason: str,
    key: bytes,
    event_id: str,
    checkpoint_id: str,
    direction: str,
    occurred_at: str,
    epoch: int,
    cell: Cell,
) -> tuple[bytes, bytes]:
    """A payload a real border network produces, each broken in one specific way.

    Every variant fails either the v1 schema or the checkpoint reference check, so the
    pipeline must dead-letter all of them; the invalid record carries its own event_id
    so it can never be mistaken for (or de-duplicated against) the valid original.
    """
    event: dict[str, Any] = {
        "version": 1,
        "event_id": f"{event_id}-bad",
        "checkpoint_id": checkpoint_id,
        "direction": direction,
        "occurred_at": occurred_at,
        "nationality": cell.nationality,
        "purpose": cell.purpose,
        "mode": cell.mode,
        "outcome": cell.outcome,
    }
    if reason == "malformed_json":
        text = json.dumps(event)
        variant = rng.randrange(4)
        if variant == 0:
            return key, text[: rng.randrange(1, len(text) - 1)].encode()
        if variant == 1:
            return key, repr(event).encode()  # Python dict repr: single quotes
        if variant == 2:
            return key, b"\xff" + text.encode()  # line noise: not UTF-8 at all
        return key, (text + "}").encode()
    if reason == "unknown_checkpoint":
        bogus = rng.choice(_BOGUS_CHECKPOINTS)
        event["checkpoint_id"] = bogus
        key = bogus.encode()
    elif reason == "bad_nationality":
        event["nationality"] = rng.choice(_BAD_NATIONALITIES)
    elif reason == "missing_field":
        del event[rng.choice(list(event))]
    elif reason == "bad_timestamp":
        local = occurred_at[:19]
        event["occurred_at"] = rng.choice(
            (
                local.replace("T", " ") + "+05:00",
                f"{local[8:10]}.{local[5:7]}.{local[0:4]} {local[11:19]}",
                local[:16] + "+05:00",
                "yesterday",
            )
        )
        if rng.random() < 0.2:
            event["occurred_at"] = epoch  # a number, not a string
    elif reason == "unknown_enum":
        name, bad = rng.choice(_BAD_ENUMS)
        event[name] = bad
    elif reason == "naive_timestamp":
        event["occurred_at"] = occurred_at[:19]
    else:  # pragma: no cover - INVALID_REASONS and this function move together
        raise ValueError(reason)
    return key, json.dumps(event, separators=(",", ":")).encode()
