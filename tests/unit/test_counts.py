"""Daily profiles against a brute-force recount of the same events."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from streams.domain.counts import count_event, group_counts, parse_profile_key, profile_key
from streams.domain.local_time import local_day_and_hour

ALMATY = ZoneInfo("Asia/Almaty")

crossing = st.tuples(
    st.datetimes(
        min_value=datetime(2024, 2, 27), max_value=datetime(2024, 3, 3), timezones=st.just(timezone.utc)
    ),
    st.sampled_from(["entry", "exit"]),
    st.sampled_from(["UZB", "TJK", "KAZ"]),
    st.sampled_from(["labour", "transit", "private"]),
)


@given(st.lists(crossing, max_size=300))
def test_profiles_equal_a_brute_force_recount(crossings):
    profiles: dict[str, dict] = {}
    for occurred_at, direction, nationality, purpose in crossings:
        day, hour = local_day_and_hour(occurred_at, ALMATY)
        key = profile_key("zhibek-zholy", direction, day)
        profiles[key] = count_event(profiles.get(key), hour, nationality, purpose)

    # Oracle: shift by the offset in force (UTC+6 before 2024-02-29T18:00Z, then UTC+5).
    change = datetime(2024, 2, 29, 18, tzinfo=timezone.utc)
    expected_totals: Counter = Counter()
    expected_groups: Counter = Counter()
    expected_hours: Counter = Counter()
    for occurred_at, direction, nationality, purpose in crossings:
        local = occurred_at + (timedelta(hours=6) if occurred_at < change else timedelta(hours=5))
        expected_totals[(direction, local.date())] += 1
        expected_groups[(direction, local.date(), nationality, purpose)] += 1
        expected_hours[(direction, local.date(), local.hour)] += 1

    totals, groups, hours = Counter(), Counter(), Counter()
    for key, profile in profiles.items():
        checkpoint_id, direction, day = parse_profile_key(key)
        assert checkpoint_id == "zhibek-zholy"
        totals[(direction, day)] += profile["total"]
        assert sum(profile["hourly"]) == profile["total"]
        for nationality, purpose, count in group_counts(profile):
            groups[(direction, day, nationality, purpose)] += count
        for hour, count in enumerate(profile["hourly"]):
            if count:
                hours[(direction, day, hour)] += count
    assert totals == expected_totals
    assert groups == expected_groups
    assert hours == expected_hours


def test_profile_key_round_trips():
    key = profile_key("nur-zholy", "exit", date(2024, 3, 1))
    assert parse_profile_key(key) == ("nur-zholy", "exit", date(2024, 3, 1))
