"""A weekend between two holidays is part of the holiday (issue 17: Hong Kong's alarms
around China's golden weeks, whose Saturday and Sunday the ``holidays`` package does not
list): the detector's calendar bridges it, and last year's same place in such a block is
this year's counterpart."""

from __future__ import annotations

from datetime import date, timedelta

from streams.domain.detect.calendar import (
    holiday_block,
    holiday_days,
    holiday_days_of_years,
    holiday_names,
    same_holiday_last_year,
)

CN = ("CHN",)


def test_the_golden_weeks_weekend_is_a_holiday():
    # The package: National Day 1-3 October 2024, days off 4 and 7; nothing on 5-6.
    assert [bool(holiday_names(CN, date(2024, 10, d))) for d in range(1, 9)] == [True] * 7 + [False]
    assert holiday_block(CN, date(2024, 10, 5)) == (date(2024, 10, 1), date(2024, 10, 7))
    # Spring Festival 2025: 28 January to 4 February, the weekend of 1-2 February included.
    assert holiday_block(CN, date(2025, 2, 1)) == (date(2025, 1, 28), date(2025, 2, 4))


def test_a_weekend_beside_one_holiday_only_stays_a_weekend():
    # 2024-02-17, a Saturday after the Spring Festival's last day off: a working Sunday follows.
    assert holiday_names(CN, date(2024, 2, 17)) == ()
    assert holiday_names(("US",), date(2024, 7, 6)) == ()  # after Independence Day, a Thursday


def test_a_bridged_day_matches_last_years_day_in_the_same_place():
    # Easter in New Zealand: Good Friday and Easter Monday are holidays, the weekend between
    # is bridged; Easter Saturday 2024 (30 March) is matched with Easter Saturday 2023 (8 April).
    nz = ("NZL",)
    (saturday,) = holiday_names(nz, date(2024, 3, 30))
    assert saturday != holiday_names(nz, date(2024, 3, 31))[0]
    assert same_holiday_last_year(nz, saturday, date(2024, 3, 30)) == date(2023, 4, 8)
    assert all(holiday_names(nz, date(2024, 3, 29) + timedelta(days=k)) for k in range(4))


def test_holiday_days_are_the_days_holiday_names_names():
    """``holiday_days`` (the baseline's set of a year's holidays) holds exactly the days
    ``holiday_names`` names, bridged weekends included, for one country or a pair."""
    for countries in (CN, ("FI", "RU"), ("KAZ", "UZB"), ("NZL",), ("XXX",), ()):
        for year in (2019, 2020, 2024, 2025):
            day, found = date(year, 1, 1), set()
            while day.year == year:
                if holiday_names(countries, day):
                    found.add(day)
                day += timedelta(days=1)
            assert holiday_days(countries, year) == found
        both = holiday_days_of_years(countries, 2019, 2020)
        assert both == holiday_days(countries, 2019) | holiday_days(countries, 2020)
