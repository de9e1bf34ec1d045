"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>``.

The timestamp (unix seconds of the attempt) is signed with the body so a captured request
cannot be replayed later: a receiver checks the signature and that the timestamp is
recent (``verify``'s tolerance). Each attempt is signed afresh.

Headers (also in the README):

- ``X-Crossings-Timestamp: 1718000000``
- ``X-Crossings-Signature: v1=<hex HMAC-SHA256(secret, "1718000000." + body)>``
- ``Idempotency-Key: <episode_id>:<revision>`` (see ``message``)
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Crossings-Timestamp"
SIGNATURE_HEADER = "X-Crossings-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ALERT_ID_HEADER = "X-Crossings-Alert-Id"
SCHEME = "v1"
#: How old a signed timestamp ``verify`` accepts by default, seconds.
TOLERANCE_SECONDS = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the signature matches (constant-time) and the timestamp is
    within ``tolerance`` seconds of ``now``."""
    if not timestamp_header or not signature_header or not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)
