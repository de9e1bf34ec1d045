"""What is sent to each kind of receiver, and one HTTP attempt.

``AlertmanagerSink`` posts the Alertmanager form of each message and keeps the firing set
it re-posts; ``WebhookSink`` posts the message's own bytes, signed. Both answer with a
``Verdict`` and a short detail (``HTTP 503``, ``ClientConnectorError``) that never holds
the URL's path or query.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import aiohttp

from streams.notify.firing import FiringSet
from streams.notify.message import AlertRecord
from streams.notify.retry import Verdict, verdict
from streams.notify.signing import ALERT_ID_HEADER, IDEMPOTENCY_HEADER, signed_headers
from streams.settings import Receiver, Secret

_JSON = {"Content-Type": "application/json"}


@dataclass
class AlertmanagerSink:
    receiver: Receiver
    generator_template: str
    firing: FiringSet = field(default_factory=FiringSet)

    @property
    def url(self) -> str:
        return f"{self.receiver.url}/api/v2/alerts"

    def body(self, record: AlertRecord) -> bytes:
        """The message as an Alertmanager alert; takes it into the firing set (once per
        message, whatever becomes of its delivery: a firing alert that could not be
        delivered is still re-posted at the next interval)."""
        episode = self.firing.apply(record.alert)
        return json.dumps([episode.posted(self.generator_template)]).encode()

    def headers(self, record: AlertRecord, body: bytes) -> dict[str, str]:
        return {**_JSON, IDEMPOTENCY_HEADER: record.idempotency_key}

    def resend_body(self) -> bytes | None:
        episodes = self.firing.open()
        if not episodes:
            return None
        return json.dumps([e.posted(self.generator_template) for e in episodes]).encode()


@dataclass
class WebhookSink:
    receiver: Receiver
    secret: Secret

    @property
    def url(self) -> str:
        return self.receiver.url

    def body(self, record: AlertRecord) -> bytes:
        return record.value

    def headers(self, record: AlertRecord, body: bytes) -> dict[str, str]:
        """Signed at each attempt, with the attempt's time."""
        secret = self.secret.reveal().encode()
        return {
            **_JSON,
            **signed_headers(secret, int(time.time()), body),
            IDEMPOTENCY_HEADER: record.idempotency_key,
            ALERT_ID_HEADER: record.alert.alert_id,
        }


Sink = AlertmanagerSink | WebhookSink


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[Verdict, str]:
    """One attempt: the verdict and a detail for logs and dead letters."""
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            await response.read()
            return verdict(response.status), f"HTTP {response.status}"
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        # The class name only: aiohttp's messages include the URL.
        return Verdict.RETRY, type(error).__name__
