"""One direction of a post judged as the worker judges it: every hour, the day's crossings
spread over 06:00-21:00, optionally restarted from its saved state before every evaluation
(through JSON, as the changelog keeps it). Shared by the detector tests that hold a
restarted worker to one never restarted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from streams.domain.counts import count_event
from streams.domain.detect import CheckpointDetector, Transition
from streams.domain.registry import load_registry


def hourly_transitions(
    checkpoint_id: str,
    levels: Sequence[int],
    start: date,
    *,
    restart: bool,
    group: tuple[str, str] = ("KGZ", "labour"),
) -> list[Transition]:
    """The entry detector's transitions over ``len(levels)`` days from ``start``, with
    ``levels[k] // 16`` crossings of ``group`` in each hour from 06:00 to 21:00 of day k."""
    post = load_registry()[checkpoint_id]
    profiles: dict = {}
    detector = CheckpointDetector(post, "entry", profiles.get)
    found: list[Transition] = []
    for k, level in enumerate(levels):
        day = start + timedelta(days=k)
        for hour in range(24):
            if restart:
                state = json.loads(json.dumps(detector.state().to_dict()))
                detector = CheckpointDetector(post, "entry", profiles.get, state=state)
            found += detector.evaluate(datetime.combine(day, time(hour), tzinfo=post.tz))
            if 6 <= hour < 22 and level:
                profiles[day] = count_event(profiles.get(day), hour, *group, level // 16)
    return found
