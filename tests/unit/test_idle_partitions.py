"""A checkpoint alone in its partition that goes silent is still seen to drop.

Its partition's stream time stops with its traffic, so only the idle rule (an idle
partition follows the slowest active one) lets the detector see the closed day at all.
With 3 partitions, Kafka's partitioner puts Jibek Joly on 1 and Korday on 2.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from samples import event_bytes

from load_tests.scenario import Scenario, ScenarioSpec
from streams.core.engine import Engine, EngineConfig
from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord
from streams.domain.alert_type import alert_to_dict
from streams.domain.detect import DetectorConfig
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

# Ends on the Korday closure day (day 37): Korday sends nothing that day, Jibek Joly does.
SPEC = ScenarioSpec(days=37, checkpoints=("zhibek-zholy", "korday"))
PARTITIONS = 3
JJ, KORDAY = partition_for(b"zhibek-zholy", PARTITIONS), partition_for(b"korday", PARTITIONS)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def scenario_records() -> tuple[list[SourceRecord], Counter[int]]:
    """The scenario's records on their partitions, and the next offset of each."""
    assert JJ != KORDAY
    offsets: Counter[int] = Counter()
    records = []
    for record in Scenario(SPEC).records():
        partition = partition_for(record.key, PARTITIONS)
        records.append(SourceRecord(partition, offsets[partition], 0, record.key, record.value))
        offsets[partition] += 1
    return records, offsets


@pytest.fixture
def replayed(scenario_records, tmp_path):
    """An engine of its own for each test (they move its clock and feed it), after the
    whole scenario with the wall clock standing still."""
    records, offsets = scenario_records
    root = tmp_path
    clock = FakeClock()
    outputs = LocalOutputs()
    engine = Engine(
        EngineConfig(PARTITIONS, root / "state", idle_after=30.0),
        load_registry(),
        LakeSink(root / "data"),
        outputs,
        monotonic=clock,
    )

    async def go() -> None:
        for start in range(0, len(records), 500):
            await engine.process(records[start : start + 500])
            engine.tick()  # the wall clock stands still: nothing is idle yet
        await engine.commit()

    asyncio.run(go())
    return engine, clock, outputs, offsets


def closure_day() -> date:
    return next(a for a in SPEC.anomalies if a.name == "korday-closure").starts


def korday_drops_on(alerts: list[dict], day: date) -> list[dict]:
    return [
        a
        for a in map(alert_to_dict, alerts)
        if a["checkpoint_id"] == "korday" and a["kind"] == "drop" and a["local_day"] == day.isoformat()
    ]


def test_while_its_partition_is_active_the_silent_day_is_not_judged(replayed):
    engine, _, outputs, _ = replayed
    assert korday_drops_on(outputs.alerts, closure_day()) == []
    jj_clock, korday_clock = engine.tasks[JJ].state.stream_ts, engine.tasks[KORDAY].state.stream_ts
    assert korday_clock < jj_clock - 20 * 3600  # Korday's clock stopped the day before


def test_once_idle_the_partition_follows_the_active_one_and_the_drop_is_raised(replayed):
    engine, clock, outputs, offsets = replayed
    # Jibek Joly's partition keeps sending; Korday's has been silent past the idle limit.
    clock.now += 31.0
    newest = datetime.fromtimestamp(engine.tasks[JJ].state.stream_ts, UTC)
    late = event_bytes("late-jj", newest, checkpoint_id="zhibek-zholy")
    asyncio.run(engine.process([SourceRecord(JJ, offsets[JJ], 0, b"zhibek-zholy", late)]))
    engine.tick()
    assert engine.tasks[KORDAY].state.evaluated_until == engine.tasks[JJ].state.evaluated_until
    asyncio.run(engine.commit())
    drops = korday_drops_on(outputs.alerts, closure_day())
    # Both directions silent at once: one post-level episode for the post (direction "both").
    assert [a["direction"] for a in drops] == ["both"]
    for alert in drops:
        assert alert["status"] == "firing"
        assert alert["observed"] == 0
        # Nothing at all where the count model makes silence unlikely: the post is silent
        # (a silence needs min_expected and the score, not min_excess).
        assert alert["expected"] >= DetectorConfig().min_expected
        assert alert["score"] <= -DetectorConfig().min_score
        assert alert["cause"] == "no_data"


def test_with_every_partition_idle_no_clock_moves(replayed):
    engine, clock, _, _ = replayed
    before = {p: t.state.evaluated_until for p, t in engine.tasks.items()}
    clock.now += 3600.0
    engine.tick()
    assert {p: t.state.evaluated_until for p, t in engine.tasks.items()} == before
    day_after = datetime.combine(SPEC.end + timedelta(days=1), datetime.min.time(), UTC)
    clocks = [t.state.stream_ts for t in engine.tasks.values() if t.state.stream_ts is not None]
    assert max(clocks) < day_after.timestamp()
