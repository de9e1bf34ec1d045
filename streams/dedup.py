"""Which event ids were already counted, remembered for a bounded horizon of event time.

A sensor retry arrives seconds later and a replayed backlog hours later, so ids are kept
for ``horizon`` of event time behind the newest event of their partition, then
forgotten; memory stays bounded by the traffic of that horizon instead of growing
forever. Each id remembers its partition because a changelogged table can only delete
a key while processing an event of the partition the key was written in.
"""

from __future__ import annotations

#: event_id -> [occurred_at as unix seconds, source partition]
SeenValue = list[float]


def seen_value(occurred_ts: float, partition: int) -> SeenValue:
    return [occurred_ts, float(partition)]
