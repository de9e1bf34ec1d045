"""The textbook reference detectors of load_tests/peers.py (issue 17, item 5): hand-computed
cases, and each rule against a brute-force oracle written straight from its definition."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from load_tests import peers
from streams.backtest import Columns, build_series


def test_c1_uses_the_seven_days_before_and_three_sd():
    # mean 100, sample sd sqrt(3600 / 6) = 24.49: 174 is 3.02 sd above, 173 is 2.98
    base = [100, 130, 70, 100, 130, 70, 100]
    assert peers.c1([*base, 174])[-1] == 1
    assert peers.c1([*base, 173])[-1] == 0
    assert peers.c1([*base, 26])[-1] == -1  # 3.02 sd below
    assert peers.c1(base) == [0] * 7  # no alarm before the baseline is complete


def test_the_minimum_sd_is_the_poisson_sd_of_the_mean():
    # seven equal days: sd 0, guarded to sqrt(100) = 10, so 131 alarms and 130 does not
    assert peers.c1([100] * 7 + [131])[-1] == 1
    assert peers.c1([100] * 7 + [130])[-1] == 0
    # a closed post (all zeros): the guard is 1, and a reopening alarms
    assert peers.c1([0] * 7 + [5000])[-1] == 1


def test_c2_skips_the_two_days_before_so_a_lasting_surge_keeps_alarming():
    values = [100] * 9 + [300, 300, 300]
    # C1's baseline takes the surge in at once: day 10 (mean 128.6, sd 75.6) scores 2.27
    assert peers.c1(values) == [0] * 9 + [1, 0, 0]
    # C2's is days t-9 .. t-3, still all 100 on day 11
    assert peers.c2(values) == [0] * 9 + [1, 1, 1]
    assert peers.c2(values[:9]) == [0] * 9  # day 9 is the first C2 can judge


def test_c3_sums_the_excess_over_one_of_three_days_of_c2():
    # C2 is 2.0 on days 9, 10 and 11 (baselines all 100, sd guarded to 10): no C2 alarm,
    # C3 on day 11 = 3 x (2 - 1) = 3 > 2; day 10's is 0 + 1 + 1 = 2, not above
    values = [100] * 9 + [120, 120, 120]
    assert peers.c2(values) == [0] * 12
    assert peers.c3(values) == [0] * 11 + [1]
    assert peers.c3([100] * 9 + [80, 80, 80]) == [0] * 11 + [-1]


def test_weekday_mad_needs_four_sd_and_half_off():
    week = [100, 300, 300, 300, 300, 300, 50]
    history = week * 4  # day 28 is a Monday-like 100 day
    assert peers.weekday_mad([*history, 150])[-1] == 1  # z 5 (sd guarded to 10), 50 % up
    assert peers.weekday_mad([*history, 149])[-1] == 0  # z 4.9 but 49 % up
    assert peers.weekday_mad([*history, 50])[-1] == -1
    assert peers.weekday_mad([*history, 300])[-1] == 1
    # median 150, MAD 50 -> sd 74.1: 450 is z 4.05, 440 is 3.91
    wobbly = [100, 1, 1, 1, 1, 1, 1, 200, 1, 1, 1, 1, 1, 1] * 2
    assert peers.weekday_mad([*wobbly, 450])[-1] == 1
    assert peers.weekday_mad([*wobbly, 440])[-1] == 0
    assert peers.weekday_mad(history) == [0] * 28


def test_runs_are_consecutive_days_of_one_kind():
    assert peers.runs([0, 1, 1, -1, 0, 1, 1, 0, 0, -1]) == [(1, 2, 1), (3, 3, -1), (5, 6, 1), (9, 9, -1)]


# -- a brute-force oracle: each rule from its definition, with numpy --------------------


def _guard(mean: float) -> float:
    return float(np.sqrt(max(mean, 1.0)))


def _oracle_z(values: list[int], t: int, lag: int) -> float | None:
    if t - lag - 6 < 0:
        return None
    window = np.array(values[t - lag - 6 : t - lag + 1], dtype=float)
    assert len(window) == 7
    return (values[t] - window.mean()) / max(window.std(ddof=1), _guard(window.mean()))


def _oracle(values: list[int], name: str) -> list[int]:
    out = []
    for t in range(len(values)):
        sign = 0
        if name in ("EARS C1", "EARS C2"):
            z = _oracle_z(values, t, 1 if name == "EARS C1" else 3)
            if z is not None:
                sign = int(z > 3) - int(z < -3)
        elif name == "EARS C3":
            zs = [_oracle_z(values, i, 3) if i >= 0 else None for i in (t - 2, t - 1, t)]
            if all(z is not None for z in zs):
                up = sum(max(0.0, z - 1) for z in zs)  # type: ignore[operator]
                down = sum(max(0.0, -z - 1) for z in zs)  # type: ignore[operator]
                sign = 1 if up > 2 else -1 if down > 2 else 0
        elif t >= 28:
            same = np.array([values[t - 7], values[t - 14], values[t - 21], values[t - 28]], dtype=float)
            m = float(np.median(same))
            sd = max(1.4826 * float(np.median(np.abs(same - m))), _guard(m))
            z = (values[t] - m) / sd
            if abs(z) > 4 and abs(values[t] - m) >= 0.5 * m:
                sign = 1 if z > 0 else -1
        out.append(sign)
    return out


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.integers(0, 30), st.integers(0, 3000), st.sampled_from([0, 100, 1000])),
        min_size=0,
        max_size=60,
    )
)
def test_every_rule_matches_the_oracle(values):
    for name, rule in peers.PEERS.items():
        assert rule(values) == _oracle(values, name), name


def test_episodes_of_a_reopening_in_a_daily_file():
    rows = [
        {
            "date": (date(2024, 1, 1) + timedelta(days=i)).isoformat(),
            "checkpoint": "p",
            "direction": "entry",
            "count": 0 if i < 20 else 5000,
        }
        for i in range(25)
    ]
    data = build_series(rows, "date", Columns(group=None), {}, tz="Europe/Helsinki")
    found = peers.peer_episodes(data, peers.c2)
    # the reopening on 21 January alarms while the zeros are still in the baseline (t-9 ..
    # t-3): 21-23 January, one episode, dated at its day's local midnight as ours are
    assert [(r.kind, r.start, r.end) for r in found] == [("surge", "2024-01-21", "2024-01-23")]
    assert found[0].opened_at == datetime(2024, 1, 20, 22, tzinfo=UTC)


def test_an_hourly_file_is_summed_per_day_and_alarms_when_the_day_is_complete():
    start = datetime(2024, 1, 1)
    rows = [
        {"time": (start + timedelta(hours=h)).isoformat(), "count": 100 if h < 10 * 24 else 1}
        for h in range(12 * 24)
    ]
    data = build_series(rows, "time", Columns(group=None), {}, default_checkpoint="x")
    days, totals = peers.daily_totals(next(iter(data.series.values())))
    assert totals == [2400.0] * 10 + [24.0, 24.0]
    assert days[0] == date(2024, 1, 1) and len(days) == 12
    found = peers.peer_episodes(data, peers.c1)
    assert [(r.kind, r.start) for r in found] == [("drop", "2024-01-11")]
    assert found[0].opened_at == datetime(2024, 1, 12, tzinfo=UTC)
