"""A checkpoint-direction's daily totals for the last ~400 days, kept by its detector.

The worker keeps full day profiles for 35 days only; comparing with the same season last
year needs a year of totals. So the detector records each completed day's total, and
whether that day was part of an alarm (so a past surge or closure does not become
"normal": Farrington's down-weighting of past outbreaks), in its own persisted state:
a start date, a list of ints and a string of one flag character per day; and the level
shifts found in them (``changepoint.py``: the days before a shift are read at the new level).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from streams.domain.detect.changepoint import LevelShifts

KEEP_DAYS = 400

#: Flag characters: an ordinary day, a day in an alarm episode, a day the post was closed.
NORMAL, ALARM, CLOSED = ".", "a", "c"


class DayHistory:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.start: date | None = date.fromisoformat(state["from"]) if state.get("from") else None
        self.totals: list[int | None] = list(state.get("totals", []))
        self.flags: str = state.get("flags", "." * len(self.totals))
        #: Absent from a state saved before level shifts existed: none.
        self.shifts = LevelShifts.from_state(state.get("shifts"))

    def state(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "totals": self.totals,
            "flags": self.flags,
            "shifts": self.shifts.state(),
        }

    def record(self, day: date, total: int, flag: str) -> None:
        if self.start is None:
            self.start = day
        index = (day - self.start).days
        if index < 0:
            return
        while len(self.totals) <= index:
            self.totals.append(None)
            self.flags += NORMAL
        self.totals[index] = total
        self.flags = self.flags[:index] + flag + self.flags[index + 1 :]
        drop = len(self.totals) - KEEP_DAYS
        if drop > 0:
            self.totals = self.totals[drop:]
            self.flags = self.flags[drop:]
            self.start += timedelta(days=drop)
            self.shifts.forget_before(self.start)

    def get(self, day: date) -> tuple[int, str] | None:
        """(total, flag) of a recorded day, or None."""
        if self.start is None:
            return None
        index = (day - self.start).days
        if not 0 <= index < len(self.totals):
            return None
        total = self.totals[index]
        return None if total is None else (total, self.flags[index])

    def scale(self, day: date, as_of: date) -> float:
        """The factor that reads ``day``'s total at ``as_of``'s level (1.0 without a shift
        between them)."""
        return self.shifts.scale(day, as_of) if self.shifts.shifts else 1.0

    def reflag(self, first: date, last: date, old: str, new: str) -> None:
        """Days from ``first`` to ``last`` flagged ``old`` get ``new`` (a level shift's run:
        its alarm days are ordinary days of the new level)."""
        day = first
        while day <= last:
            got = self.get(day)
            if got is not None and got[1] == old:
                self.record(day, got[0], new)
            day += timedelta(days=1)
