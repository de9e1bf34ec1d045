"""A series' own heavy tail is its weather, not an alarm (issue 17, the bar): a street
whose rainy days fall to x0.3-0.55 about three times a month raises nothing on such a day once
it has a few months of them behind it, while a lockdown (x0.1 for a week) still opens one
drop on its first day, and so does a second lockdown a few weeks after the first (one
lockdown in the history does not blind the band to the next). Judged through ``crossings
backtest`` on a daily file: the worker's detector."""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.backtest import Columns, backtest, build_series
from streams.cli.main import cli
from streams.domain.detect.history import ALARM, CLOSED, NORMAL, DayHistory
from streams.domain.detect.tails import TailConfig, occasions, tail_band

START = date(2023, 1, 2)
DAYS = 560
#: The lockdowns (first day, days), in the file's second year.
LOCKDOWNS = ((470, 7), (505, 5))
#: Ordinary operation judged: the last five months but the lockdowns and two weeks after each.
JUDGED = range(DAYS - 150, DAYS)


def _factors(seed: int) -> tuple[dict[int, float], list[int]]:
    """Day -> multiple of the usual level: rainy days (about 3 a month, x0.3-0.55) and the
    lockdowns (x0.1); the rainy days' indices."""
    rng = random.Random(seed)
    factors: dict[int, float] = {}
    for k in range(DAYS):
        if rng.random() < 3 / 30:
            factors[k] = rng.uniform(0.3, 0.55)
    for first, days in LOCKDOWNS:
        for k in range(first, first + days):
            factors[k] = 0.1
    busy = {k for first, days in LOCKDOWNS for k in range(first - 1, first + days + 14)}
    rainy = [k for k, f in factors.items() if f > 0.1 and k in JUDGED and k not in busy]
    return factors, rainy


def _episodes(tmp_path: Path, factors: dict[int, float], seed: int) -> list[dict]:
    """A pedestrian street, ~5,000 a day, weekends at x0.7, 4 % day-to-day noise."""
    rng = random.Random(seed)
    path = tmp_path / "street.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "direction", "count"])
        for k in range(DAYS):
            day = START + timedelta(days=k)
            level = 5000 * (0.7 if day.weekday() >= 5 else 1.0) * factors.get(k, 1.0)
            writer.writerow([day.isoformat(), "zhibek-zholy", "entry", round(rng.gauss(level, 0.04 * level))])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _day(k: int) -> str:
    return (START + timedelta(days=k)).isoformat()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weather_like_dips_raise_nothing_and_lockdowns_still_do(tmp_path, seed):
    factors, rainy = _factors(seed)
    assert len(rainy) >= 3  # the judged months do have their rainy days
    episodes = _episodes(tmp_path, factors, seed)
    on_rainy_days = [e for e in episodes if e["start"][:10] in {_day(k) for k in rainy}]
    assert on_rainy_days == [], on_rainy_days
    for first, days in LOCKDOWNS:
        during = [e for e in episodes if _day(first - 1) <= e["start"][:10] <= _day(first + days)]
        assert [(e["kind"], e["start"][:10]) for e in during] == [("drop", _day(first))], during


def _history(values: list[tuple[int, int, str]]) -> DayHistory:
    history = DayHistory()
    for k, (total, expected, flag) in enumerate(values):
        day = START + timedelta(days=k)
        history.record(day, total, flag)
        history.expect(day, expected)
    return history


def test_a_run_of_days_on_one_side_is_one_occasion_and_a_closure_none():
    """Seven weeks of lockdown are one occasion, not 49 of the year's tail; the closure's
    zeros are left out; an ordinary day is one each."""
    days = [(1000, 1000, NORMAL)] * 100 + [(100, 1000, ALARM)] * 49 + [(0, 1000, CLOSED)] * 10
    days += [(1000, 1000, NORMAL)] * 100
    found = occasions(_history(days), START + timedelta(days=len(days)), TailConfig())
    assert len(found) == 201
    assert sum(v < -2 for v in found) == 1


def test_the_band_reaches_past_the_series_own_rainy_days():
    """A tenth of the days at x0.5: the band's low end is below x0.5 (they are the series'
    weather), a lockdown's x0.1 beyond it; without enough history, no band."""
    rng = random.Random(5)
    days = [(500 if rng.random() < 0.1 else round(rng.gauss(1000, 30)), 1000, NORMAL) for _ in range(300)]
    day = START + timedelta(days=300)
    band = tail_band(_history(days), day, TailConfig())
    assert band is not None
    assert 0.1 < band.low < 0.5
    assert band.beyond("drop", 0.1) and not band.beyond("drop", 0.45)
    assert tail_band(_history(days[:40]), START + timedelta(days=40), TailConfig()) is None


def test_a_tail_config_that_cannot_work_fails_fast():
    with pytest.raises(ValueError, match="quantile"):
        TailConfig(quantile=0.6)
    with pytest.raises(ValueError, match="days_a_year"):
        TailConfig(days_a_year=20)


def _hourly_episodes(quiet_first_hour: set[int], dropped: int, days: int = 150) -> list:
    """A post of ~24,000 a day, hourly, the usual day's shape, 3 % day-to-day noise; on the
    days in ``quiet_first_hour`` the first hour (00-01) carries x0.4 (the rest of the day as
    usual); day ``dropped`` at x0.3 all day."""
    rng = random.Random(9)
    shape = [0.3, 0.2, 0.2, 0.3, 0.6, 1.0, 1.4, 1.6, 1.5, 1.4, 1.3, 1.3]
    shape += [1.3, 1.3, 1.3, 1.4, 1.5, 1.5, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4]
    rows = []
    for k in range(days):
        day = START + timedelta(days=k)
        level = 1000 * rng.gauss(1.0, 0.03) * (0.3 if k == dropped else 1.0)
        for hour, weight in enumerate(shape):
            mean = level * weight * (0.4 if hour == 0 and k in quiet_first_hour else 1.0)
            count = max(round(rng.gauss(mean, math.sqrt(mean))), 0)
            rows.append({"time": f"{day.isoformat()}T{hour:02d}:00:00", "checkpoint": "post", "count": count})
    data = build_series(rows, "time", Columns(direction=None, group=None), {}, tz="UTC")
    return backtest(data)


def test_a_quiet_first_hour_the_series_often_has_is_no_drop_and_a_day_that_falls_still_is():
    """One night in five the first hour is x0.4 and the day is ordinary (the nights after
    the holidays in NAB's taxis): the day so far at 01:00 is the day times its shape, and
    the shape's own tail (a month of the series' first hours) says that is its weather. A
    day at x0.3 all day still opens one drop that day."""
    rng = random.Random(4)
    quiet = {k for k in range(150) if rng.random() < 0.2}
    dropped = 140
    episodes = _hourly_episodes(quiet - {dropped}, dropped)
    late = [e for e in episodes if e.start >= _day(90)]
    assert [(e.kind, e.start[:10]) for e in late] == [("drop", _day(dropped))], [
        (e.kind, e.start, e.ratio) for e in late
    ]
