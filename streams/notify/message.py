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
from functools import cache
from typing import Any

import fastjsonschema
import msgspec

from streams.domain.alert_type import Alert, decode_alert
from streams.schemas import load_json


class MalformedAlert(ValueError):
    """A message on the alerts topic that is not an alert of schemas/alert.v1.json (only
    the worker writes that topic, but a person or a tool with write access may too): it
    is dead-lettered, never delivered, and never stops notify."""


@cache
def _validate() -> Any:
    return fastjsonschema.compile(load_json("alert.v1.json"))


@dataclass(frozen=True)
class AlertRecord:
    offset: int
    #: The record's bytes as the worker wrote them (JSON per schemas/alert.v1.json):
    #: webhooks get exactly these, so the signature covers what the worker published.
    value: bytes
    #: The message as a typed value (fields generated from ``rows.ALERT``).
    alert: Alert

    @classmethod
    def from_kafka(cls, offset: int, value: bytes | None) -> AlertRecord:
        """The alert at ``offset``; ``MalformedAlert`` saying why if it is not one."""
        if value is None:
            raise MalformedAlert("the message has no value (a tombstone)")
        try:
            alert = json.loads(value)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            raise MalformedAlert(f"not JSON: {type(error).__name__}: {str(error)[:200]}") from None
        try:
            _validate()(alert)
        except fastjsonschema.JsonSchemaException as error:
            raise MalformedAlert(f"not an alert of schemas/alert.v1.json: {error.message[:200]}") from None
        try:
            typed = decode_alert(value)
        except msgspec.ValidationError as error:  # a type the schema lets through
            raise MalformedAlert(f"not an alert of schemas/alert.v1.json: {str(error)[:200]}") from None
        return cls(offset, value, typed)

    @property
    def episode_id(self) -> str:
        return self.alert.episode_id

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.episode_id, self.offset)


def idempotency_key(episode_id: str, revision: int) -> str:
    return f"{episode_id}:{revision}"
