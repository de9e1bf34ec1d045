"""Which local calendar day and hour an instant belongs to at a checkpoint.

Always through the tz database: Asia/Almaty moved from UTC+6 to UTC+5 on 1 March 2024,
so the local hour 23:00-24:00 of 29 February 2024 happened twice and a fixed offset
would put a whole hour of crossings on the wrong day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Every tz database offset in use is a multiple of 15 minutes, so all instants of one
#: 15-minute UTC slot share their local day and hour.
SLOT_SECONDS = 900


def local_day(occurred_at: datetime, tz: ZoneInfo) -> date:
    """The checkpoint-local calendar day of an aware instant."""
    return occurred_at.astimezone(tz).date()


def local_day_and_hour(occurred_at: datetime, tz: ZoneInfo) -> tuple[date, int]:
    local = occurred_at.astimezone(tz)
    return local.date(), local.hour


class LocalCalendar:
    """``local_day_and_hour`` for one zone, memoised per 15-minute UTC slot.

    A batch of crossings at one checkpoint falls into a handful of slots, so the zone
    conversion runs a few times per batch instead of once per event.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._slots: dict[int, tuple[date, int]] = {}

    def day_and_hour(self, unix_seconds: float) -> tuple[date, int]:
        slot = int(unix_seconds // SLOT_SECONDS)
        found = self._slots.get(slot)
        if found is None:
            if len(self._slots) > 50_000:  # a replay of years: keep memory flat
                self._slots.clear()
            local = datetime.fromtimestamp(slot * SLOT_SECONDS, UTC).astimezone(self.tz)
            found = self._slots[slot] = (local.date(), local.hour)
        return found


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC-comparable [start, end) of a local day; 23 or 25 hours long across a shift."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    # Normalise through UTC so the fold/gap rules of the zone apply to both ends.
    return start.astimezone(UTC), end.astimezone(UTC)
