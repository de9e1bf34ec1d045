"""How hard to try: exponential backoff with jitter, a give-up time, and what an HTTP
answer means for a message.

Equal jitter (half the step fixed, half random) rather than full jitter: the waits still
grow, so a receiver that is down for ten minutes is asked a bounded number of times,
and many notify processes that failed together do not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

#: First step of the backoff, seconds.
BASE_SECONDS = 0.5


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    #: The receiver refused the message itself: sending it again cannot help.
    REJECTED = "rejected"


#: 4xx answers that mean "not now" rather than "never".
_RETRYABLE_4XX = frozenset({408, 425, 429})


def verdict(status: int) -> Verdict:
    """2xx delivered; 5xx, 408, 425, 429 (and anything odd) retried; other 4xx rejected."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return Verdict.REJECTED
    return Verdict.RETRY


@dataclass(frozen=True)
class RetryPolicy:
    max_seconds: float = 60.0
    give_up_seconds: float = 3600.0
    base_seconds: float = BASE_SECONDS

    def step(self, attempt: int) -> float:
        """The backoff ceiling after failed attempt number ``attempt`` (1-based)."""
        # Capped exponent: 2**attempt overflows a float long before a week of retries.
        return min(self.max_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 60))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt``: in [step/2, step]."""
        step = self.step(attempt)
        return step / 2 + rng.uniform(0.0, step / 2)

    def gives_up(self, elapsed: float, next_delay: float) -> bool:
        """Whether a message first tried ``elapsed`` seconds ago should be dead-lettered
        rather than tried again after ``next_delay``."""
        return elapsed + next_delay > self.give_up_seconds
