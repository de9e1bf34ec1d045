"""The eve of a holiday and the day after it move people too (issue 17: Hong Kong's
alarms clustered on the first and last days of the holidays of either country): last
year's eve, against its ordinary days, says what this year's eve is expected to carry."""

from __future__ import annotations

from datetime import date, timedelta

from streams.domain.detect.baseline import build_baseline
from streams.domain.detect.calendar import beside_holiday_last_year
from streams.domain.detect.history import NORMAL, DayHistory

US = ("US",)


def _history(special: dict[date, int]) -> DayHistory:
    history = DayHistory()
    day = date(2023, 6, 1)
    while day < date(2024, 7, 15):
        history.record(day, special.get(day, 1000), NORMAL)
        day += timedelta(days=1)
    return history


def _expected(history: DayHistory, day: date) -> float:
    # Only the day itself is looked up, so the baseline reads the history alone.
    baseline = build_baseline(day, lambda d: None, history=history, countries=US)
    assert baseline is not None
    return baseline.expected_day


def test_last_years_busy_eve_is_expected_this_year():
    # 4 July 2023 was a Tuesday: its eve, Monday 3 July, carried twice an ordinary day.
    history = _history({date(2023, 7, 3): 2000, date(2023, 7, 5): 1500})
    assert 1800 <= _expected(history, date(2024, 7, 3)) <= 2200  # the eve, a Wednesday
    assert 1350 <= _expected(history, date(2024, 7, 5)) <= 1650  # the day after
    assert 900 <= _expected(history, date(2024, 7, 10)) <= 1100  # an ordinary Wednesday


def test_an_eve_that_was_ordinary_last_year_stays_ordinary():
    history = _history({})
    assert 900 <= _expected(history, date(2024, 7, 3)) <= 1100


def test_which_days_are_beside_a_holiday():
    assert beside_holiday_last_year(US, date(2024, 7, 3)) == ("eve of Independence Day", date(2023, 7, 3))
    assert beside_holiday_last_year(US, date(2024, 7, 5)) == ("day after Independence Day", date(2023, 7, 5))
    assert beside_holiday_last_year(US, date(2024, 7, 4)) is None  # the holiday itself
    assert beside_holiday_last_year(US, date(2024, 7, 10)) is None
