"""An alert message (schemas/alert.v1.json) as an Alertmanager API v2 alert.

Alertmanager knows an alert by its label set, so every message of one episode must map to
the same labels: the alert name is decided by the episode's first message and kept (see
``firing``), and the episode id is a label, so two episodes never merge into one alert.
``startsAt`` is the event time the episode opened; a resolve carries ``endsAt`` (the
event time it resolved). A firing alert carries no ``endsAt``: Alertmanager then ends it
``resolve_timeout`` (5 min by default) after the last post, which is why ``crossings
notify`` re-posts open episodes every ``CROSSINGS_NOTIFY_RESEND_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from streams.domain.alert_type import Alert

#: A drop whose flow is at most this share of normal is a closure: nobody is crossing.
CLOSED_RATIO = 0.05

ALERT_NAMES = ("CrossingSurge", "CrossingDrop", "CheckpointClosed")

#: What the operator should do, per alert name (also in the README).
ACTIONS = {
    "CrossingSurge": (
        "Check staffing and queue capacity at the post; the top groups say who is driving it "
        "(e.g. a seasonal labour wave). Confirm with the post before escalating."
    ),
    "CrossingDrop": (
        "Ask the post whether a lane, system or group is blocked; if only some groups fell, "
        "look for a policy change or an incident affecting them. Check the events topic's "
        "dead letters in case the post's feed is broken rather than the flow."
    ),
    "CheckpointClosed": (
        "Nobody is being recorded crossing: confirm with the post whether it is closed. If it is "
        "open, its feed is down: check the post's uploader and the dead-letter topic."
    ),
}

_SEVERITY = {"CrossingSurge": "warning", "CrossingDrop": "warning", "CheckpointClosed": "critical"}
_WINDOW_WORDS = {
    "running_day": "so far today",
    "last_hour": "in the last hour",
    "full_day": "over the whole day",
}


def alert_name(alert: Alert) -> str:
    """CrossingSurge, CrossingDrop, or CheckpointClosed for a drop to (almost) nothing."""
    if alert.kind == "surge":
        return "CrossingSurge"
    return "CheckpointClosed" if alert.ratio <= CLOSED_RATIO else "CrossingDrop"


def top_groups(alert: Alert) -> str:
    return "; ".join(
        f"{d.nationality} {d.purpose} {d.observed:,} vs {d.expected:,.0f} ({d.delta:+,.0f})"
        for d in alert.drivers
    )


def description(alert: Alert, name: str) -> str:
    """Words for a person: what is happening, by how much, who, and what to do."""
    flow = {"entry": "Entries", "exit": "Exits"}.get(alert.direction, "Entries and exits")
    where = f"{alert.checkpoint_name} ({alert.checkpoint_id})"
    window = _WINDOW_WORDS[alert.window]
    figures = (
        f"{alert.observed:,} {window} on {alert.local_day} (local day) against "
        f"{alert.expected:,.0f} expected, {alert.ratio:.2f} times normal"
    )
    if alert.status == "resolved":
        text = f"{flow} at {where} are back within their normal range: {figures}."
    elif name == "CheckpointClosed":
        text = f"{flow} at {where} have stopped: {figures}."
    elif name == "CrossingSurge":
        text = f"{flow} at {where} are well above normal: {figures}."
    else:
        text = f"{flow} at {where} are well below normal: {figures}."
    if alert.drivers:
        text += f" Top groups: {top_groups(alert)}."
    if alert.status != "resolved":
        text += f" What to do: {ACTIONS[name]}"
    return text


def generator_url(template: str, alert: Alert) -> str:
    return template.format(
        checkpoint=alert.checkpoint_id, direction=alert.direction, episode=alert.episode_id
    )


def to_alertmanager(alert: Alert, *, name: str, starts_at: str, generator_template: str) -> dict[str, Any]:
    """The Alertmanager API v2 ``postableAlert`` for one message of an episode whose
    alert name and start were fixed by its first message."""
    posted: dict[str, Any] = {
        "labels": {
            "alertname": name,
            "checkpoint": alert.checkpoint_id,
            "direction": alert.direction,
            "severity": _SEVERITY[name],
            "episode": alert.episode_id,
        },
        "annotations": {
            "summary": alert.summary,
            "description": description(alert, name),
            "observed": str(alert.observed),
            "expected": f"{alert.expected:.1f}",
            "ratio": f"{alert.ratio:.3f}",
            "window": alert.window,
            "local_day": alert.local_day,
            "top_groups": top_groups(alert),
            "alert_id": alert.alert_id,
        },
        "startsAt": starts_at,
        "generatorURL": generator_url(generator_template, alert),
    }
    if alert.status == "resolved":
        posted["endsAt"] = alert.as_of
    return posted
