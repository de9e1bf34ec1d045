"""A closure of one to three days (a storm) is one episode, and the rebound after it, the
crossings the closure held back coming through, is not a surge (issue 17, item 3).
Judged through ``crossings backtest`` on a daily file, the worker's detector."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import cli

START = date(2024, 1, 1)
CLOSED_FROM = 50


def _episodes(tmp_path: Path, factors: dict[int, float], days: int = 80) -> list[dict]:
    """Zhibek Zholy entry, ~2,000 a day; ``factors``: day -> multiple of the usual level."""
    rng = random.Random(11)
    path = tmp_path / "series.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "direction", "count"])
        for k in range(days):
            level = 2000 * factors.get(k, 1.0)
            count = round(rng.gauss(level, 0.03 * level)) if level else 0
            writer.writerow([(START + timedelta(days=k)).isoformat(), "zhibek-zholy", "entry", count])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _day(k: int) -> str:
    return (START + timedelta(days=k)).isoformat()


@pytest.mark.parametrize("closed_days", [1, 2, 3])
def test_a_short_closure_is_one_episode_and_its_rebound_no_surge(tmp_path, closed_days):
    reopen = CLOSED_FROM + closed_days
    factors = {CLOSED_FROM + k: 0.0 for k in range(closed_days)}
    factors |= {reopen: 1.6, reopen + 1: 1.25}  # the held-back crossings come through
    episodes = [e for e in _episodes(tmp_path, factors) if e["start"] >= _day(CLOSED_FROM - 7)]
    assert [(e["kind"], e["start"]) for e in episodes] == [("drop", _day(CLOSED_FROM))], episodes
    assert episodes[0]["end"] is not None and episodes[0]["end"] <= _day(reopen + 1)


def test_a_surge_beyond_what_the_closure_held_back_is_still_a_surge(tmp_path):
    """One day closed (about 2,000 held back), then three days at x3 (12,000 more): a surge."""
    factors = {CLOSED_FROM: 0.0, CLOSED_FROM + 1: 3.0, CLOSED_FROM + 2: 3.0, CLOSED_FROM + 3: 3.0}
    episodes = [e for e in _episodes(tmp_path, factors) if e["start"] >= _day(CLOSED_FROM - 7)]
    assert [e["kind"] for e in episodes] == ["drop", "surge"], episodes
