"""Issue 17, item 9: what makes ``crossings backtest`` fast changes no result.

The caches (``DayHistory.memo``, the weekdays of ``ShapeCache``) against the same values
worked out afresh, and the backtest in several processes against one."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.backtest import Columns, backtest, build_series, parallel, render
from streams.cli.main import cli
from streams.domain.detect.baseline import (
    BaselineConfig,
    ShapeCache,
    _Day,
    _year_ago_days,
    _year_ago_values,
    share_spread,
)
from streams.domain.detect.history import ALARM, CLOSED, KEEP_DAYS, NORMAL, DayHistory
from streams.domain.registry import load_registry

START = date(2023, 1, 2)
COUNTRIES = ("FI", "RU")

# -- DayHistory.memo: _year_ago_days against a brute-force oracle ------------------------

#: (day, total or None for a query, flag): recording days (a closure or a level shift
#: re-flags recent ones; a day far ahead moves the kept window) and asking for last year's
#: week of a day a year later, the days each reads overlapping the days recorded.
steps = st.lists(
    st.tuples(
        st.integers(0, 60) | st.integers(100, 250),
        st.none() | st.integers(0, 5000),
        st.sampled_from((NORMAL, ALARM, CLOSED)),
    ),
    min_size=1,
    max_size=200,
)
RECORDED = START + timedelta(days=300)
ASKED = RECORDED + timedelta(days=364)


@settings(max_examples=100, deadline=None)
@given(steps)
def test_year_ago_days_memo_equals_a_fresh_look_after_any_records(script):
    history = DayHistory()
    for k in range(KEEP_DAYS):  # a year and more of days before the script's
        history.record(START + timedelta(days=k), 1000 + k % 7 * 100, NORMAL)
    asked: list[date] = []
    for index, total, flag in script:
        if total is None:  # a query: the memo's answer (once cached, then from the cache) is a fresh one
            # (a day from 100 on: one whose last year the kept window's start moves through)
            asked.append(ASKED + timedelta(days=index if index < 100 else index - 300))
            for d in asked[-30:]:
                assert _year_ago_days(history, d, COUNTRIES) == _year_ago_values(history, d, COUNTRIES)
        else:
            history.record(RECORDED + timedelta(days=index), total, flag)
    for d in asked:
        assert _year_ago_days(history, d, COUNTRIES) == _year_ago_values(history, d, COUNTRIES)


def test_the_memo_keeps_only_days_it_can_still_read():
    history = DayHistory()
    for k in range(3 * KEEP_DAYS):
        day = START + timedelta(days=k)
        history.record(day, 1000 + k % 7, NORMAL)
        _year_ago_days(history, day, COUNTRIES)
    ((back, values),) = history._memos.values()
    assert len(values) <= KEEP_DAYS - back[-1] + 1
    # No cache in the state.
    assert history.state().keys() == {"from", "totals", "flags", "shifts", "expected"}


# -- share_spread: each weekday's figures kept, the same floats ---------------------------


def _days(rng: random.Random, first: date, count: int) -> list[_Day]:
    days = []
    for k in range(count):
        day = first + timedelta(days=k)
        hourly = [rng.randint(0, 400) for _ in range(24)]
        profile = {"total": sum(hourly), "hourly": hourly, "groups": {"UZB|labour": sum(hourly)}}
        days.append(_Day(day, sum(hourly), profile, NORMAL))
    return days[::-1]  # newest first, as build_baseline passes them


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 28))
def test_share_spread_with_the_cache_is_share_spread_without(seed, averaged):
    rng = random.Random(seed)
    config = BaselineConfig()
    every = _days(rng, START, 90)[::-1]  # oldest first
    cache = ShapeCache()
    for end in range(7, 90):  # a month's window sliding a day at a time, as day after day
        window = every[max(0, end - 28) : end][::-1]
        assert share_spread(window, config, averaged, cache) == share_spread(window, config, averaged)
    assert cache.weekdays and len(cache.weekdays) <= ShapeCache.WEEKDAYS_KEPT
    shapes = [shape.done_by_hour for shape in cache.values()]
    assert all(any(d is s for s in shapes) for w in cache.weekdays.values() for d in w.done)
    assert cache.hours and len(cache.hours) <= ShapeCache.WEEKDAYS_KEPT


# -- the backtest in several processes -----------------------------------------------------


def _paired_rows(tmp_path: Path) -> Path:
    """Two posts with both directions (paired units) and one series alone, with closures."""
    rng = random.Random(9)
    rows = []
    for post, level in (("alpha", 3000), ("beta", 800)):
        for direction in ("entry", "exit"):
            for k in range(400):
                day = START + timedelta(days=k)
                shut = (post == "alpha" and 300 <= k < 306) or (post == "beta" and k in (200, 201))
                count = 0 if shut else round(rng.gauss(level * (1.3 if k % 7 == 4 else 1.0), level * 0.05))
                rows.append([day.isoformat(), post, direction, count])
    for k in range(400):
        rows.append([(START + timedelta(days=k)).isoformat(), "gamma", "entry", 500 if k != 250 else 2500])
    path = tmp_path / "posts.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "checkpoint", "direction", "count"])
        writer.writerows(rows)
    return path


def _data(path: Path):
    from streams.backtest import read_rows

    rows, time_column = read_rows(path, Columns())
    return build_series(rows, time_column, Columns(), load_registry(), default_checkpoint=path.stem)


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_the_backtest_in_two_processes_is_the_backtest_in_one(tmp_path, monkeypatch, fork):
    monkeypatch.setattr(parallel, "_may_fork", lambda: fork)
    data = _data(_paired_rows(tmp_path))
    one = render(backtest(data), "json")
    counted = []
    two = render(backtest(data, jobs=2, progress=counted.append), "json")
    assert one == two
    assert {json.loads(line)["checkpoint"] for line in one.splitlines()} == {"alpha", "beta", "gamma"}
    assert sum(counted) > 2 * 400  # every evaluation reported, each unit once done


def test_cli_jobs_prints_the_same_lines(tmp_path):
    path = _paired_rows(tmp_path)
    out = {}
    for jobs in ("1", "3"):
        result = CliRunner().invoke(
            cli, ["backtest", str(path), "--format", "json", "--no-progress", "--jobs", jobs]
        )
        assert result.exit_code == 0, result.output
        out[jobs] = result.output
    assert out["1"] == out["3"] and out["1"].count("\n") >= 3
