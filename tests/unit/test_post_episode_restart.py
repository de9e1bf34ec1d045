"""A worker restarted while a post falls silent raises the alerts an uninterrupted one does.

The post-level view pairs a post's two detectors: while both are silent, neither direction
opens its own drop, and one episode (direction ``both``) speaks for the post. The pairing
is not state; a restarted worker makes the detectors again from their saved states. Were
one direction evaluated before its partner exists, it would judge its silence alone and
could open its own drop. So the Korday closure day is cut by restarts (commit, close, a new
engine on the same state) at each of its first hours, and the alert messages must be the
same, field for field, as without them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from load_tests.scenario import DEFAULT_START, Scenario, ScenarioSpec
from streams.core.engine import Engine, EngineConfig
from streams.core.records import SourceRecord
from streams.domain.alert_type import alert_to_dict
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

REGISTRY = load_registry()
KORDAY = REGISTRY["korday"]
#: Ends the day after the Korday closure (day 37 of the default stories). One partition:
#: Zhibek Zholy's traffic moves the stream clock through Korday's silent day.
SPEC = ScenarioSpec(days=38, checkpoints=("zhibek-zholy", "korday"), late_rate=0.0)
CLOSURE_DAY = DEFAULT_START + timedelta(days=36)


def records() -> list[SourceRecord]:
    return [
        SourceRecord(0, offset, round(r.arrival_ts * 1000), r.key, r.value)
        for offset, r in enumerate(Scenario(SPEC).records())
    ]


def run(root: Path, records: list[SourceRecord], cuts: list[int]) -> list[dict]:
    """Process the records in order, restarting the engine (commit, close, a new one on
    the same state and lake) before each index in ``cuts``."""
    outputs = LocalOutputs()
    sink = LakeSink(root / "data")

    def engine() -> Engine:
        return Engine(EngineConfig(1, root / "state"), REGISTRY, sink, outputs)

    async def go() -> None:
        core = engine()
        position = 0
        for cut in [*cuts, len(records)]:
            for start in range(position, cut, 20_000):
                await core.process(records[start : min(start + 20_000, cut)])
            position = cut
            await core.commit()
            await core.close(list(core.tasks))
            core = engine()
        await core.close(list(core.tasks))

    asyncio.run(go())
    return [alert_to_dict(a) for a in outputs.alerts]


def test_restarts_while_the_post_falls_silent_change_no_alert(tmp_path):
    sent = records()
    # Restart just after each local hour of the closure day's early morning (the records
    # that close an hour trigger its evaluation, so each restart falls between two).
    cuts = []
    for hour in range(0, 8):
        moment = datetime.combine(CLOSURE_DAY, datetime.min.time(), KORDAY.tz) + timedelta(
            hours=hour, minutes=5
        )
        cuts.append(next(i for i, r in enumerate(sent) if r.timestamp_ms >= moment.timestamp() * 1000))
    assert len(set(cuts)) == len(cuts)
    calm = run(tmp_path / "calm", sent, [])
    restarted = run(tmp_path / "restarted", sent, cuts)
    assert restarted == calm
    # The closure is there to be judged: one post-level drop, and no drop of either direction.
    drops = [
        a
        for a in calm
        if a["kind"] == "drop" and a["status"] == "firing" and a["local_day"] == str(CLOSURE_DAY)
    ]
    assert drops and {a["direction"] for a in drops} == {"both"}
