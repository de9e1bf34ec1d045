"""Traffic where there was none: a series with no usable baseline that starts carrying
traffic raises one episode at the first evaluation that sees it, in the worker and in
``crossings backtest`` alike (issue 17, item 1), and it resolves once the new level is
learned. A post at zero every day since before the data starts that opens with 5,000 to
64,000 a day is the case from real data that no baseline could ever see."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hourly_detector import hourly_transitions
from samples import event_bytes

from streams.cli.main import cli
from streams.core.processor import PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.counts import count_event
from streams.domain.detect import CheckpointDetector
from streams.domain.event import EventDecoder
from streams.domain.registry import load_registry

REGISTRY = load_registry()
START = date(2019, 1, 1)


def _backtest(tmp_path: Path, rows: list[dict]) -> list[dict]:
    path = tmp_path / "series.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(
        cli, ["backtest", str(path), "--format", "json", "--no-progress", "--tz", "Asia/Almaty"]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _daily(counts: list[int], name: str = "reopened-post") -> list[dict]:
    return [
        {
            "date": (START + timedelta(days=k)).isoformat(),
            "checkpoint": name,
            "direction": "entry",
            "count": n,
        }
        for k, n in enumerate(counts)
    ]


def test_a_post_at_zero_for_years_that_opens_is_flagged_on_its_first_day(tmp_path):
    rng = random.Random(7)
    closed_days = 3 * 365  # longer than the detector remembers (about 400 daily totals)
    opening = [round(5000 * 1.08**week * rng.uniform(0.95, 1.05)) for week in range(30) for _ in range(7)]
    assert max(opening) < 64_000
    episodes = _backtest(tmp_path, _daily([0] * closed_days + opening))
    first_day = (START + timedelta(days=closed_days)).isoformat()
    assert episodes, "nothing flagged"
    first = episodes[0]
    assert (first["start"], first["kind"], first["cause"]) == (first_day, "surge", "new_traffic")
    assert first["observed"] == opening[0]
    # It resolves once the new level is learned (a baseline of the new days holds it).
    assert first["end"] is not None and first["end"] <= (START + timedelta(days=closed_days + 60)).isoformat()


def test_a_post_silent_longer_than_its_baseline_reaches_reopens_on_day_one(tmp_path):
    """A post open one day a week (a market day: its usual day is zero, so it is never
    "closed"), then silent for four months, longer than any baseline reaches back, then
    open every day: ``reopened`` (it carried traffic before), on its first day."""
    rng = random.Random(3)
    market = [round(rng.gauss(3000, 100)) if k % 7 == 3 else 0 for k in range(84)]
    silent = [0] * 120
    back = [round(rng.gauss(2500, 80)) for _ in range(40)]
    episodes = _backtest(tmp_path, _daily(market + silent + back))
    day_back = (START + timedelta(days=len(market) + len(silent))).isoformat()
    found = [e for e in episodes if e["start"] == day_back]
    assert [(e["kind"], e["cause"]) for e in found] == [("surge", "reopened")]


def test_a_series_whose_rows_start_with_traffic_is_not_new_traffic(tmp_path):
    """The start of the data is not evidence of a silence: no episode for traffic seen from
    the first day on."""
    rng = random.Random(5)
    episodes = _backtest(tmp_path, _daily([round(rng.gauss(2000, 60)) for _ in range(90)]))
    assert not [e for e in episodes if e["cause"] in ("new_traffic", "reopened")]


def _events(checkpoint: str, moment: datetime, n: int, offset: int) -> list[SourceRecord]:
    ms = round(moment.timestamp() * 1000)
    return [
        SourceRecord(
            0,
            offset + i,
            ms,
            checkpoint.encode(),
            event_bytes(f"{checkpoint}-{offset + i}", moment, checkpoint_id=checkpoint),
        )
        for i in range(n)
    ]


def test_the_worker_flags_a_post_that_starts_carrying_traffic_at_its_first_hour(tmp_path):
    """A worker owning two posts: Zhibek Zholy carries traffic every hour and moves the
    clock; Korday carries nothing for 20 days, then 30 crossings an hour. The first hour
    judged with Korday's traffic raises ``new_traffic`` for it."""
    store = LocalStore(tmp_path / "state")
    processor = PartitionProcessor(
        0, PartitionState(0), store, REGISTRY, ["korday", "zhibek-zholy"], EventDecoder(REGISTRY)
    )
    start = datetime(2024, 3, 1, tzinfo=UTC)
    opens = start + timedelta(days=20, hours=5)
    records: list[SourceRecord] = []
    for hour in range(24 * 23):
        moment = start + timedelta(hours=hour, minutes=10)
        records += _events("zhibek-zholy", moment, 3, len(records))
        if moment >= opens:
            records += _events("korday", moment, 30, len(records))
    try:
        processor.process(records, start + timedelta(days=30))
    finally:
        store.close()
    alerts = [a for a in processor.effects.alerts if a.checkpoint_id == "korday" and a.status == "firing"]
    assert alerts, "no alert for korday"
    first = alerts[0]
    assert (first.kind, first.cause, first.direction) == ("surge", "new_traffic", "entry")
    # Judged at the first whole hour after its first crossings.
    assert datetime.fromisoformat(first.as_of) == opens.replace(minute=0) + timedelta(hours=1)

    # ``crossings backtest`` on the same hourly counts opens the same episode at the same
    # hour. A file says a post was watched and silent by its rows of zero (here one, at the
    # start); a series with no rows before its first traffic has no such history.
    counts: dict[tuple[str, str], int] = {("korday", start.isoformat()): 0}
    for record in records:
        event = json.loads(record.value)
        moment = datetime.fromisoformat(event["occurred_at"]).replace(minute=0, second=0)
        key = (event["checkpoint_id"], moment.isoformat())
        counts[key] = counts.get(key, 0) + 1
    rows = [
        {"time": moment, "checkpoint": checkpoint, "direction": "entry", "count": n}
        for (checkpoint, moment), n in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    backtest = [e for e in _backtest(tmp_path, rows) if e["checkpoint"] == "korday"]
    assert [(e["kind"], e["cause"], datetime.fromisoformat(e["start"])) for e in backtest[:1]] == [
        ("surge", "new_traffic", datetime.fromisoformat(first.as_of))
    ]


def _hourly_run(levels: list[int], restart: bool) -> list[tuple]:
    """Korday entry every hour over ``levels`` (restarted before every evaluation if
    ``restart``): the transitions, as comparable tuples."""
    return [
        (t.status, t.opened, t.episode.kind, t.assessment.cause, t.as_of)
        for t in hourly_transitions("korday", levels, START, restart=restart)
    ]


@pytest.mark.parametrize(
    "levels",
    [
        [0] * 20 + [1600] * 30,  # never any traffic, then a post opens
        [1600] * 40 + [0, 0] + [2560, 2000] + [1600] * 10,  # a two-day closure and its rebound
        [1600] * 40 + [0, 0, 0] + [2560] + [1600] * 20,  # a closure long enough to be "closed"
    ],
)
def test_a_restart_at_every_hour_changes_nothing(levels):
    calm = _hourly_run(levels, restart=False)
    assert calm and calm == _hourly_run(levels, restart=True)


def test_traffic_that_goes_again_before_a_level_is_learned_ends_its_episode(tmp_path):
    """A series at zero, one day of 40 crossings (a trial opening), zero again: the episode
    it opened must not stay open for ever (no baseline would ever judge it)."""
    episodes = _backtest(tmp_path, _daily([0] * 30 + [40] + [0] * 30))
    assert [(e["start"], e["cause"]) for e in episodes] == [(_day(30), "new_traffic")]
    assert episodes[0]["end"] is not None and episodes[0]["end"] <= _day(35)


def _day(k: int) -> str:
    return (START + timedelta(days=k)).isoformat()


@pytest.mark.parametrize(("flags", "cause"), [("." * 400, "new_traffic"), ("c" * 400, None)])
def test_a_saved_state_of_400_silent_days_flags_the_first_hour_of_traffic(flags, cause):
    """A state saved by a worker that has watched a post at zero for longer than it keeps
    days (400 totals, all 0, none a closure: never any traffic it remembers) sees 12
    crossings by 09:00: ``new_traffic`` at once. The same days recorded as a closure with no
    ``closed_since`` (nothing says the post is closed) are a closure already accounted for."""
    korday = REGISTRY["korday"]
    today = START + timedelta(days=400)
    state = {
        "last_day": (today - timedelta(days=1)).isoformat(),
        "last_hour": 23,
        "history": {"from": START.isoformat(), "totals": [0] * 400, "flags": flags},
    }
    profiles = {today: None}
    for hour in range(6, 9):
        profiles[today] = count_event(profiles[today], hour, "KGZ", "labour", 4)
    detector = CheckpointDetector(korday, "entry", profiles.get, state=json.loads(json.dumps(state)))
    found = detector.evaluate(datetime.combine(today, time(9), tzinfo=korday.tz))
    assert [(t.episode.kind, t.assessment.cause) for t in found if t.opened] == (
        [("surge", cause)] if cause else []
    )
