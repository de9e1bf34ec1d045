"""One evaluation of a post at one instant: entry, exit, then the post view.

The worker (``core.detectors.PartitionDetectors``, once per owned checkpoint at each whole
hour of stream time) and ``crossings backtest`` (per series at the instants the worker's
clock would have evaluated it, or a lake replayed through the worker's core) both call
this, so the test that the backtest equals the worker guards one code path: the order in
which a post's detectors are evaluated decides what they raise (a direction holds back a
drop the post view covers, and the post view needs both directions evaluated first).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from streams.domain.detect.detector import CheckpointDetector
from streams.domain.detect.episodes import POST_DIRECTION, Transition


def evaluate_step(
    detectors: Sequence[CheckpointDetector], as_of: datetime
) -> Iterator[tuple[str, list[Transition]]]:
    """Evaluate each detector at ``as_of`` (a post's directions in its order, the first
    holding the post-level episode), then, for a paired post, the post as a whole. Yields
    each direction's transitions as it is evaluated (so a caller publishes them before the
    next is judged), then ``POST_DIRECTION``'s. A transition's own ``direction``, when set,
    says which direction it speaks for instead."""
    for detector in detectors:
        yield detector.direction, detector.evaluate(as_of)
    first = detectors[0]
    if first.partner is not None and first.post_owner:
        yield POST_DIRECTION, first.evaluate_post(as_of)
