"""Reports over history written by the lake sink, checked against brute-force sums."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import query
from streams.core.effects import CommitBatch, DailySnapshot, EventColumns, MetricDeltas
from streams.domain.alert_type import alert_from_dict
from streams.query import scan
from streams.sinks.parquet.sink import LakeSink

UTC = timezone.utc
ALMATY = ZoneInfo("Asia/Almaty")
CHECKPOINTS = ("zhibek-zholy", "korday", "dostyk")
NATIONALITIES = ("KAZ", "UZB", "KGZ", "CHN", "RUS", "TJK")
PURPOSES = ("labour", "tourist", "transit")
INJECTION = "x' OR 1=1 --"


@dataclass(frozen=True)
class EventRow:
    event_id: str
    checkpoint_id: str
    local_day: date
    direction: str
    occurred_at: datetime
    local_hour: int
    nationality: str
    purpose: str
    mode: str
    outcome: str
    kafka_partition: int
    kafka_offset: int


def write_commit(
    root: Path, seq: int, events: list[EventRow], snapshots: list[DailySnapshot], alerts: list[dict]
) -> None:
    """One commit of partition 0, as the core would hand it to the lake sink."""
    columns: dict[tuple[date, str], EventColumns] = {}
    for row in events:
        c = columns.setdefault((row.local_day, row.checkpoint_id), EventColumns())
        c.event_id.append(row.event_id)
        c.direction.append(row.direction)
        c.occurred_at_us.append(round(row.occurred_at.timestamp() * 1e6))
        c.local_hour.append(row.local_hour)
        c.nationality.append(row.nationality)
        c.purpose.append(row.purpose)
        c.mode.append(row.mode)
        c.outcome.append(row.outcome)
        c.kafka_partition.append(row.kafka_partition)
        c.kafka_offset.append(row.kafka_offset)
        c.kafka_timestamp_ms.append(round(row.occurred_at.timestamp() * 1000) + 2000)
    offsets = [row.kafka_offset for row in events]
    batch = CommitBatch(
        partition=0,
        commit_seq=seq,
        first_offset=min(offsets) if offsets else None,
        last_offset=max(offsets, default=0),
        events=columns,
        alerts=[alert_from_dict(a) for a in alerts],
        snapshots=snapshots,
        dead_letters=[],
        changes=[],
        metrics=MetricDeltas(),
        expired_buckets=[],
        expired_profiles=[],
    )
    LakeSink(root).flush(batch)


def make_events(count: int, seed: int = 7) -> list[EventRow]:
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    rows = []
    for number in range(count):
        occurred_at = start + timedelta(minutes=rng.randrange(3 * 24 * 60))
        local = occurred_at.astimezone(ALMATY)
        rows.append(
            EventRow(
                event_id=f"ev-{number}",
                checkpoint_id=rng.choice(CHECKPOINTS),
                local_day=local.date(),
                direction=rng.choice(("entry", "exit")),
                occurred_at=occurred_at,
                local_hour=local.hour,
                nationality=rng.choices(NATIONALITIES, weights=(5, 4, 3, 2, 1, 1))[0],
                purpose=rng.choice(PURPOSES),
                mode="car",
                outcome="admitted",
                kafka_partition=number % 4,
                kafka_offset=number,
            )
        )
    return rows


def make_alert(number: int, checkpoint_id: str, local_day: date, as_of: datetime) -> dict:
    return {
        "version": 1,
        "alert_id": f"alert-{number}",
        "episode_id": f"{checkpoint_id}:entry:surge:{local_day}T09",
        "status": "firing" if number % 2 else "resolved",
        "kind": "surge",
        "checkpoint_id": checkpoint_id,
        "checkpoint_name": checkpoint_id.title(),
        "direction": "entry",
        "local_day": local_day.isoformat(),
        "window": "running_day",
        "as_of": as_of.isoformat(),
        "raised_at": (as_of + timedelta(seconds=1)).isoformat(),
        "observed": 100 + number,
        "expected": 40.0,
        "ratio": (100 + number) / 40.0,
        "score": 3.5,
        "drivers": [
            {"nationality": "UZB", "purpose": "labour", "observed": 60, "expected": 10.0, "delta": 50}
        ],
        "summary": f"surge at {checkpoint_id} entry",
    }


def counts_by_day(events: list[EventRow]) -> dict[tuple[date, str], Counter]:
    """What the worker's day profiles would hold: per checkpoint-day, counts per group."""
    groups: dict[tuple[date, str], Counter] = defaultdict(Counter)
    for row in events:
        groups[(row.local_day, row.checkpoint_id)][(row.direction, row.nationality, row.purpose)] += 1
    return groups


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[EventRow], list[dict]]:
    root = tmp_path_factory.mktemp("history")
    events = make_events(3000)
    # two commits, the second re-snapshotting every day it touches, as the worker does
    for seq, (start, end) in enumerate(((0, 1800), (1800, len(events))), start=1):
        as_of = max(row.occurred_at for row in events[:end])
        snapshots = [
            DailySnapshot(checkpoint_id, local_day, [(*g, n) for g, n in counter.items()], as_of.timestamp())
            for (local_day, checkpoint_id), counter in counts_by_day(events[:end]).items()
        ]
        write_commit(root, seq, events[start:end], snapshots, [])
    alerts = []
    as_of = datetime(2025, 3, 3, 12, tzinfo=UTC)
    for number in range(6):
        # added out of as_of order, across checkpoints and days
        when = as_of - timedelta(hours=7 * ((number * 5) % 6))
        alert = make_alert(number, CHECKPOINTS[number % 3], when.astimezone(ALMATY).date(), when)
        alerts.append(alert)
    write_commit(root, 3, [], [], alerts)
    return root, events, alerts


