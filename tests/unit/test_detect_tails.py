"""A series' own heavy tail is its weather, not an alarm (issue 17, the bar): a street
whose rainy days fall to x0.3-0.55 about three times a month raises nothing on such a day once
it has a few months of them behind it, while a lockdown (x0.1 for a week) still opens one
drop on its first day, and so does a second lockdown a few weeks after the first (one
lockdown in the history does not blind the band to the next). Judged through ``crossings
backtest`` on a daily file: the worker's detector."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

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
