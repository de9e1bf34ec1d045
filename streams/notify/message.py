"""One alert message as ``crossings notify`` reads it from the alerts topic.

The alerts topic has one partition keyed by episode, so its offsets order every message
of an episode: the offset is the message's *revision*. ``<episode_id>:<offset>`` is the
idempotency key a receiver can drop a repeat by (a message delivered again after a crash
between delivery and commit carries the same key) and, within an episode, a later
revision is always a later message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlertRecord:
    offset: int
    #: The record's bytes as the worker wrote them (JSON per schemas/alert.v1.json):
    #: webhooks get exactly these, so the signature covers what the worker published.
    value: bytes
    alert: dict[str, Any]

    @classmethod
    def from_kafka(cls, offset: int, value: bytes) -> AlertRecord:
        return cls(offset, value, json.loads(value))

    @property
    def episode_id(self) -> str:
        return self.alert["episode_id"]

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.episode_id, self.offset)


def idempotency_key(episode_id: str, revision: int) -> str:
    return f"{episode_id}:{revision}"
