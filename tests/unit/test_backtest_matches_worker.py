"""The worker raises the same alerts as ``crossings backtest`` on the same counts.

Scenario traffic (the Jibek Joly surge, the Kazygurt crackdown, the Korday closure) is
driven through the core the worker runs (Engine, local outputs, one partition so every
checkpoint shares one stream clock); the same records' valid events are counted into an
hourly long-form CSV and given to ``crossings backtest``. The episodes opened must be the
same: kind, start hour, checkpoint and direction. No late uploads: a worker judges an
hour with what has arrived, a file knows every event, so a late event could differ.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from datetime import UTC, datetime

from click.testing import CliRunner

from load_tests.scenario import Scenario, ScenarioSpec
from streams.cli.main import cli
from streams.core.engine import Engine, EngineConfig
from streams.core.records import SourceRecord
from streams.domain.alert_type import alert_to_dict
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

REGISTRY = load_registry()
SPEC = ScenarioSpec(checkpoints=("zhibek-zholy", "kazygurt", "korday"), other_scale=3.0, late_rate=0.0)


def test_worker_and_backtest_open_the_same_episodes(tmp_path):
    scenario = Scenario(SPEC)
    records, counts = [], Counter()
    for offset, generated in enumerate(scenario.records()):
        records.append(
            SourceRecord(0, offset, round(generated.arrival_ts * 1000), generated.key, generated.value)
        )
        if generated.kind != "valid":
            continue  # duplicates and invalid payloads are not counted by the worker either
        event = json.loads(generated.value)
        checkpoint = REGISTRY[event["checkpoint_id"]]
        local = datetime.fromisoformat(event["occurred_at"]).astimezone(checkpoint.tz)
        hour = local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        group = f"{event['nationality']}|{event['purpose']}"
        counts[(hour.isoformat(" "), checkpoint.checkpoint_id, event["direction"], group)] += 1

    outputs = LocalOutputs()
    engine = Engine(EngineConfig(1, tmp_path / "state"), REGISTRY, LakeSink(tmp_path / "data"), outputs)

    async def run() -> None:
        for start in range(0, len(records), 20_000):
            await engine.process(records[start : start + 20_000])
        await engine.commit()
        await engine.close(list(engine.tasks))

    asyncio.run(run())
    published = [alert_to_dict(a) for a in outputs.alerts]
    opened_ids = {a["episode_id"] for a in published}
    first_alerts = {}
    for alert in sorted(published, key=lambda a: a["as_of"]):
        first_alerts.setdefault(alert["episode_id"], alert)
    worker = {
        (a["checkpoint_id"], a["direction"], a["kind"], datetime.fromisoformat(a["as_of"]).astimezone(UTC))
        for a in first_alerts.values()
    }
    assert len(first_alerts) == len(opened_ids)

    path = tmp_path / "hourly.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "checkpoint", "direction", "group", "count"])
        for key, n in sorted(counts.items()):
            writer.writerow([*key, n])
    result = CliRunner().invoke(cli, ["backtest", str(path), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    backtest = {
        (e["checkpoint"], e["direction"], e["kind"], datetime.fromisoformat(e["start"]).astimezone(UTC))
        for e in map(json.loads, result.output.splitlines())
    }
    assert backtest == worker
    kinds = {(c, k) for c, _, k, _ in worker}
    # The scenario's stories are there at all (so the comparison is not of two empty sets).
    assert ("zhibek-zholy", "surge") in kinds
    assert ("korday", "drop") in kinds
    # Korday's closure silences both directions at once: one post-level episode, the same in both.
    assert {d for c, d, k, _ in worker if (c, k) == ("korday", "drop")} == {"both"}