def test_daily_totals_match_brute_force(history: tuple) -> None:
    root, events, _ = history
    expected = Counter((row.local_day, row.checkpoint_id, row.direction) for row in events)

    rows = query.daily_totals(root)

    assert {(r["local_day"], r["checkpoint_id"], r["direction"]): r["total"] for r in rows} == expected
    keys = [(r["local_day"], r["checkpoint_id"], r["direction"]) for r in rows]
    assert keys == sorted(keys)


def test_daily_totals_filters_by_checkpoint_and_local_days(history: tuple) -> None:
    root, events, _ = history
    since, until = date(2025, 3, 2), date(2025, 3, 3)
    expected = Counter(
        (row.local_day, row.direction)
        for row in events
        if row.checkpoint_id == "korday" and since <= row.local_day <= until
    )

    rows = query.daily_totals(root, checkpoint="korday", since=since, until="2025-03-03")

    assert {(r["local_day"], r["direction"]): r["total"] for r in rows} == expected
    assert {r["checkpoint_id"] for r in rows} == {"korday"}


def test_nationality_mix_totals_shares_and_top(history: tuple) -> None:
    root, events, _ = history
    totals = Counter((row.checkpoint_id, row.direction, row.nationality) for row in events)
    per_side = Counter((row.checkpoint_id, row.direction) for row in events)

    everything = query.nationality_mix(root, top=None)
    assert {(r["checkpoint_id"], r["direction"], r["nationality"]): r["total"] for r in everything} == totals
    for row in everything:
        side = per_side[(row["checkpoint_id"], row["direction"])]
        assert row["share"] == pytest.approx(row["total"] / side)

    top_two = query.nationality_mix(root, checkpoint="dostyk", direction="exit", top=2)
    dostyk_exit = {key[2]: count for key, count in totals.items() if key[:2] == ("dostyk", "exit")}
    ranked = sorted(dostyk_exit.items(), key=lambda item: (-item[1], item[0]))
    assert [(r["nationality"], r["total"]) for r in top_two] == ranked[:2]
    # shares stay relative to the whole checkpoint-direction, not to the top two
    assert sum(r["share"] for r in top_two) < 1


def test_alerts_come_back_ordered_by_as_of(history: tuple) -> None:
    root, _, added = history

    rows = query.alerts(root)

    expected = sorted(added, key=lambda alert: alert["as_of"])
    assert [r["alert_id"] for r in rows] == [alert["alert_id"] for alert in expected]
    first = rows[0]
    assert first["as_of"] == datetime.fromisoformat(expected[0]["as_of"])
    assert first["local_day"] == date.fromisoformat(expected[0]["local_day"])
    assert first["drivers"] == expected[0]["drivers"]
    korday = query.alerts(root, checkpoint="korday")
    assert {r["alert_id"] for r in korday} == {a["alert_id"] for a in added if a["checkpoint_id"] == "korday"}


