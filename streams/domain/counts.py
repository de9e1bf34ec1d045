"""Rolling daily counts: one profile per checkpoint x direction x local day.

A profile holds the day's total, its 24 local-hour buckets and the per
(nationality, purpose) counts. Keeping all three in one value means one table write
(one changelog record) per event, and the detector reads a day in one lookup.

Profiles are plain dicts (JSON in the Faust changelog); the functions here are the
only code that shapes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TypedDict

HOURS = 24
_SEP = "|"


class DayProfile(TypedDict):
    total: int
    hourly: list[int]
    groups: dict[str, int]


def profile_key(checkpoint_id: str, direction: str, day: date) -> str:
    return f"{checkpoint_id}{_SEP}{direction}{_SEP}{day.isoformat()}"


def parse_profile_key(key: str) -> tuple[str, str, date]:
    checkpoint_id, direction, day = key.split(_SEP)
    return checkpoint_id, direction, date.fromisoformat(day)


def group_key(nationality: str, purpose: str) -> str:
    return f"{nationality}{_SEP}{purpose}"


def split_group(key: str) -> tuple[str, str]:
    nationality, purpose = key.split(_SEP)
    return nationality, purpose


def empty_profile() -> DayProfile:
    return {"total": 0, "hourly": [0] * HOURS, "groups": {}}


def count_event(
    profile: DayProfile | None, local_hour: int, nationality: str, purpose: str, n: int = 1
) -> DayProfile:
    """Add ``n`` crossings of one kind in one hour; returns the (mutated or new) profile."""
    if profile is None:
        profile = empty_profile()
    profile["total"] += n
    profile["hourly"][local_hour] += n
    group = group_key(nationality, purpose)
    profile["groups"][group] = profile["groups"].get(group, 0) + n
    return profile


def group_counts(profile: DayProfile) -> Iterator[tuple[str, str, int]]:
    """(nationality, purpose, count) rows, sorted for stable output files."""
    for group in sorted(profile["groups"]):
        nationality, purpose = split_group(group)
        yield nationality, purpose, profile["groups"][group]
