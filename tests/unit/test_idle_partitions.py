"""A checkpoint alone in its partition that goes silent is still seen to drop.

Its partition's stream time stops with its traffic, so only the idle rule (an idle
partition follows the slowest active one) lets the detector see the closed day at all.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from samples import event_bytes

from load_tests.scenario import Scenario, ScenarioSpec
from streams.metrics import WorkerMetrics
from streams.parquet_sink import ParquetSink
from streams.pipeline import Pipeline, PipelineTables

# Ends on the Korday closure day (day 37): Korday sends nothing that day, Jibek Joly does.
SPEC = ScenarioSpec(days=37, checkpoints=("zhibek-zholy", "korday"))
PARTITION = {b"zhibek-zholy": 0, b"korday": 1}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    clock = FakeClock()
    pipeline = Pipeline(
        PipelineTables({}, {}, {}),
        ParquetSink(tmp_path_factory.mktemp("idle"), "idle"),
        WorkerMetrics(),
        idle_after=30.0,
        monotonic=clock,
    )
    alerts = []
    for offset, record in enumerate(Scenario(SPEC).records()):
        partition = PARTITION.get(record.key, 0)
        alerts += pipeline.process(record.value, partition=partition, offset=offset).alerts
        if offset % 500 == 0:
            alerts += pipeline.tick()  # the wall clock stands still: nothing is idle yet
    alerts += pipeline.tick()
    return pipeline, clock, alerts


def closure_day() -> date:
    return next(a for a in SPEC.anomalies if a.name == "korday-closure").starts


def korday_drops_on(alerts: list[dict], day: date) -> list[dict]:
    return [
        a
        for a in alerts
        if a["checkpoint_id"] == "korday" and a["kind"] == "drop" and a["local_day"] == day.isoformat()
    ]


def test_while_its_partition_is_active_the_silent_day_is_not_judged(replayed):
    pipeline, _, alerts = replayed
    assert korday_drops_on(alerts, closure_day()) == []
    clocks = pipeline.partition_clocks()
    assert clocks[1] < clocks[0] - timedelta(hours=20)  # Korday's clock stopped the day before


def test_once_idle_the_partition_follows_the_active_one_and_the_drop_is_raised(replayed):
    pipeline, clock, _ = replayed
    # Partition 0 keeps sending; partition 1 has been silent past the idle limit.
    clock.now += 31.0
    jj = pipeline.process(
        event_bytes("late-jj", pipeline.stream_time[0], checkpoint_id="zhibek-zholy"),
        partition=0,
        offset=10**9,
    )
    assert jj.status == "counted"
    clocks = pipeline.partition_clocks()
    assert clocks[1] == clocks[0] == pipeline.stream_time[0]
    raised = pipeline.tick()
    drops = korday_drops_on(raised, closure_day())
    assert {a["direction"] for a in drops} == {"entry", "exit"}
    for alert in drops:
        assert alert["status"] == "firing"
        assert alert["observed"] == 0
        assert alert["expected"] >= 100


def test_with_every_partition_idle_no_clock_moves(replayed):
    pipeline, clock, _ = replayed
    clock.now += 3600.0
    assert pipeline.partition_clocks() == pipeline.stream_time
    day_after = datetime.combine(SPEC.end + timedelta(days=1), datetime.min.time(), timezone.utc)
    assert max(pipeline.stream_time.values()) < day_after  # not moved on by the wall clock