def test_reconcile_agrees_then_spots_events_the_counts_miss(history: tuple, tmp_path: Path) -> None:
    root, events, _ = history

    outcome = query.reconcile(root)

    assert outcome["agree"] is True
    assert outcome["counted_total"] == outcome["events_total"] == len(events) == query.events_count(root)
    assert outcome["checkpoint_days"] == len(counts_by_day(events))
    assert query.events_count(root, checkpoint="korday") == sum(
        1 for row in events if row.checkpoint_id == "korday"
    )

    # a copy where one day got two more events than its snapshot says
    snapshots = [
        DailySnapshot(checkpoint_id, local_day, [(*g, c) for g, c in counter.items()], 0.0)
        for (local_day, checkpoint_id), counter in counts_by_day(events[:50]).items()
    ]
    write_commit(tmp_path, 1, events[:50], snapshots, [])
    extra = events[50:52]
    extra = [EventRow(**{**_fields(row), "checkpoint_id": "kegen"}) for row in extra]
    write_commit(tmp_path, 2, extra, [], [])

    mismatch = query.reconcile(tmp_path)

    assert mismatch["agree"] is False
    assert mismatch["events_total"] - mismatch["counted_total"] == 2
    off = [row for row in mismatch["days"] if row["difference"] != 0]
    assert {row["checkpoint_id"] for row in off} == {"kegen"}
    assert sum(row["events"] for row in off) == 2 and all(row["counted"] == 0 for row in off)


def _fields(row: EventRow) -> dict:
    return {name: getattr(row, name) for name in EventRow.__dataclass_fields__}


def test_missing_folders_give_empty_results(tmp_path: Path) -> None:
    assert query.daily_totals(tmp_path) == []
    assert query.nationality_mix(tmp_path) == []
    assert query.alerts(tmp_path / "does-not-exist") == []
    assert query.events_count(tmp_path) == 0
    assert query.reconcile(tmp_path)["agree"] is True
    assert "(no rows)" in query.report_main(tmp_path, "all", "table", None, None, None)


def test_sql_in_filter_values_matches_nothing_and_raises_nothing(history: tuple) -> None:
    root, _, _ = history
    assert query.daily_totals(root, checkpoint=INJECTION) == []
    assert query.nationality_mix(root, checkpoint=INJECTION) == []
    assert query.nationality_mix(root, direction=INJECTION) == []
    assert query.alerts(root, checkpoint=INJECTION) == []
    assert query.events_count(root, checkpoint=INJECTION) == 0
    assert query.reconcile(root, checkpoint=INJECTION)["checkpoint_days"] == 0
    with pytest.raises(ValueError, match="since"):
        query.daily_totals(root, since=INJECTION)


