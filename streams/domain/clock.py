"""Which event time each partition's checkpoints are judged at.

Normally a partition's own stream time: the time its latest counted events agree on (see
:func:`agreed_time`). A partition that has sent nothing for ``idle_after`` wall-clock
seconds would stop its clock, and a checkpoint alone in it that closed would never be seen
to drop; so an idle partition follows the slowest *active* partition (the idle-source rule
of Flink's watermarks). When every partition is idle nothing moves: event time is not
invented from the wall clock, which would be wrong for replays of history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: How many of the latest events a partition counted its clock is agreed on: it moves
#: only to the (lower) median of their times, so up to two in any five with a broken clock
#: (stamped in the present in a replay of history, where the broker's timestamp says
#: nothing about event time and cannot bound it) never move it. A partition has no clock
#: before its first five events.
AGREEMENT_WINDOW = 5


def agreed_time(recent: Sequence[float]) -> float | None:
    """The event time that most of ``recent`` (the times of the latest events a partition
    counted, in the order they came) have reached: their lower median; None before the
    window is full.

    The clock only ever moves forward to it, and only when an event ahead of the clock
    comes: one at or behind it cannot raise the median past the clock."""
    if len(recent) < AGREEMENT_WINDOW:
        return None
    return sorted(recent)[(AGREEMENT_WINDOW - 1) // 2]


def partition_clocks(
    stream_ts: Mapping[int, float | None],
    last_message_at: Mapping[int, float],
    now: float,
    idle_after: float,
) -> dict[int, float]:
    """Partition -> the event time (unix s) to judge its checkpoints at; ``now`` and
    ``last_message_at`` are monotonic wall-clock readings taken by the caller."""
    known = {p: ts for p, ts in stream_ts.items() if ts is not None}
    active = [ts for p, ts in known.items() if now - last_message_at.get(p, float("-inf")) < idle_after]
    floor = min(active, default=None)
    if floor is None:
        return known
    return {p: max(ts, floor) for p, ts in known.items()}


def boundaries(after: int, until: float, step: int, limit: int) -> list[int]:
    """The multiples of ``step`` in (after, until], at most the last ``limit`` of them."""
    first = after // step * step + step
    last = int(until // step * step)
    if last < first:
        return []
    start = max(first, last - (limit - 1) * step)
    return list(range(start, last + 1, step))
