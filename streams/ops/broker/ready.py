"""Readiness: does a cluster (ours or an external one) answer a metadata request?"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaAdminClient

from streams.ops.broker.layout import BrokerError

#: Seconds between readiness probes while waiting for the broker.
_POLL = 0.25


def accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"{item!r} in bootstrap {bootstrap!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def _probe(bootstrap: str, timeout: float, client: Mapping[str, Any] | None = None) -> str | None:
    """One readiness check: None if the cluster answered a metadata request listing at
    least one broker, else a short reason. A plain TCP connect first keeps the common
    "not listening yet" case fast and free of client error logging. ``client``: the
    kafka-python security keyword arguments (SASL, TLS), if any."""
    targets = _split_bootstrap(bootstrap)
    if not any(accepts(host, port, min(timeout, 1.0)) for host, port in targets):
        return f"nothing accepts connections on {bootstrap}"
    timeout_ms = max(int(timeout * 1000), 1000)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="crossings-readiness-probe",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
            **(client or {}),
        )
        cluster = admin.describe_cluster()
    except Exception as exc:  # any client failure just means "not ready yet"
        return f"{type(exc).__name__}: {exc}"
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
    if not cluster.get("brokers"):
        return "metadata answered but no broker is registered yet"
    return None


def wait_until(
    bootstrap: str,
    timeout: float,
    abort: Callable[[], str | None] | None = None,
    client: Mapping[str, Any] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if abort is not None:
            why = abort()
            if why:
                raise BrokerError(why)
        remaining = deadline - time.monotonic()
        reason = _probe(bootstrap, max(min(remaining, 5.0), 0.5), client) or ""
        if not reason:
            return
        if time.monotonic() + _POLL >= deadline:
            raise BrokerError(
                f"Kafka at {bootstrap} did not answer a metadata request within "
                f"{timeout:.0f}s (last error: {reason})."
            )
        time.sleep(_POLL)


def wait_ready(bootstrap: str, timeout: float, client: Mapping[str, Any] | None = None) -> None:
    """Block until the cluster at ``bootstrap`` answers a metadata request, or raise.

    Works against any cluster (ours or an external ``--broker``), so the app can wait for
    Kafka instead of crashing when started alongside it. Raises BrokerError on timeout.
    ``client``: kafka-python security keyword arguments (``streams.ops.security``).
    """
    wait_until(bootstrap, timeout, client=client)
