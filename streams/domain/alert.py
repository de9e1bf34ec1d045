"""Turn detector transitions into alert messages (schemas/alert.v1.json).

One value for every channel: the Kafka topic, the log line, the lake, Alertmanager and
webhooks all carry the same :data:`~streams.domain.alert_type.Alert`, a typed struct whose
fields are generated from the one definition of the alert (``rows.ALERT``): a field this
module misspells, or a required one it leaves out, fails here, not in a consumer (types
are checked where notify decodes the message, and ``test_rows`` holds a real alert's bytes
to schemas/alert.v1.json).

Deterministic: the id is derived from the episode, the status, the window and the
event-time ``as_of``, and ``raised_at`` is given by the caller (the broker timestamp of
the record that triggered it), so a re-delivered batch produces byte-identical alerts and
a consumer can drop a repeat by ``alert_id``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from streams.domain.alert_type import Alert, Driver
from streams.domain.detect import Transition
from streams.domain.registry import Checkpoint

ALERT_SCHEMA_VERSION = 1

#: Namespace of the name-based (v5) UUIDs that identify alert messages.
ALERT_ID_NAMESPACE = uuid.UUID("6f1c2a52-3c1e-4d0b-9a57-3a9d8c0f2b11")


def _signed(value: float) -> str:
    return f"{value:+,.0f}"


def summary_line(checkpoint: Checkpoint, direction: str, transition: Transition) -> str:
    """One sentence for the person on duty: what, where, how much against what normal, why."""
    a, e = transition.assessment, transition.episode
    what = {"running_day": "so far today", "last_hour": "in the last hour", "full_day": "for the day"}[
        a.window
    ]
    # A post-level assessment (both directions summed) speaks for the post, not one direction.
    where = f"{checkpoint.name} (both directions)" if a.post else f"{checkpoint.name} {direction}"
    resolved = "resolved: " if transition.status == "resolved" else ""
    if a.cause == "reopened":
        line = f"{resolved}{where} reopened: {a.observed:,} crossings {what} ({a.local_day})"
    elif a.cause == "new_traffic":
        line = (
            f"{resolved}{where} carries traffic where there was none: {a.observed:,} crossings "
            f"{what} ({a.local_day})"
        )
    elif a.cause == "closed":
        line = f"{resolved}{where} closed: {a.observed:,} crossings for the day vs {a.expected:,.0f} usual"
    elif a.cause == "no_data" and transition.status == "firing":
        line = (
            f"{where}: no crossings at all {what} where {a.expected:,.0f} were expected "
            f"(normal {a.band[0]:,.0f}-{a.band[1]:,.0f}, {a.local_day}): the post is closed or has "
            "stopped reporting"
        )
    else:
        subject = f"{a.scope} crossings at {where}" if a.scope else where
        line = (
            f"{resolved}{e.kind} in {subject}: {a.observed:,} {what} vs {a.expected:,.0f} expected "
            f"(x{a.ratio:.2f}, normal {a.band[0]:,.0f}-{a.band[1]:,.0f}, {a.local_day})"
        )
        if a.scope and transition.status == "firing":
            line += "; the post's other groups are within their usual range"
    if a.drivers:
        line += "; " + ", ".join(
            f"{d.nationality} {d.purpose} {d.observed:,} vs {d.expected:,.0f} ({_signed(d.delta)})"
            for d in a.drivers
        )
    if a.notes:
        line += " [" + "; ".join(a.notes) + "]"
    return line


def alert_id(episode_id: str, status: str, window: str, as_of: datetime) -> str:
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{episode_id}|{status}|{window}|{as_of.isoformat()}"))


def alert_message(
    checkpoint: Checkpoint, direction: str, transition: Transition, *, raised_at: datetime
) -> Any:
    """The :data:`Alert` a transition publishes (``Any``: the struct is generated)."""
    a, e = transition.assessment, transition.episode
    as_of = transition.as_of.astimezone(UTC)
    return Alert(
        version=ALERT_SCHEMA_VERSION,
        alert_id=alert_id(e.episode_id, transition.status, a.window, as_of),
        episode_id=e.episode_id,
        status=transition.status,
        kind=e.kind,
        checkpoint_id=checkpoint.checkpoint_id,
        checkpoint_name=checkpoint.name,
        direction=direction,
        local_day=a.local_day.isoformat(),
        window=a.window,
        as_of=as_of.isoformat(),
        raised_at=raised_at.astimezone(UTC).isoformat(),
        observed=a.observed,
        expected=round(a.expected, 1),
        ratio=round(a.ratio, 3),
        score=round(a.score, 2),
        drivers=[
            Driver(
                nationality=d.nationality,
                purpose=d.purpose,
                observed=d.observed,
                expected=round(d.expected, 1),
                delta=round(d.delta, 1),
            )
            for d in a.drivers
        ],
        cause=a.cause,
        scope=a.scope,
        band=[round(a.band[0], 1), round(a.band[1], 1)],
        notes=list(a.notes),
        summary=summary_line(checkpoint, direction, transition),
    )


def alert_log_line(alert: Any) -> str:
    """One log line for an :data:`Alert`: its status once, then what it says."""
    summary = str(alert.summary)
    status = str(alert.status)
    return f"alert {status}: {summary.removeprefix(status + ': ')}"
