"""Local-day bucketing, especially across Asia/Almaty's move from UTC+6 to UTC+5."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from streams.domain.local_time import day_bounds, local_day, local_day_and_hour

ALMATY = ZoneInfo("Asia/Almaty")
TASHKENT = ZoneInfo("Asia/Tashkent")
UTC = timezone.utc


def test_almaty_was_utc6_until_1_march_2024():
    # 17:30Z on 29 Feb was 23:30 local at +06: still 29 February.
    assert local_day_and_hour(datetime(2024, 2, 29, 17, 30, tzinfo=UTC), ALMATY) == (date(2024, 2, 29), 23)
    # 18:30Z: clocks had gone back to 23:00 at +05: 23:30 on 29 February again.
    assert local_day_and_hour(datetime(2024, 2, 29, 18, 30, tzinfo=UTC), ALMATY) == (date(2024, 2, 29), 23)
    # 19:00Z is midnight at +05: 1 March. With the old fixed +06 it would be 01:00.
    assert local_day_and_hour(datetime(2024, 2, 29, 19, 0, tzinfo=UTC), ALMATY) == (date(2024, 3, 1), 0)


def test_same_instant_same_day_in_almaty_and_tashkent_after_the_change():
    instant = datetime(2024, 3, 10, 19, 30, tzinfo=UTC)
    assert local_day(instant, ALMATY) == local_day(instant, TASHKENT) == date(2024, 3, 11)
    # Before the change Almaty was an hour ahead: 18:30Z was already the next day there.
    before = datetime(2024, 2, 10, 18, 30, tzinfo=UTC)
    assert local_day(before, ALMATY) == date(2024, 2, 11)
    assert local_day(before, TASHKENT) == date(2024, 2, 10)


def test_29_february_2024_in_almaty_lasts_25_hours():
    start, end = day_bounds(date(2024, 2, 29), ALMATY)
    assert end - start == timedelta(hours=25)
    start, end = day_bounds(date(2024, 3, 1), ALMATY)
    assert end - start == timedelta(hours=24)


def test_offset_in_the_event_does_not_matter_only_the_instant():
    as_utc = datetime(2024, 2, 29, 18, 59, tzinfo=UTC)
    as_plus5 = as_utc.astimezone(timezone(timedelta(hours=5)))
    as_minus3 = as_utc.astimezone(timezone(timedelta(hours=-3)))
    assert local_day(as_utc, ALMATY) == local_day(as_plus5, ALMATY) == local_day(as_minus3, ALMATY)


instants = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)


@given(instants, st.sampled_from([ALMATY, TASHKENT, ZoneInfo("Asia/Aqtobe")]))
def test_instant_lies_within_its_local_day_bounds(instant, tz):
    """Oracle: the day's [start, end) computed independently must contain the instant."""
    day = local_day(instant, tz)
    start, end = day_bounds(day, tz)
    assert start <= instant < end


@given(instants)
def test_almaty_matches_a_brute_force_offset_table(instant):
    """Oracle: the published rule (UTC+6, then UTC+5 from 2024-02-29T19:00Z... 18:00Z)."""
    change = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)
    offset = timedelta(hours=6) if instant < change else timedelta(hours=5)
    assert local_day(instant, ALMATY) == (instant + offset).date()
