"""Which event ids were already counted, remembered for a bounded horizon of event time.

A sensor retry arrives seconds later and a replayed backlog hours later, so ids are kept
for ``horizon`` of event time past the newest event seen, then forgotten; memory stays
bounded by the traffic of that horizon rather than growing forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta


def expired_ids(seen_items: Iterable[tuple[str, float]], newest_ts: float, horizon: timedelta) -> list[str]:
    """Ids whose event time is older than the horizon behind the newest event time."""
    cutoff = newest_ts - horizon.total_seconds()
    return [event_id for event_id, ts in seen_items if ts < cutoff]
