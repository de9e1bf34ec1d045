"""``crossings backtest`` on a lake gives the worker's episodes, alert for alert.

Six weeks of scenario traffic at four posts (a Tajik crackdown at Kazygurt, Korday closed
for a day, Gishtkuprik's Sunday peaks, late uploads, re-sent duplicates and invalid
messages) go through the core the worker runs (``Engine``, four partitions, the lake
written by its sink). The backtest reads only that lake. Judged from the lake's daily
counts, the same detector raised other episodes (Sunday surges at Gishtkuprik exit, the
Korday closure resolved two days late); replayed from its events as the worker received
them, it must raise the worker's alerts exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from load_tests.scenario import Scenario, ScenarioSpec
from streams import query
from streams.backtest.lake import backtest_lake
from streams.cli.main import cli
from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord
from streams.domain.alert_type import alert_to_dict
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.settings.lake import LakeConfig
from streams.sinks.ducklake.sink import DuckLakeSink
from streams.sinks.parquet.sink import LakeSink

REGISTRY = load_registry()
PARTITIONS = 4
SPEC = ScenarioSpec(checkpoints=("gishtkuprik", "kaplanbek", "kazygurt", "korday"))


def _sink(lake: str, data: Path):
    if lake == "ducklake":  # the default lake: its catalog in the data folder
        return DuckLakeSink.from_config(LakeConfig(), data)
    return LakeSink(data)


def _worker_lake(tmp_path, lake: str = "parquet") -> tuple[list[dict], object]:
    """The scenario through the worker's core; its alerts, in the order it raised them."""
    offsets: Counter[int] = Counter()
    records = []
    kinds = Counter()
    for generated in Scenario(SPEC).records():
        kinds[generated.kind] += 1
        partition = partition_for(generated.key, PARTITIONS) if generated.key else 0
        arrival_ms = round(generated.arrival_ts * 1000)
        key, value = generated.key, generated.value
        records.append(SourceRecord(partition, offsets[partition], arrival_ms, key, value))
        offsets[partition] += 1
    assert kinds["late"] > 100 and kinds["duplicate"] > 100 and kinds["invalid"] > 50
    outputs = LocalOutputs()
    engine = Engine(
        EngineConfig(PARTITIONS, tmp_path / "state"), REGISTRY, _sink(lake, tmp_path / "data"), outputs
    )

    async def run() -> None:
        for start in range(0, len(records), 7_000):  # commits fall anywhere in the stream
            await engine.process(records[start : start + 7_000])
            await engine.commit()
        await engine.commit(publish=True)
        await engine.close(list(engine.tasks))

    asyncio.run(run())
    return [alert_to_dict(a) for a in outputs.alerts], tmp_path / "data"


def _episodes(alerts: list[dict]) -> dict[str, tuple]:
    """episode id -> (checkpoint, direction, kind, cause, opened, resolved or None) in UTC."""
    found: dict[str, list] = {}
    for alert in alerts:
        as_of = datetime.fromisoformat(alert["as_of"]).astimezone(UTC)
        what = [alert["checkpoint_id"], alert["direction"], alert["kind"], alert.get("cause", "level")]
        entry = found.setdefault(alert["episode_id"], [*what, as_of, None])
        if alert["status"] == "resolved":
            entry[5] = as_of
    return {episode: tuple(entry) for episode, entry in found.items()}


@pytest.mark.parametrize("kind", ["ducklake", "parquet"])
def test_backtest_of_a_lake_raises_the_workers_alerts(tmp_path, kind):
    alerts, lake = _worker_lake(tmp_path, kind)
    assert sorted(a["alert_id"] for a in query.alerts(lake)) == sorted(a["alert_id"] for a in alerts)
    worker = _episodes(alerts)
    # The scenario's stories are there (the comparison is not of two empty sets).
    stories = {(c, d, k, cause) for c, d, k, cause, *_ in worker.values()}
    assert ("korday", "both", "drop", "no_data") in stories
    assert ("kazygurt", "entry", "drop", "group") in stories

    result = CliRunner().invoke(cli, ["backtest", str(lake), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    backtest = {
        row["episode"]: (
            row["checkpoint"],
            row["direction"],
            row["kind"],
            row["cause"],
            datetime.fromisoformat(row["start"]).astimezone(UTC),
            datetime.fromisoformat(row["end"]).astimezone(UTC) if row["end"] else None,
        )
        for row in map(json.loads, result.stdout.splitlines())
    }
    assert backtest == worker

    # Message for message: the same alerts (ids, figures, the broker time that raised them).
    replayed = [alert_to_dict(a) for a in backtest_lake(lake, REGISTRY).alerts]
    key = lambda a: (a["as_of"], a["alert_id"])  # noqa: E731
    assert sorted(replayed, key=key) == sorted(alerts, key=key)


def test_an_id_not_in_the_registry_is_judged_with_a_warning_saying_what_was_assumed(tmp_path):
    path = tmp_path / "series.csv"
    rows = ["date,checkpoint,direction,count"]
    rows += [f"2024-01-{day:02d},new-post,entry,{100 + day % 7}" for day in range(1, 29)]
    rows += [f"2024-01-{day:02d},korday,entry,{100 + day % 7}" for day in range(1, 29)]
    path.write_text("\n".join(rows) + "\n")
    args = ["backtest", str(path), "--no-progress", "--tz", "Asia/Almaty", "--country", "KZ"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (
        "warning: 1 checkpoint id(s) not in the registry (new-post): judged in time zone Asia/Almaty "
        "with the public holidays of KZ" in result.stderr
    )
    plain = CliRunner().invoke(cli, ["backtest", str(path), "--no-progress"])
    assert "judged in time zone UTC with no public holidays" in plain.stderr
    known = tmp_path / "known.csv"
    known.write_text("\n".join(r for r in rows if "new-post" not in r) + "\n")
    assert "warning" not in CliRunner().invoke(cli, ["backtest", str(known), "--no-progress"]).stderr


def test_a_lake_whose_events_are_all_staged_says_so(tmp_path):
    records = []
    for offset, generated in enumerate(Scenario(ScenarioSpec(days=1, checkpoints=("korday",))).records()):
        records.append(
            SourceRecord(0, offset, round(generated.arrival_ts * 1000), generated.key, generated.value)
        )
    engine = Engine(
        EngineConfig(1, tmp_path / "state"),
        REGISTRY,
        LakeSink(tmp_path / "data", roll_seconds=3600),  # a live worker's: rows staged for an hour
        LocalOutputs(),
    )

    async def run() -> None:
        await engine.process(records)
        await engine.commit()

    asyncio.run(run())
    assert not (tmp_path / "data" / "events").exists()  # nothing published yet
    result = CliRunner().invoke(cli, ["backtest", str(tmp_path / "data"), "--no-progress"])
    assert result.exit_code == 1
    assert "no events Parquet files" in result.output
    assert "event(s) are staged, not yet published" in result.output
