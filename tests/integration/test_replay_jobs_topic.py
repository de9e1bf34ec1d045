"""``crossings replay --jobs 2`` over a real topic: each job assigns only its partitions,
and the lake, dead letters and stats are those of ``--jobs 1``, byte for byte, although
the two runs' fetches cut the records into different batches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams.cli.main import cli
from streams.ops.topics import ensure_topics
from streams.replay.run import read_dead_letters
from streams.settings import load_settings

pytestmark = pytest.mark.integration

SPEC = ScenarioSpec(days=30, other_scale=0.2, checkpoints=("zhibek-zholy", "korday", "kazygurt", "dostyk"))
STATS = re.compile(r"replayed ([\d,]+) records in [\d.]+s \([\d,]+/s\): (.*)$", re.MULTILINE)


def _parquet_files(data: Path) -> dict[str, bytes]:
    return {path.relative_to(data).as_posix(): path.read_bytes() for path in data.rglob("*.parquet")}


def _dead_letters(data: Path) -> list[tuple[int, int, str]]:
    return [(d["kafka_partition"], d["kafka_offset"], d["reason"]) for d in read_dead_letters(data)]


def test_two_jobs_replay_a_topic_as_one_job_does(kafka_bootstrap, namespace, tmp_path):
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_LAKE": "parquet",  # two jobs write the files one job writes, byte for byte
    }
    settings = load_settings(env)
    ensure_topics(settings)
    sent = replay(Scenario(SPEC).records(), kafka_bootstrap, settings.topics.events, progress=False).sent

    def run(jobs: int) -> Result:
        root = tmp_path / f"jobs-{jobs}"
        args = ["replay", "--data", str(root / "data"), "--state", str(root / "state"), "--jobs", str(jobs)]
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        return result

    one, two = run(1), run(2)
    one_stats, two_stats = STATS.search(one.output.strip()), STATS.search(two.output.strip())
    assert one_stats and two_stats, (one.output, two.output)
    assert two_stats.groups() == one_stats.groups()
    assert int(one_stats[1].replace(",", "")) == sent

    one_files = _parquet_files(tmp_path / "jobs-1" / "data")
    two_files = _parquet_files(tmp_path / "jobs-2" / "data")
    # More than one commit for the busiest partition, so commit points are compared too.
    assert any(re.search(r"/p\d{3}-0+2-o", name) for name in one_files)
    assert sorted(two_files) == sorted(one_files)
    assert [name for name in one_files if two_files[name] != one_files[name]] == []

    letters = _dead_letters(tmp_path / "jobs-1" / "data")
    assert letters, "the scenario's invalid messages are dead-lettered"
    assert _dead_letters(tmp_path / "jobs-2" / "data") == letters
