"""Which receiver loops of ``crossings notify`` are delivering, for ``/readyz``.

A receiver loop that stops on an error nobody foresaw is started again after a backoff
(``runner.supervise``); meanwhile the others go on. This table says which loop is down,
since when, why (the exception's class: never its message, which may hold a URL) and how
many times it was restarted, so ``/readyz`` can answer 503 naming it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streams.settings import Receiver


@dataclass
class ReceiverState:
    kind: str
    target: str
    running: bool = False
    #: The class of the exception that stopped the loop last, if it is down.
    error: str | None = None
    #: Wall-clock time the loop stopped (seconds since the epoch), if it is down.
    down_since: float | None = None
    #: Wall-clock time of the next start, if it is down.
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class NotifyHealth:
    receivers: dict[str, ReceiverState] = field(default_factory=dict)

    def _state(self, receiver: Receiver) -> ReceiverState:
        return self.receivers.setdefault(receiver.id, ReceiverState(receiver.kind, receiver.target))

    def running(self, receiver: Receiver) -> None:
        state = self._state(receiver)
        state.running, state.error, state.down_since, state.restart_at = True, None, None, None

    def failed(self, receiver: Receiver, error: BaseException, restart_in: float) -> None:
        state = self._state(receiver)
        now = time.time()
        if state.running or state.down_since is None:
            state.down_since = now
        state.running, state.error, state.restart_at = False, type(error).__name__, now + restart_in
        state.restarts += 1

    @property
    def ready(self) -> bool:
        """Every receiver loop is running (at least one is configured: notify refuses none)."""
        return all(state.running for state in self.receivers.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "receivers": [
                {
                    "sink": state.kind,
                    "target": state.target,
                    "running": state.running,
                    "error": state.error,
                    "down_since": state.down_since,
                    "restart_at": state.restart_at,
                    "restarts": state.restarts,
                }
                for state in self.receivers.values()
            ],
        }
