"""Which local calendar day and hour an instant belongs to at a checkpoint.

Always through the tz database: Asia/Almaty moved from UTC+6 to UTC+5 on 1 March 2024,
so the local hour 23:00-24:00 of 29 February 2024 happened twice and a fixed offset
would put a whole hour of crossings on the wrong day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_day(occurred_at: datetime, tz: ZoneInfo) -> date:
    """The checkpoint-local calendar day of an aware instant."""
    return occurred_at.astimezone(tz).date()


def local_day_and_hour(occurred_at: datetime, tz: ZoneInfo) -> tuple[date, int]:
    local = occurred_at.astimezone(tz)
    return local.date(), local.hour


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC-comparable [start, end) of a local day; 23 or 25 hours long across a shift."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    # Normalise through UTC so the fold/gap rules of the zone apply to both ends.
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))
