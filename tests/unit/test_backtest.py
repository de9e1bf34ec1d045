"""``crossings backtest``: long-form files in, the worker's detector's episodes out."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from streams.cli.main import cli

START = date(2024, 1, 1)


def _daily_rows(days: int = 70, closed: tuple[int, int] | None = (56, 63)) -> list[dict]:
    rng = random.Random(3)
    rows = []
    for i in range(days):
        day = START + timedelta(days=i)
        level = 2000 * (0.8 if day.weekday() == 6 else 1.0)
        shut = closed is not None and closed[0] <= i < closed[1]
        for group, share in (("UZB|labour", 0.8), ("KAZ|private", 0.2)):
            count = 0 if shut else round(rng.gauss(level * share, (level * share) ** 0.5))
            rows.append(
                {
                    "date": day.isoformat(),
                    "checkpoint": "zhibek-zholy",
                    "direction": "entry",
                    "group": group,
                    "count": count,
                }
            )
    return rows


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_daily_csv_needs_no_flags_and_json_lines_carry_the_fields(tmp_path):
    path = _write_csv(tmp_path / "series.csv", _daily_rows())
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    episodes = [json.loads(line) for line in result.output.splitlines()]
    drops = [e for e in episodes if e["kind"] == "drop"]
    assert drops, episodes
    first = drops[0]
    assert first["checkpoint"] == "zhibek-zholy" and first["direction"] == "entry"
    assert first["start"] == (START + timedelta(days=56)).isoformat()
    assert first["observed"] == 0 and first["expected"] > 1000
    assert first["score"] < 0
    assert {"checkpoint", "direction", "kind", "start", "observed", "expected", "score"} <= set(first)


def test_renamed_columns_parquet_and_labels(tmp_path):
    rows = [
        {"day": r["date"], "post": r["checkpoint"], "dir": r["direction"], "n": r["count"]}
        for r in _daily_rows()
    ]
    path = tmp_path / "series.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    labels = _write_csv(
        tmp_path / "labels.csv",
        [{"date": (START + timedelta(days=56)).isoformat(), "checkpoint": "zhibek-zholy", "kind": "drop"}],
    )
    args = [
        "backtest",
        str(path),
        "--time",
        "day",
        "--checkpoint",
        "post",
        "--direction",
        "dir",
        "--count",
        "n",
        "--format",
        "csv",
        "--labels",
        str(labels),
        "--no-progress",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("checkpoint,direction,kind")
    assert "recall: 1/1 labels found" in result.output
    assert "median delay: 0.0 h" in result.output


def test_a_missing_column_is_named(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", [{"when": "2024-01-01", "count": 3}])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--no-progress"])
    assert result.exit_code != 0
    assert "'date'" in result.output and "--time" in result.output


def _post_rows(
    silent: dict[str, set[int]], first_day: dict[str, int] | None = None, days: int = 80
) -> list[dict]:
    """Korday per day, entry and exit ~1,000 each; ``silent``: the days a direction counts
    zero; ``first_day``: the first day a direction has rows at all."""
    rng = random.Random(1)
    rows = []
    for k in range(days):
        for direction in ("entry", "exit"):
            if k < (first_day or {}).get(direction, 0):
                continue
            count = 0 if k in silent.get(direction, set()) else round(rng.gauss(1000, 40))
            day = (START + timedelta(days=k)).isoformat()
            rows.append({"date": day, "checkpoint": "korday", "direction": direction, "count": count})
    return rows


def _episodes(tmp_path: Path, rows: list[dict]) -> list[dict]:
    path = _write_csv(tmp_path / "post.csv", rows)
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_a_daily_file_judges_a_posts_directions_with_each_others_counts_of_the_day(tmp_path):
    """Entries at zero for two days while exits carry on: the entry's own drop (the post
    view sees the exits of those very days, as the worker would); both at zero: one
    post-level episode. Either way it ends when traffic is back."""
    silent_days = {60, 61}
    one = [e for e in _episodes(tmp_path, _post_rows({"entry": silent_days})) if e["kind"] == "drop"]
    assert [(e["direction"], e["start"]) for e in one] == [
        ("entry", (START + timedelta(days=60)).isoformat())
    ]
    both = _episodes(tmp_path, _post_rows({"entry": silent_days, "exit": silent_days}))
    drops = [e for e in both if e["kind"] == "drop"]
    assert [(e["direction"], e["start"]) for e in drops] == [
        ("both", (START + timedelta(days=60)).isoformat())
    ]
    assert all(e["end"] for e in one + drops)


def test_a_direction_whose_rows_start_later_does_not_hide_the_others_outage(tmp_path):
    """Exit rows start on day 50; entries stop on days 30-33 and come back: the entry's own
    drop (an exit with no history is not a direction that fell silent with it), and in a
    daily file the closure ends with a reopening when the completed day had traffic."""
    rows = _post_rows({"entry": {30, 31, 32, 33}}, first_day={"exit": 50})
    episodes = _episodes(tmp_path, rows)
    drops = [e for e in episodes if e["kind"] == "drop" and e["direction"] == "entry"]
    assert drops and drops[0]["start"] == (START + timedelta(days=30)).isoformat()
    assert drops[0]["end"] is not None
    assert not [e for e in episodes if e["direction"] == "both"]


def test_the_profile_lookup_follows_the_clock_from_tick_to_tick():
    """The lookup works out the clock's local day and hour once per tick (issue 17, item 9):
    when the clock moves, today, the hour and the retention edge move with it."""
    from datetime import UTC, datetime

    from streams.backtest import Columns, build_series
    from streams.backtest.run import RETENTION_DAYS, _lookup

    rows = [
        {"time": f"2024-03-{d:02d}T{h:02d}:00", "checkpoint": "p", "direction": "entry", "count": 10}
        for d in range(1, 31)
        for h in range(24)
    ]
    series = next(iter(build_series(rows, "time", Columns(group=None), {}, tz="Asia/Almaty").series.values()))
    clock = [datetime(2024, 3, 10, 3, tzinfo=UTC)]  # 08:00 in Almaty (UTC+5 then)
    lookup = _lookup(series, clock)
    assert lookup(date(2024, 3, 10))["total"] == 80  # hours 0-7
    assert lookup(date(2024, 3, 11)) is None
    assert lookup(date(2024, 3, 9))["total"] == 240
    clock[0] = datetime(2024, 3, 11, 0, tzinfo=UTC)  # 05:00 on the 11th
    assert lookup(date(2024, 3, 11))["total"] == 50
    assert lookup(date(2024, 3, 10))["total"] == 240  # yesterday, now complete
    clock[0] = datetime(2024, 3, 29, 12, tzinfo=UTC)
    oldest = date(2024, 3, 29) - timedelta(days=RETENTION_DAYS)
    assert lookup(oldest + timedelta(days=30)) is not None
    try:
        lookup(oldest - timedelta(days=1))
    except AssertionError as error:
        assert "retention" in str(error)
    else:
        raise AssertionError("a read past the retention was allowed")
