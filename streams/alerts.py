"""Turn detector transitions into alert messages (schemas/alert.v1.json).

One shape for every channel: the Kafka topic, the log line, the Parquet history, and
later Alertmanager and webhooks all carry the same dict.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from streams.checkpoints import Checkpoint
from streams.detect import Transition

ALERT_SCHEMA_VERSION = 1


def _signed(value: float) -> str:
    return f"{value:+,.0f}"


def summary_line(checkpoint: Checkpoint, direction: str, transition: Transition) -> str:
    a, e = transition.assessment, transition.episode
    what = {"running_day": "so far today", "last_hour": "in the last hour", "full_day": "for the day"}[
        a.window
    ]
    head = f"{e.kind} at {checkpoint.name} {direction}"
    if transition.status == "resolved":
        head = f"resolved: {head}"
    line = f"{head}: {a.observed:,} {what} vs {a.expected:,.0f} expected (x{a.ratio:.2f}, {a.local_day})"
    if a.drivers:
        line += "; " + ", ".join(
            f"{d.nationality} {d.purpose} {d.observed:,} vs {d.expected:,.0f} ({_signed(d.delta)})"
            for d in a.drivers
        )
    return line


def alert_message(
    checkpoint: Checkpoint, direction: str, transition: Transition, *, now: datetime | None = None
) -> dict[str, Any]:
    a, e = transition.assessment, transition.episode
    raised_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "version": ALERT_SCHEMA_VERSION,
        "alert_id": str(uuid.uuid4()),
        "episode_id": e.episode_id,
        "status": transition.status,
        "kind": e.kind,
        "checkpoint_id": checkpoint.checkpoint_id,
        "checkpoint_name": checkpoint.name,
        "direction": direction,
        "local_day": a.local_day.isoformat(),
        "window": a.window,
        "as_of": transition.as_of.astimezone(timezone.utc).isoformat(),
        "raised_at": raised_at.isoformat(),
        "observed": a.observed,
        "expected": round(a.expected, 1),
        "ratio": round(a.ratio, 3),
        "score": round(a.score, 2),
        "drivers": [
            {
                "nationality": d.nationality,
                "purpose": d.purpose,
                "observed": d.observed,
                "expected": round(d.expected, 1),
                "delta": round(d.delta, 1),
            }
            for d in a.drivers
        ],
        "summary": summary_line(checkpoint, direction, transition),
    }