def test_queries_bind_filters_even_without_folder_pruning(
    history: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQL itself filters (pruning is only an optimisation), through bound values."""
    root, events, _ = history
    real = scan.partition_files
    monkeypatch.setattr(
        scan, "partition_files", lambda root, dataset, *_: real(root, dataset, None, None, None)
    )
    assert query.daily_totals(root, checkpoint=INJECTION) == []
    rows = query.daily_totals(root, checkpoint="dostyk", since=date(2025, 3, 2), until=date(2025, 3, 2))
    assert sum(r["total"] for r in rows) == sum(
        1 for row in events if row.checkpoint_id == "dostyk" and row.local_day == date(2025, 3, 2)
    )


def test_data_root_with_glob_characters_is_read_literally(tmp_path: Path) -> None:
    root = tmp_path / "odd [1] *dir?"
    write_commit(root, 1, make_events(10), [], [])
    assert query.events_count(root) == 10


def test_render_table_aligns_columns_with_thousands_separators() -> None:
    rows = [
        {"local_day": date(2025, 3, 1), "checkpoint_id": "korday", "total": 1234567, "share": 0.5},
        {"local_day": date(2025, 3, 2), "checkpoint_id": "zhibek-zholy", "total": 12, "share": None},
    ]

    text = query.render(rows, "table", title="Totals")

    lines = text.splitlines()
    assert lines[0] == "Totals"
    assert lines[1].split() == ["local_day", "checkpoint_id", "total", "share"]
    assert "1,234,567" in lines[3] and "0.500" in lines[3]
    assert lines[3].index("1,234,567") + len("1,234,567") == lines[4].index("12") + 2  # right-aligned
    assert lines[3].index("korday") == lines[4].index("zhibek-zholy")  # left-aligned text
    assert query.render([], "table", title="Nothing") == "Nothing\n(no rows)"


def test_render_csv_and_json_round_trip() -> None:
    rows = [
        {
            "local_day": date(2025, 3, 1),
            "as_of": datetime(2025, 3, 1, 4, tzinfo=UTC),
            "total": 1234,
            "name": 'a, "b"',
        },
    ]

    parsed = list(csv.DictReader(io.StringIO(query.render(rows, "csv"))))
    assert parsed == [
        {"local_day": "2025-03-01", "as_of": "2025-03-01T04:00:00+00:00", "total": "1234", "name": 'a, "b"'}
    ]
    assert json.loads(query.render(rows, "json")) == [
        {"local_day": "2025-03-01", "as_of": "2025-03-01T04:00:00+00:00", "total": 1234, "name": 'a, "b"'}
    ]
    with pytest.raises(ValueError, match="format"):
        query.render(rows, "xml")


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_report_main_renders_every_report(history: tuple, fmt: str) -> None:
    root, events, _ = history

    text = query.report_main(root, "all", fmt, None, None, None)

    if fmt == "json":
        data = json.loads(text)
        assert set(data) == {"daily", "nationality", "alerts", "reconcile"}
        assert data["reconcile"]["agree"] is True
        assert sum(row["total"] for row in data["daily"]) == len(events)
    elif fmt == "table":
        assert "Daily counts vs raw events: agree" in text
        assert f"{len(events):,} crossings" in text
    else:
        assert text.count("# ") == 4
    single = query.report_main(root, "daily", fmt, "korday", "2025-03-02", None)
    assert "zhibek-zholy" not in single and "korday" in single
    with pytest.raises(ValueError, match="report"):
        query.report_main(root, "everything", fmt, None, None, None)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(CHECKPOINTS), st.integers(0, 20), st.sampled_from(("entry", "exit"))),
        st.integers(1, 50),
        max_size=25,
    ),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_daily_totals_list_days_without_crossings_as_zero(tmp_path_factory, counts, since_offset) -> None:
    """A closed day has no snapshot at all: between a checkpoint's first and last day in the
    selection every day is listed for each direction it has, with 0 where nothing crossed."""
    root = tmp_path_factory.mktemp("gaps")
    first = date(2025, 3, 1)
    per_day: dict[tuple[str, date], list] = defaultdict(list)
    for (checkpoint_id, offset, direction), n in counts.items():
        per_day[(checkpoint_id, first + timedelta(days=offset))].append((direction, "KAZ", "labour", n))
    snapshots = [DailySnapshot(c, day, rows, 0.0) for (c, day), rows in per_day.items()]
    if snapshots:
        write_commit(root, 1, [], snapshots, [])
    since = None if since_offset is None else first + timedelta(days=since_offset)
    selected = {
        (c, first + timedelta(days=o), d): n
        for (c, o, d), n in counts.items()
        if since is None or first + timedelta(days=o) >= since
    }
    expected = {}
    for checkpoint_id in {c for c, _, _ in selected}:
        days = [day for c, day, _ in selected if c == checkpoint_id]
        for direction in {d for c, _, d in selected if c == checkpoint_id}:
            for k in range((max(days) - min(days)).days + 1):
                day = min(days) + timedelta(days=k)
                expected[(day, checkpoint_id, direction)] = selected.get((checkpoint_id, day, direction), 0)

    rows = query.daily_totals(root, since=since) if snapshots else []

    assert {(r["local_day"], r["checkpoint_id"], r["direction"]): r["total"] for r in rows} == expected
    keys = [(r["local_day"], r["checkpoint_id"], r["direction"]) for r in rows]
    assert keys == sorted(keys)
