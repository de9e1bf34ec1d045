"""Each engine setting of the README, set in the environment, changes what the worker's
core does: the engine is built from ``load_settings`` by ``build_engine`` (the one place
the worker builds it), and each test runs it once with the setting and once without, so
a setting that stopped reaching the engine fails here. ``CROSSINGS_LOG_LEVEL`` is checked
on a real command's stderr."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from samples import event_bytes

from streams.core.engine import Engine
from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.settings import load_settings
from streams.worker.faust_app import build_engine

T = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday morning at the post
JJ, DOSTYK = b"zhibek-zholy", b"dostyk"  # on partitions 1 and 2 of 4


def worker_engine(
    home: Path, env: dict[str, str], monotonic: Callable[[], float] | None = None
) -> tuple[Engine, LocalOutputs, Path]:
    settings = load_settings({"CROSSINGS_HOME": str(home), **env})
    outputs = LocalOutputs()
    clocks = {} if monotonic is None else {"monotonic": monotonic}
    return build_engine(settings, load_registry(), outputs, **clocks), outputs, settings.data_dir


def record(partitions: int, key: bytes, offset: int, occurred: datetime, arrived: datetime) -> SourceRecord:
    """An event of checkpoint ``key`` on its partition, reaching Kafka at ``arrived``."""
    value = event_bytes(f"{key.decode()}-{offset}", occurred, checkpoint_id=key.decode())
    return SourceRecord(partition_for(key, partitions), offset, int(arrived.timestamp() * 1000), key, value)


def run(engine: Engine, records: list[SourceRecord]) -> None:
    async def go() -> None:
        await engine.process(records)
        await engine.commit()
        await engine.close(list(engine.tasks))

    asyncio.run(go())


def reasons(outputs: LocalOutputs) -> list[str]:
    return [d.reason for d in outputs.dead_letters]


@pytest.mark.parametrize(
    ("env", "expected"), [({}, []), ({"CROSSINGS_DEDUP_HORIZON_HOURS": "1"}, ["too_late"])]
)
def test_dedup_horizon_hours_decides_what_is_too_late(tmp_path, env, expected):
    # Five events at 10:00, then one stamped two hours earlier: within the default 72 h
    # it is counted; with a 1 h horizon it is too late to be checked for a duplicate.
    engine, outputs, _ = worker_engine(tmp_path, env)
    p = engine.config.partitions
    recent = [record(p, JJ, n, T + timedelta(seconds=n), T + timedelta(seconds=n)) for n in range(5)]
    late = record(p, JJ, 5, T - timedelta(hours=2), T + timedelta(seconds=6))
    run(engine, [*recent, late])
    assert reasons(outputs) == expected


@pytest.mark.parametrize(
    ("env", "expected"), [({}, []), ({"CROSSINGS_MAX_CLOCK_SKEW_SECONDS": "60"}, ["future_timestamp"])]
)
def test_max_clock_skew_seconds_decides_what_is_from_the_future(tmp_path, env, expected):
    # Stamped two minutes after it reached Kafka: inside the default 900 s, not inside 60 s.
    engine, outputs, _ = worker_engine(tmp_path, env)
    run(engine, [record(engine.config.partitions, JJ, 0, T + timedelta(minutes=2), T)])
    assert reasons(outputs) == expected


@pytest.mark.parametrize(("env", "published"), [({}, False), ({"CROSSINGS_LAKE_ROLL_ROWS": "5"}, True)])
def test_lake_roll_rows_publishes_a_commit_that_reaches_the_row_limit(tmp_path, env, published):
    # The roll time is the default hour: only the row limit can publish this commit's
    # five rows (a million by default: they stay staged, out of the lake's folders).
    engine, _, data_dir = worker_engine(tmp_path, {"CROSSINGS_LAKE": "parquet", **env})
    p = engine.config.partitions
    run(engine, [record(p, JJ, n, T + timedelta(seconds=n), T + timedelta(seconds=n)) for n in range(5)])
    assert bool(list(data_dir.glob("events/*/*/*.parquet"))) is published


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("env", "follows"), [({}, False), ({"CROSSINGS_IDLE_AFTER_SECONDS": "5"}, True)])
def test_idle_after_seconds_decides_when_a_silent_partition_follows_the_others(tmp_path, env, follows):
    # Dostyk's partition sent at 10:00, Jibek Joly's until 15:00. Six (wall-clock) seconds
    # later Jibek Joly's sends again: Dostyk's, silent for six, is idle after 5 s (and its
    # checkpoints are judged on Jibek Joly's clock), not after the default 30 s.
    clock = FakeClock()
    engine, _, _ = worker_engine(tmp_path, env, clock)
    p = engine.config.partitions
    jj, dostyk = partition_for(JJ, p), partition_for(DOSTYK, p)
    assert jj != dostyk
    later = T + timedelta(hours=5)
    first = [record(p, DOSTYK, n, T + timedelta(seconds=n), T + timedelta(seconds=n)) for n in range(5)]
    first += [record(p, JJ, n, later + timedelta(seconds=n), later + timedelta(seconds=n)) for n in range(5)]
    again = [record(p, JJ, 5, later + timedelta(seconds=6), later + timedelta(seconds=6))]

    async def go() -> tuple[float, float]:
        await engine.process(first)
        engine.tick()
        clock.now += 6.0
        await engine.process(again)
        engine.tick()
        until = engine.tasks[dostyk].state.evaluated_until, engine.tasks[jj].state.evaluated_until
        await engine.close(list(engine.tasks))
        return until

    dostyk_until, jj_until = asyncio.run(go())
    assert dostyk_until is not None and jj_until is not None
    assert (dostyk_until == jj_until) is follows
    assert dostyk_until <= jj_until


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("DEBUG", {"DEBUG", "INFO"}, set()),
        ("INFO", {"INFO"}, {"DEBUG"}),
        ("WARNING", set(), {"DEBUG", "INFO"}),
    ],
)
def test_log_level_decides_which_lines_a_command_logs(tmp_path, level, shown, hidden):
    # A replay of one NDJSON line logs a DEBUG line (its reader process) and an INFO one
    # (the partition opened).
    source = tmp_path / "events.ndjson"
    source.write_bytes(event_bytes("log-1", T) + b"\n")
    env = {**os.environ, "CROSSINGS_HOME": str(tmp_path / "home"), "CROSSINGS_LOG_LEVEL": level}
    env.pop("CROSSINGS_LOG_FORMAT", None)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "streams.cli", "replay", "--file", str(source), "--jobs", "1"),
            *("--data", str(tmp_path / "data"), "--state", str(tmp_path / "state")),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    levels = {line.split()[2] for line in done.stderr.splitlines() if len(line.split()) > 2}
    assert shown <= levels, done.stderr
    assert not hidden & levels, done.stderr
