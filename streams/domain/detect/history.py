"""A checkpoint-direction's daily totals for the last ~400 days, kept by its detector.

The worker keeps full day profiles for 35 days only; comparing with the same season last
year needs a year of totals. So the detector records each completed day's total, and
whether that day was part of an alarm (so a past surge or closure does not become
"normal": Farrington's down-weighting of past outbreaks), in its own persisted state:
a start date, a list of ints and a string of one flag character per day; the level
shifts found in them (``changepoint.py``: the days before a shift are read at the new level);
and what the day was expected to be (rounded; ``tails.py``: how far the series' days stray
from their expectation on its worst days).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from streams.domain.detect.changepoint import LevelShifts

KEEP_DAYS = 400

#: Flag characters: an ordinary day, a day in an alarm episode, a day the post was closed.
NORMAL, ALARM, CLOSED = ".", "a", "c"

T = TypeVar("T")


@lru_cache(maxsize=64)
def _offsets(back: range) -> tuple[tuple[timedelta, ...], timedelta | None]:
    """``back`` as timedeltas and its smallest (None: empty), made once: ``record`` walks a
    memo's days at every record."""
    return tuple(timedelta(days=k) for k in back), timedelta(days=min(back)) if back else None


class DayHistory:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.start: date | None = date.fromisoformat(state["from"]) if state.get("from") else None
        self.totals: list[int | None] = list(state.get("totals", []))
        self.flags: str = state.get("flags", "." * len(self.totals))
        #: Each day's expected total, as the full-day view judged it (None: not judged).
        #: Absent from a state saved before it existed: none known.
        expected = list(state.get("expected", []))[: len(self.totals)]
        self.expected: list[int | None] = expected + [None] * (len(self.totals) - len(expected))
        #: Absent from a state saved before level shifts existed: none.
        self.shifts = LevelShifts.from_state(state.get("shifts"))
        #: Values worked out from the days (``memo``): name -> (the days back each reads, day
        #: -> value). Not state: a cache, dropped where a day it read changes.
        self._memos: dict[Hashable, tuple[range, dict[date, Any]]] = {}
        #: Per name, where not ``back`` itself: the days (back) whose forgetting can change
        #: its values (``memo``'s ``forget``).
        self._forgets: dict[Hashable, range] = {}

    def state(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "totals": self.totals,
            "flags": self.flags,
            "shifts": self.shifts.state(),
            "expected": self.expected,
        }

    def record(self, day: date, total: int, flag: str) -> None:
        if self.start is None:
            self.start = day
        index = (day - self.start).days
        if index < 0:
            return
        while len(self.totals) <= index:
            self.totals.append(None)
            self.expected.append(None)
            self.flags += NORMAL
        self.totals[index] = total
        self.flags = self.flags[:index] + flag + self.flags[index + 1 :]
        for back, values in self._memos.values():
            # A value reads days at least ``min(back)`` before its own: none kept is late
            # enough to have read this day (the usual case, recording the newest day).
            nearest = _offsets(back)[1]
            if not values or nearest is None or max(values) < day + nearest:
                continue
            if back.step == 1 and len(values) < len(back):
                # Fewer values kept than days each reads: look at each (the same ones go).
                for stale in [d for d in values if back.start <= (d - day).days < back.stop]:
                    del values[stale]
                continue
            for offset in _offsets(back)[0]:
                values.pop(day + offset, None)
        drop = len(self.totals) - KEEP_DAYS
        if drop > 0:
            self.totals = self.totals[drop:]
            self.expected = self.expected[drop:]
            self.flags = self.flags[drop:]
            self.start += timedelta(days=drop)
            self.shifts.forget_before(self.start)
            for name, (back, values) in self._memos.items():
                # Each value that read a day now forgotten (and any that read only days
                # forgotten before: never asked for again), where that can change it.
                oldest = self.start + timedelta(days=self._forgets.get(name, back)[-1])
                if not values or min(values) >= oldest:
                    continue
                for stale in [d for d in values if d < oldest]:
                    del values[stale]

    def get(self, day: date) -> tuple[int, str] | None:
        """(total, flag) of a recorded day, or None."""
        if self.start is None:
            return None
        index = (day - self.start).days
        if not 0 <= index < len(self.totals):
            return None
        total = self.totals[index]
        return None if total is None else (total, self.flags[index])

    def expect(self, day: date, expected: float | None) -> None:
        """What a recorded day was expected to be (kept rounded, as the saved state has it)."""
        index = self._index(day)
        if index is not None:
            self.expected[index] = None if expected is None else round(expected)

    def expected_on(self, day: date) -> int | None:
        """A recorded day's expected total, or None (not judged, or not recorded)."""
        index = self._index(day)
        return None if index is None else self.expected[index]

    def _index(self, day: date) -> int | None:
        if self.start is None:
            return None
        index = (day - self.start).days
        return index if 0 <= index < len(self.totals) else None

    def before(self, day: date, count: int) -> tuple[list[int | None], str]:
        """The totals and flags of the ``count`` days before ``day``, oldest first, as
        ``get`` reads them one by one (a day not recorded: None, flag ``NORMAL``), in one
        slice: the detector reads a month or half a year of them every day."""
        totals, flags, _ = self._slice(day, count, False)
        return totals, flags

    def recorded_before(self, day: date, count: int) -> list[int]:
        """The recorded totals of the ``count`` days before ``day``, oldest first: ``before``'s
        totals without the days not recorded, read off the history's own list (every series
        asks for half a year of them every day)."""
        if self.start is None:
            return []
        high = (day - self.start).days
        first, last = max(high - count, 0), min(high, len(self.totals))
        return [total for total in self.totals[first:last] if total is not None] if first < last else []

    def before_expected(self, day: date, count: int) -> tuple[list[int | None], str, list[int | None]]:
        """``before`` and the same days' expected totals (as ``expected_on`` reads them: None
        where not judged or not recorded), in one slice: a season reads months of them."""
        return self._slice(day, count, True)

    def _slice(
        self, day: date, count: int, with_expected: bool
    ) -> tuple[list[int | None], str, list[int | None]]:
        if self.start is None:
            return [None] * count, NORMAL * count, [None] * count if with_expected else []
        high = (day - self.start).days
        low = high - count
        first, last = max(low, 0), min(high, len(self.totals))
        inside = first < last
        totals = self.totals[first:last] if inside else []
        flags = self.flags[first:last] if inside else ""
        front = min(max(-low, 0), count)
        back = count - front - len(totals)
        expected: list[int | None] = []
        if with_expected:
            expected = [None] * front + (self.expected[first:last] if inside else []) + [None] * back
        return [None] * front + totals + [None] * back, NORMAL * front + flags + NORMAL * back, expected

    def memo(
        self, name: Hashable, day: date, back: range, compute: Callable[[], T], forget: range | None = None
    ) -> T:
        """``compute()``, a value of ``day`` that reads only the days ``day - k`` (``k`` in
        ``back``, ascending) of this history: worked out once, and again only after one of
        those days changed (``record``) or was forgotten (``KEEP_DAYS``). ``name`` tells
        the kinds of values apart (each always with the same ``back``). ``forget`` (the
        last days of ``back``, ascending): only forgetting one of these can change a value
        (forgetting an older one of ``back`` cannot: the caller's to prove)."""
        values = self.memo_values(name, back, forget)
        if day in values:
            return values[day]  # type: ignore[no-any-return]
        found = values[day] = compute()
        return found

    def memo_values(self, name: Hashable, back: range, forget: range | None = None) -> dict[date, Any]:
        """The values ``memo`` keeps under ``name`` (day -> value), to read many days' of them
        without a call each; only ``memo`` adds to them."""
        family = self._memos.get(name)
        if family is None:
            family = self._memos[name] = (back, {})
            if forget is not None:
                self._forgets[name] = forget
        return family[1]

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
