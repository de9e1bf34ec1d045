"""Public holidays of a checkpoint: both of its countries (``country_a``, ``country_b``).

A border post's traffic on Nauryz or Kurban Ait is not its traffic on an ordinary
Thursday, and either side's holiday moves people. The ``holidays`` package knows the
dates (including moving ones like Eid); the registry's alpha-3 codes pick the countries.
A holiday is matched across years by its name, so "Eid al-Adha" this year is compared
with Eid al-Adha last year even though the dates differ.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache, lru_cache

import holidays
import pycountry


@cache
def _alpha2(code: str) -> str | None:
    if len(code) == 2:
        return code.upper()
    found = pycountry.countries.get(alpha_3=code.upper())
    return found.alpha_2 if found else None


@cache
def _country_year(code: str, year: int) -> dict[date, str]:
    alpha2 = _alpha2(code)
    if alpha2 is None:
        return {}
    try:
        found = holidays.country_holidays(alpha2, years=year)
    except NotImplementedError:  # a country the package does not know
        return {}
    days = {day: _base_name(name) for day, name in found.items()}
    return days | _bridged_weekends(days, frozenset(getattr(found, "weekend", (5, 6))))


def _bridged_weekends(days: dict[date, str], weekend: frozenset[int]) -> dict[date, str]:
    """Weekend days with a holiday on both sides (China's golden weeks: the package lists
    1-4 and 7 October, not the Saturday and Sunday between; Easter's Saturday between Good
    Friday and Easter Monday): one holiday block to the people crossing, named after the
    holiday before them and their place after it (matched to last year's by that name)."""
    bridged = {}
    for day in sorted(days):
        gap, after = [], day + timedelta(days=1)
        while after not in days and after.weekday() in weekend and len(gap) < 3:
            gap.append(after)
            after += timedelta(days=1)
        if gap and after in days:
            bridged |= {d: f"{days[day]}, weekend day {k}" for k, d in enumerate(gap, 1)}
    return bridged


def _base_name(name: str) -> str:
    """ "Nowruz Holiday (observed)" and "Nowruz Holiday" are the same holiday."""
    return name.split(" (")[0].split(";")[0].strip()


#: Remembered: a baseline asks about the same days hundreds of times (its weeks, and each of
#: them a year back), every day. Bounded (a worker runs for years): 65,536 pairs of countries
#: and days are two years of days for ninety pairs of countries.
@lru_cache(maxsize=1 << 16)
def holiday_names(countries: tuple[str, ...], day: date) -> tuple[str, ...]:
    """Names of the holidays on ``day`` in any of ``countries`` (alpha-3 or alpha-2)."""
    return tuple(sorted({n for c in countries if (n := _country_year(c, day.year).get(day))}))


@lru_cache(maxsize=1024)
def holiday_days(countries: tuple[str, ...], year: int) -> frozenset[date]:
    """The days of ``year`` with a holiday in any of ``countries`` (``holiday_names`` not
    empty), as one set: the baseline asks it of two months of days, every day."""
    return frozenset(
        day for c in countries for day, name in _country_year(c, year).items() if name and day.year == year
    )


@lru_cache(maxsize=1024)
def holiday_days_of_years(countries: tuple[str, ...], first: int, last: int) -> frozenset[date]:
    """``holiday_days`` of the years ``first`` to ``last`` together."""
    return frozenset().union(*(holiday_days(countries, year) for year in range(first, last + 1)))


def same_holiday_last_year(countries: tuple[str, ...], name: str, day: date) -> date | None:
    """The day last year that carried the holiday ``name`` closest to ``day`` a year before."""
    candidates = [d for c in countries for d, n in _country_year(c, day.year - 1).items() if n == name]
    if not candidates:
        return None
    target = (
        day.replace(year=day.year - 1)
        if not (day.month == 2 and day.day == 29)
        else date(day.year - 1, 2, 28)
    )
    return min(candidates, key=lambda d: (abs((d - target).days), d))


def holiday_block(countries: tuple[str, ...], day: date) -> tuple[date, date]:
    """The first and last day of the run of consecutive holidays (of any name) that
    ``day`` is in (``day`` twice if it is not a holiday)."""
    first = last = day
    while holiday_names(countries, first - timedelta(days=1)):
        first -= timedelta(days=1)
    while holiday_names(countries, last + timedelta(days=1)):
        last += timedelta(days=1)
    return first, last


def beside_holiday_last_year(countries: tuple[str, ...], day: date) -> tuple[str, date] | None:
    """For an ordinary day right before a holiday (its eve: people leave) or right after one
    (people come back): (what it is, in words; last year's day in the same place), if last
    year's was an ordinary day too. None for any other day."""
    if holiday_names(countries, day):
        return None
    for step, words in ((1, "eve of"), (-1, "day after")):
        beside = day + timedelta(days=step)
        names = holiday_names(countries, beside)
        if not names:
            continue
        then = same_holiday_last_year(countries, names[0], beside)
        if then is None:
            continue
        first, last = holiday_block(countries, then)
        counterpart = first - timedelta(days=1) if step == 1 else last + timedelta(days=1)
        if not holiday_names(countries, counterpart):
            return f"{words} {names[0]}", counterpart
    return None


def is_holiday(countries: tuple[str, ...], day: date) -> bool:
    return bool(holiday_names(countries, day))
