"""Last year's one-off (a two-day collapse: a storm, a closure that alarmed) is not the
season: this year's same week is not expected low for it (issue 17). Last year's ramp,
which lasts, still is."""

from __future__ import annotations

from datetime import date, timedelta

from streams.domain.detect.baseline import build_baseline
from streams.domain.detect.history import ALARM, NORMAL, DayHistory


def _expected(totals: dict[date, int], day: date, flags: dict[date, str]) -> float:
    history = DayHistory()
    d = date(2023, 1, 1)
    while d < day:
        history.record(d, totals.get(d, 1000), flags.get(d, NORMAL))
        d += timedelta(days=1)
    baseline = build_baseline(day, lambda _: None, history=history)
    assert baseline is not None
    return baseline.expected_day


def test_last_years_two_day_collapse_is_not_expected_again():
    collapse = {date(2023, 6, 13): 100, date(2023, 6, 14): 100}
    flags = dict.fromkeys(collapse, ALARM)
    # 14 June 2024 reads last year's 13-19 June: the collapse is two of its seven days.
    assert 950 <= _expected(collapse, date(2024, 6, 14), flags) <= 1050


def test_last_years_month_long_rise_is_still_expected():
    """Last year, 13 June to 12 July at x1.5 (a season of a month): this year's 20 June is
    expected above the weekly level of May and early June, as last year moved."""
    rise = {date(2023, 6, 13) + timedelta(days=k): 1500 for k in range(30)}
    assert _expected(rise, date(2024, 6, 20), {}) >= 1200
