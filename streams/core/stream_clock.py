"""A partition's event time, agreed on by its latest events.

The clock is the lower median of the last ``AGREEMENT_WINDOW`` events the partition's
producers sent (``domain.clock.agreed_time``): an event stamped far ahead is counted on its
own day but does not move it, and re-sending it does not add a vote. Copies forwarded here
from the partition a producer mis-keyed them to come in no fixed order and do not vote.
The clock only moves forward; detection and the too-late rule run on it.
"""

from __future__ import annotations

from streams.core.state import PartitionState
from streams.domain.clock import AGREEMENT_WINDOW, agreed_time


class StreamClock:
    def __init__(self, state: PartitionState) -> None:
        self.state = state

    def vote(self, ts: float) -> float | None:
        """Count an event's time among the latest; the new agreed time when it moves the
        clock forward, None when the clock stays (the caller moves it, after judging what
        came before)."""
        state = self.state
        recent = state.recent
        recent.append(ts)
        if len(recent) > AGREEMENT_WINDOW:
            del recent[0]
        stream_ts = state.stream_ts
        if stream_ts is None or ts > stream_ts:
            agreed = agreed_time(recent)
            if agreed is not None and (stream_ts is None or agreed > stream_ts):
                return agreed
        return None
