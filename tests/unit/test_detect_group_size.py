"""A nationality alarm needs a change that matters: large in crossings and in share of the
day, not only statistically unlikely (issue 17, item 4). Judged through ``crossings
backtest`` on a daily file with groups, the worker's detector."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import cli
from streams.domain.detect import DetectorConfig

START = date(2024, 1, 1)
CHANGE_FROM = 50


def _group_episodes(tmp_path: Path, mix: dict[str, float], changed: dict[str, float]) -> list[dict]:
    """Zhibek Zholy entry, 10,000 a day split by ``mix``; from day 50 for ten days the
    groups in ``changed`` carry that many times their usual count. The group episodes."""
    rng = random.Random(4)
    path = tmp_path / "series.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "direction", "group", "count"])
        for k in range(CHANGE_FROM + 20):
            for group, share in mix.items():
                factor = changed.get(group, 1.0) if CHANGE_FROM <= k < CHANGE_FROM + 10 else 1.0
                mean = 10_000 * share * factor
                count = max(round(rng.gauss(mean, 0.03 * mean + mean**0.5)), 0)
                day = (START + timedelta(days=k)).isoformat()
                writer.writerow([day, "zhibek-zholy", "entry", group, count])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return [e for e in map(json.loads, result.stdout.splitlines()) if e["cause"] == "group"]


MIX = {"UZB|labour": 0.72, "KAZ|private": 0.26, "TJK|labour": 0.02}


def test_a_small_nationality_doubling_is_not_a_group_alarm(tmp_path):
    """TJK, 2% of the post (200 a day), at x3 (+400 a day, under 4 share points): far beyond
    chance and many crossings, but a small part of this post's day."""
    assert _group_episodes(tmp_path, MIX, {"TJK|labour": 3.0}) == []


def test_a_nationality_that_moves_the_day_is_a_group_alarm(tmp_path):
    """KAZ, 26% of the post, falls to a third of its level (17 share points): a group drop."""
    episodes = _group_episodes(tmp_path, MIX, {"KAZ|private": 1 / 3})
    assert [(e["kind"], e["start"]) for e in episodes] == [
        ("drop", (START + timedelta(days=CHANGE_FROM)).isoformat())
    ]
    assert "KAZ" in episodes[0]["summary"]


def test_the_thresholds_are_settings_checked_when_made():
    config = DetectorConfig()
    assert config.group_min_excess > 0 and 0 < config.group_min_share_change < 0.5
    with pytest.raises(ValueError, match="group_min_share_change"):
        DetectorConfig(group_min_share_change=5.0)  # points, not a share
    with pytest.raises(ValueError, match="silent_max"):
        DetectorConfig(silent_max=10)
