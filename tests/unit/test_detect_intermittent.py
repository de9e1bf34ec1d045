"""An intermittent series (a cruise terminal: thousands on a ship day, nothing between
ships, no weekday rhythm) raises no episode for ordinary ship days; it raises one when
the pattern changes: the ships stop, or come twice as often (issue 17, HK's Kai Tak).
Judged through ``crossings backtest`` on a daily file, the worker's detector."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hourly_detector import hourly_transitions

from streams.cli.main import cli
from streams.domain.detect.config import DetectorConfig
from streams.domain.detect.history import NORMAL, DayHistory
from streams.domain.detect.intermittent import intermittent_pattern

START = date(2024, 1, 1)
DAYS = 420
#: Scored from here: the first half year is the hurdle model's to learn.
SCORED = 200
CHANGE = 300


def _ship_days(seed: int, chance: dict[int, float]) -> list[int]:
    """A day's crossings: a ship with ``chance`` (day -> chance from that day on), of
    1,000-4,000 people; otherwise nothing."""
    rng = random.Random(seed)
    out, p = [], 0.25
    for k in range(DAYS):
        p = chance.get(k, p)
        out.append(round(rng.uniform(1000, 4000)) if rng.random() < p else 0)
    return out


def _episodes(tmp_path: Path, counts: list[int]) -> list[dict]:
    path = tmp_path / "series.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "direction", "count"])
        for k, count in enumerate(counts):
            writer.writerow([(START + timedelta(days=k)).isoformat(), "zhibek-zholy", "entry", count])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _day(k: int) -> str:
    return (START + timedelta(days=k)).isoformat()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ordinary_ship_days_raise_no_episode(tmp_path, seed):
    episodes = [e for e in _episodes(tmp_path, _ship_days(seed, {})) if e["start"] >= _day(SCORED)]
    assert episodes == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ships_that_stop_raise_one_drop(tmp_path, seed):
    episodes = [e for e in _episodes(tmp_path, _ship_days(seed, {CHANGE: 0.0})) if e["start"] >= _day(SCORED)]
    assert [e["kind"] for e in episodes] == ["drop"], episodes
    assert _day(CHANGE) <= episodes[0]["start"] <= _day(CHANGE + 60)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ships_twice_as_often_raise_one_surge(tmp_path, seed):
    episodes = [e for e in _episodes(tmp_path, _ship_days(seed, {CHANGE: 0.5})) if e["start"] >= _day(SCORED)]
    assert [e["kind"] for e in episodes] == ["surge"], episodes
    assert _day(CHANGE) <= episodes[0]["start"] <= _day(CHANGE + 60)


def test_a_post_closed_every_sunday_keeps_its_weekly_model():
    """Silent days that keep their weekday are a weekly rhythm, not an intermittent series."""
    history = DayHistory()
    for k in range(200):
        day = START + timedelta(days=k)
        history.record(day, 0 if day.weekday() == 6 else 2000, NORMAL)
    assert intermittent_pattern(history, START + timedelta(days=200), DetectorConfig()) is None
    ships = DayHistory()
    counts = _ship_days(1, {})
    for k in range(200):
        ships.record(START + timedelta(days=k), counts[k], NORMAL)
    pattern = intermittent_pattern(ships, START + timedelta(days=200), DetectorConfig())
    assert pattern is not None and 0.15 < pattern.chance < 0.35


def _hourly_run(counts: list[int], restart: bool) -> list[tuple]:
    return [
        (t.status, t.opened, t.episode.kind, t.assessment.cause, t.as_of)
        for t in hourly_transitions("zhibek-zholy", counts, START, restart=restart, group=("CHN", "tourism"))
    ]


def test_a_restart_at_every_hour_changes_nothing_for_an_intermittent_series():
    """The hurdle model is read from the saved day totals alone: a worker restarted before
    every evaluation judges ship days, and the ships stopping, as one never restarted."""
    counts = _ship_days(1, {CHANGE: 0.0})[: CHANGE + 40]
    calm = _hourly_run(counts, restart=False)
    stopped = START + timedelta(days=CHANGE)
    assert [kind for _, opened, kind, _, at in calm if opened and at.date() >= stopped] == ["drop"]
    assert calm == _hourly_run(counts, restart=True)
