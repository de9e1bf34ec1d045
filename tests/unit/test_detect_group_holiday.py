"""On a public holiday the mix of nationalities is the holiday's (mainland visitors on a
Chinese holiday in Hong Kong: 74 of its 98 group alarms in ordinary operation fell on a
holiday, issue 17), not the ordinary days' it was learned from: a group move that is an
alarm on an ordinary day is judged with a wide band on a holiday. Through ``crossings
backtest`` on a daily file with groups, the worker's detector."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

from click.testing import CliRunner

from streams.cli.main import cli

START = date(2024, 1, 1)
WOMENS_DAY = 67  # 8 March 2024, a holiday in Kazakhstan and Uzbekistan
ORDINARY = 74  # Friday 15 March 2024
MIX = {"UZB|labour": 0.72, "KAZ|private": 0.26, "TJK|labour": 0.02}


def _group_episodes(tmp_path: Path, moved: int, factor: float = 2.2) -> list[dict]:
    """Zhibek Zholy entry, 10,000 a day; from day ``moved`` on KAZ carries ``factor`` times
    its share for a day (x2.2: the day as a whole x1.31, within its band), or for good if
    below 1 (a crackdown)."""
    rng = random.Random(4)
    path = tmp_path / "series.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "direction", "group", "count"])
        for k in range(90):
            for group, share in MIX.items():
                moves = k == moved or (factor < 1 and k > moved)
                mean = 10_000 * share * (factor if moves and group == "KAZ|private" else 1.0)
                count = max(round(rng.gauss(mean, 0.03 * mean + mean**0.5)), 0)
                day = (START + timedelta(days=k)).isoformat()
                writer.writerow([day, "zhibek-zholy", "entry", group, count])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return [e for e in map(json.loads, result.stdout.splitlines()) if e["start"] >= "2024-02-15"]


def test_a_group_move_on_an_ordinary_day_is_a_group_alarm(tmp_path):
    episodes = _group_episodes(tmp_path, ORDINARY)
    assert [(e["cause"], e["kind"], e["start"]) for e in episodes] == [
        ("group", "surge", (START + timedelta(days=ORDINARY)).isoformat())
    ]


def test_the_same_move_on_a_holiday_is_the_holidays_mix(tmp_path):
    assert _group_episodes(tmp_path, WOMENS_DAY) == []


def test_a_group_that_falls_away_on_a_holiday_is_still_a_group_alarm(tmp_path):
    """A crackdown that starts on a holiday (KAZ to x0.3 from Women's Day on): its day."""
    episodes = _group_episodes(tmp_path, WOMENS_DAY, 0.3)
    assert [(e["cause"], e["kind"], e["start"]) for e in episodes][:1] == [
        ("group", "drop", (START + timedelta(days=WOMENS_DAY)).isoformat())
    ]
