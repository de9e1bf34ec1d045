"""Last year's lasting drop (a lockdown of weeks, a sensor that undercounted for a month)
is not the season: this year's same weeks are not expected at a third for it, so they
raise no surges and a drop in them is still found (issue 17; Auckland, August 2021 after
August 2020). A week of last year between holidays (Christmas to New Year), thinned by
the holidays to two or three ordinary days, still gives its season."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import cli
from streams.domain.detect.baseline import build_baseline
from streams.domain.detect.history import ALARM, NORMAL, DayHistory

START = date(2023, 1, 2)
DAYS = 600
#: Year one's lockdown: its first day (index) and days, at x0.1.
LOCKDOWN = (200, 21)
#: Year two: the same weeks a year on (364 days: the same weekdays).
SAME_WEEKS = range(LOCKDOWN[0] + 364 - 7, LOCKDOWN[0] + 364 + LOCKDOWN[1] + 7)


def _episodes(tmp_path: Path, factors: dict[int, float], seed: int) -> list[dict]:
    """A street, ~5,000 a day, weekends at x0.7, 4 % day-to-day noise, through ``crossings
    backtest`` (the worker's detector)."""
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


def _lockdown() -> dict[int, float]:
    first, days = LOCKDOWN
    return dict.fromkeys(range(first, first + days), 0.1)


@pytest.mark.parametrize("seed", [1, 2])
def test_last_years_three_week_lockdown_raises_no_surge_in_the_same_weeks(tmp_path, seed):
    episodes = _episodes(tmp_path, _lockdown(), seed)
    first, days = LOCKDOWN
    during = [e for e in episodes if _day(first - 1) <= e["start"][:10] <= _day(first + days)]
    assert [(e["kind"], e["start"][:10]) for e in during][:1] == [("drop", _day(first))], during
    same_weeks = [e for e in episodes if _day(SAME_WEEKS[0]) <= e["start"][:10] <= _day(SAME_WEEKS[-1])]
    assert same_weeks == [], same_weeks


@pytest.mark.parametrize("seed", [1, 2])
def test_a_lockdown_in_the_same_weeks_a_year_on_is_found_on_its_first_day(tmp_path, seed):
    again = LOCKDOWN[0] + 364
    factors = _lockdown() | dict.fromkeys(range(again, again + 7), 0.25)
    episodes = _episodes(tmp_path, factors, seed)
    around = [e for e in episodes if _day(SAME_WEEKS[0]) <= e["start"][:10] <= _day(again + 7)]
    assert [(e["kind"], e["start"][:10]) for e in around] == [("drop", _day(again))], around


def _history(
    totals: dict[date, int], flags: dict[date, str], expected: dict[date, int], day: date
) -> DayHistory:
    history = DayHistory()
    d = date(2023, 1, 1)
    while d < day:
        history.record(d, totals.get(d, 1000), flags.get(d, NORMAL))
        history.expect(d, expected.get(d, 1000))
        d += timedelta(days=1)
    return history


def _expected(history: DayHistory, day: date, countries: tuple[str, ...] = ()) -> float:
    baseline = build_baseline(day, lambda _: None, history=history, countries=countries)
    assert baseline is not None
    return baseline.expected_day


def test_last_years_month_long_drop_that_alarmed_is_not_the_season():
    """Last year, 13 June to 12 July at x0.3, each day an alarm day below its expectation:
    this year's 20 June is expected at the level of May and early June."""
    drop = {date(2023, 6, 13) + timedelta(days=k): 300 for k in range(30)}
    history = _history(drop, dict.fromkeys(drop, ALARM), {}, date(2024, 6, 20))
    assert 950 <= _expected(history, date(2024, 6, 20)) <= 1050


def test_last_years_week_between_christmas_and_new_year_is_still_expected():
    """Last year's days between Boxing Day and New Year at x0.5 (they alarmed: nothing said
    so then): this year's are expected low too, though holidays and their eves leave two
    or three ordinary days of last year's week (ported from branch detect-auckland)."""
    lull = {date(2023, 12, 27) + timedelta(days=k): 500 for k in range(5)}
    history = _history(lull, dict.fromkeys(lull, ALARM), {}, date(2024, 12, 30))
    assert _expected(history, date(2024, 12, 30), ("NZ",)) <= 700
