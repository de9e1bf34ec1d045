"""Event times on the checkpoint's own clock, resolved against the tz database.

Most hours of a local day have one UTC offset and exist once, so ``occurred_at`` is
rendered by string concatenation from hours resolved in advance (:func:`hour_slots`).
Hours touched by a clock change take :func:`slow_local_time`, which also says which
local day an event really falls on: the default window spans 1 March 2024, when
Asia/Almaty moved from UTC+6 to UTC+5 and 29 February had 25 hours.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

# Share of valid events whose occurred_at is written in UTC ('Z') instead of local offset.
UTC_FORM_SHARE = 0.05


@dataclass(frozen=True)
class HourSlot:
    """One local wall-clock hour of one local day, pre-resolved against the tz database.

    ``uniform`` means the whole hour exists exactly once with one UTC offset, so an event
    time can be rendered by string concatenation; otherwise (DST gaps, the repeated hour
    on 29 Feb 2024 in Asia/Almaty) the slow path asks zoneinfo per event.
    """

    uniform: bool
    epoch0: int
    prefix: str  # "2024-03-01T09:"
    suffix: str  # "+05:00"


_SLOT_CACHE: dict[tuple[str, date], tuple[HourSlot, ...]] = {}


def hour_slots(zone: ZoneInfo, local_day: date) -> tuple[HourSlot, ...]:
    key = (zone.key, local_day)
    cached = _SLOT_CACHE.get(key)
    if cached is not None:
        return cached
    slots = []
    for hour in range(24):
        first = datetime(local_day.year, local_day.month, local_day.day, hour, tzinfo=zone)
        last = first.replace(minute=59, second=59)
        offsets = {moment.replace(fold=fold).utcoffset() for moment in (first, last) for fold in (0, 1)}
        offset = first.utcoffset()
        assert offset is not None
        exists = datetime.fromtimestamp(first.timestamp(), zone).replace(tzinfo=None) == (
            first.replace(tzinfo=None)
        )
        slots.append(
            HourSlot(
                uniform=len(offsets) == 1 and exists,
                epoch0=int(first.timestamp()),
                prefix=f"{local_day.isoformat()}T{hour:02d}:",
                suffix=_format_offset(offset),
            )
        )
    result = tuple(slots)
    if len(_SLOT_CACHE) > 4096:
        _SLOT_CACHE.clear()
    _SLOT_CACHE[key] = result
    return result


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def utc_form(epoch: int, millis: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + millis + "Z"


def day_start_epoch(zone: tzinfo, local_day: date) -> float:
    """First instant of a local day; min over folds so a repeated midnight is covered."""
    midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=zone)
    return min(midnight.timestamp(), midnight.replace(fold=1).timestamp())


def slow_local_time(
    rng: random.Random, zone: ZoneInfo, local_day: date, hour: int, within: int, millis: str
) -> tuple[int, str, str]:
    """Resolve a wall time in an hour touched by a clock change; returns the real day.

    A repeated hour is split between its two occurrences (random fold); a non-existent
    wall time is pushed to the instant zoneinfo maps it to, and the event is counted on
    whatever local day that instant really falls.
    """
    minute, second = divmod(within, 60)
    wall = datetime(
        local_day.year,
        local_day.month,
        local_day.day,
        hour,
        minute,
        second,
        tzinfo=zone,
        fold=rng.getrandbits(1),
    )
    epoch = int(wall.timestamp())
    actual = datetime.fromtimestamp(epoch, zone)
    if rng.random() < UTC_FORM_SHARE:
        text = utc_form(epoch, millis)
    else:
        stamp = actual.isoformat(timespec="seconds")
        text = stamp[:19] + millis + stamp[19:]
    return epoch, text, actual.date().isoformat()
