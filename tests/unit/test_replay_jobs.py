"""``crossings replay --jobs N``: partitions split across spawned processes write the lake,
dead letters and stats of a single-process replay, byte for byte; a failed job fails the
command, naming its partitions."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from load_tests.backtest import scenario_records
from load_tests.scenario import ScenarioSpec
from streams.cli.main import cli
from streams.core.processor import CoreConfig
from streams.domain.registry import load_registry
from streams.replay.jobs import Source, deal, replay_in_jobs
from streams.replay.run import read_dead_letters
from streams.replay.sources import ndjson_records
from streams.replay.state import claim

# Weeks enough for alerts; the scenario's invalid lines give dead letters.
SPEC = ScenarioSpec(days=36, other_scale=0.3)
PARTITIONS = 3
STATS = re.compile(r"replayed ([\d,]+) records in [\d.]+s \([\d,]+/s\): (.*)$", re.MULTILINE)


def parquet_files(data: Path) -> dict[str, bytes]:
    """Every Parquet file of a lake, by its path inside the lake."""
    return {path.relative_to(data).as_posix(): path.read_bytes() for path in data.rglob("*.parquet")}


def dead_letters(data: Path) -> list[tuple]:
    """(partition, offset, reason, value) of every dead letter of the lake, in source order."""
    return [
        (d["kafka_partition"], d["kafka_offset"], d["reason"], d["value"]) for d in read_dead_letters(data)
    ]


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    records, _ = scenario_records(SPEC, PARTITIONS)
    path = tmp_path_factory.mktemp("history") / "history.ndjson"
    with open(path, "wb") as out:
        for record in records:
            out.write(record.value.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n")
    return path


def _cli_replay(history: Path, root: Path, *args: str) -> Result:
    """A replay into the Parquet lake (two jobs write it as one does, file for file)."""
    env = {
        "CROSSINGS_HOME": str(root / "home"),
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_LAKE": "parquet",
    }
    command = ["replay", "--file", str(history), "--data", str(root / "data"), "--state", str(root / "state")]
    return CliRunner().invoke(cli, [*command, *args], env=env)


@pytest.fixture(scope="module")
def one_job(history, tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("one-job")
    result = _cli_replay(history, root, "--jobs", "1")
    assert result.exit_code == 0, result.output
    return root / "data", result.output


def test_two_jobs_write_the_lake_of_one_job_byte_for_byte(history, one_job, tmp_path):
    one_data, one_output = one_job
    result = _cli_replay(history, tmp_path, "--jobs", "2")
    assert result.exit_code == 0, result.output

    one_files, two_files = parquet_files(one_data), parquet_files(tmp_path / "data")
    assert any(name.startswith("alerts/") for name in one_files), "the scenario raises alerts"
    # Partition 1 holds most of the scenario: several commits, so several files a folder.
    assert any(re.search(r"/p001-0+3-o", name) for name in one_files)
    assert sorted(two_files) == sorted(one_files)
    assert [name for name in one_files if two_files[name] != one_files[name]] == []

    letters = dead_letters(one_data)
    assert letters, "the scenario's invalid lines are dead-lettered"
    assert dead_letters(tmp_path / "data") == letters

    one, two = STATS.search(one_output.strip()), STATS.search(result.output.strip())
    assert one and two, (one_output, result.output)
    assert two.groups() == one.groups()
    assert int(one[1].replace(",", "")) == sum(1 for line in history.read_bytes().splitlines() if line)


def test_the_dead_letters_of_several_jobs_are_each_once_in_the_lake(tmp_path, history, one_job):
    stats = replay_in_jobs(
        Source("ndjson", PARTITIONS, paths=(history,)),
        deal(list(range(PARTITIONS)), 3),
        data_dir=tmp_path / "data",
        state_dir=tmp_path / "state",
        core=CoreConfig(),
        registry=load_registry(),
        commit_every=20_000,
    )
    letters = dead_letters(tmp_path / "data")
    positions = [(partition, offset) for partition, offset, _, _ in letters]
    assert stats.dead_letters > 0 and len(positions) == stats.dead_letters == len(set(positions))
    assert len({p for p, _ in positions}) > 1, "letters of several jobs"
    # Other commit points (every 20,000 records): the same letters as one job's.
    assert letters == dead_letters(one_job[0])
    # The original bytes, whatever they were (not JSON, not UTF-8).
    lines = [line for line in history.read_bytes().splitlines() if line]
    assert {value for *_, value in letters} <= set(lines)


def test_a_replay_killed_and_run_again_writes_the_lake_of_one_run(history, one_job, tmp_path):
    # SIGKILL once some commits are durable and others are being written; the rerun goes on
    # from the state: every event, alert and dead letter once, the same files byte for byte.
    env = {
        **os.environ,
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_LAKE": "parquet",
    }
    command = [
        "replay",
        "--file",
        str(history),
        "--data",
        str(tmp_path / "data"),
        "--state",
        str(tmp_path / "state"),
    ]
    killed = subprocess.Popen([sys.executable, "-m", "streams.cli", *command, "--jobs", "1"], env=env)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "data").rglob("p001-*.parquet")):  # partition 1's first commit
        assert killed.poll() is None, "the replay ended before it could be killed"
        assert time.monotonic() < deadline, "no commit of partition 1 within 120 s"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    partial = parquet_files(tmp_path / "data")
    assert len(partial) < len(parquet_files(one_job[0])), "killed before the end"
    result = _cli_replay(history, tmp_path, "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert parquet_files(tmp_path / "data") == parquet_files(one_job[0])
    assert dead_letters(tmp_path / "data") == dead_letters(one_job[0])


def test_a_failed_job_fails_the_command_naming_its_partitions(history, tmp_path):
    # RocksDB cannot open partition 1's state: a file stands where its folder should be.
    claim(tmp_path / "state", tmp_path / "data")  # the state is this lake's
    (tmp_path / "state" / "partition-001").write_text("not a folder")
    result = _cli_replay(history, tmp_path, "--jobs", "2")
    assert result.exit_code == 1, result.output
    assert "1 replay job(s) failed" in result.output
    assert "partitions 1:" in result.output
    assert "replayed" not in result.output
    # The other job (partitions 0 and 2) finished: its files and dead letters are there.
    written = parquet_files(tmp_path / "data")
    assert written and not any("/p001" in name for name in written)
    letters = dead_letters(tmp_path / "data")
    assert letters and {partition for partition, *_ in letters} <= {0, 2}


def test_partitions_are_dealt_round_robin():
    assert deal([0, 1, 2, 3], 2) == [(0, 2), (1, 3)]
    assert deal([0, 1, 2], 2) == [(0, 2), (1,)]
    assert deal([0, 1], 5) == [(0,), (1,)]
    assert deal([0, 1, 2], 1) == [(0, 1, 2)]


def test_a_file_source_kept_to_some_partitions_keeps_whole_stream_offsets(history):
    everything = [r for batch in ndjson_records([history], PARTITIONS) for r in batch]
    kept = [r for batch in ndjson_records([history], PARTITIONS, keep={1}) for r in batch]
    assert kept == [r for r in everything if r.partition == 1]


def _longest(shares: list[tuple[int, ...]], sizes: dict[int, int]) -> int:
    return max(sum(sizes[p] for p in share) for share in shares)


@given(
    sizes=st.lists(st.integers(0, 10_000), min_size=1, max_size=7).map(lambda s: dict(enumerate(s))),
    jobs=st.integers(1, 4),
)
def test_partitions_dealt_by_size_keep_the_longest_job_near_the_best_split(sizes, jobs):
    shares = deal(list(sizes), jobs, sizes)
    assert sorted(p for share in shares for p in share) == sorted(sizes)
    assert len(shares) == min(jobs, len(sizes)) and all(shares)
    loads = [sum(sizes[p] for p in share) for share in shares]
    assert loads == sorted(loads, reverse=True), "heaviest share first (it runs in the parent)"
    # The best split, by brute force over every assignment of partitions to jobs.
    best = min(
        _longest([tuple(p for p, j in zip(sizes, chosen, strict=True) if j == k) for k in range(jobs)], sizes)
        for chosen in itertools.product(range(min(jobs, len(sizes))), repeat=len(sizes))
    )
    m = len(shares)
    assert _longest(shares, sizes) * 3 * m <= best * (4 * m - 1)  # Graham's LPT bound


def test_empty_partitions_are_dealt_to_every_job():
    assert deal([0, 1, 2], 2, {0: 0, 1: 0, 2: 0}) == [(0, 2), (1,)]
    assert deal([0, 1, 2, 3], 3, {0: 5, 1: 0, 2: 0, 3: 0}) == [(0,), (1, 3), (2,)]


def test_a_hot_partition_gets_a_job_of_its_own():
    assert deal([0, 1, 2, 3], 2, {0: 10, 1: 820, 2: 90, 3: 80}) == [(1,), (0, 2, 3)]


# -- the DuckLake lake (CROSSINGS_LAKE=ducklake) -------------------------------------------


def lake_content(data: Path, lake: str) -> dict[str, list[tuple]]:
    """Every row of the query views (``crossings sql``'s) over a lake, in a fixed order;
    daily counts summed per key (the Parquet lake keeps a file per partition)."""
    from streams.query.lake import open_lake
    from streams.settings.lake import load_lake

    queries = {
        "events": "SELECT * FROM events ORDER BY event_id",
        "daily_counts": "SELECT * EXCLUDE (count, as_of), sum(count) FROM daily_counts "
        "GROUP BY ALL ORDER BY ALL",
        "alerts": "SELECT * FROM alerts ORDER BY alert_id, status",
    }
    with open_lake(data, load_registry(), load_lake({"CROSSINGS_LAKE": lake})) as con:
        return {name: con.execute(sql).fetchall() for name, sql in queries.items()}


def _cli_replay_ducklake(history: Path, root: Path, *args: str) -> Result:
    env = {
        "CROSSINGS_HOME": str(root / "home"),
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_LAKE": "ducklake",
    }
    command = ["replay", "--file", str(history), "--data", str(root / "data"), "--state", str(root / "state")]
    return CliRunner().invoke(cli, [*command, *args], env=env)


def test_a_replay_into_ducklake_writes_the_rows_of_the_parquet_lake(history, one_job, tmp_path):
    from streams.settings.lake import load_lake

    result = _cli_replay_ducklake(history, tmp_path)
    assert result.exit_code == 0, result.output
    assert "lake: ducklake:sqlite:" in result.output
    expected = lake_content(one_job[0], "parquet")
    assert expected["alerts"] and expected["events"]
    assert lake_content(tmp_path / "data", "ducklake") == expected
    ducklake = load_lake({"CROSSINGS_LAKE": "ducklake"})
    letters = [
        (d["kafka_partition"], d["kafka_offset"], d["reason"], d["value"])
        for d in read_dead_letters(tmp_path / "data", ducklake)
    ]
    assert letters == dead_letters(one_job[0])
    # Two jobs write the SQLite catalog under the command's hold: the rows of one.
    two = _cli_replay_ducklake(history, tmp_path / "two", "--jobs", "2")
    assert two.exit_code == 0, two.output
    assert lake_content(tmp_path / "two" / "data", "ducklake") == expected
    assert [
        (d["kafka_partition"], d["kafka_offset"], d["reason"], d["value"])
        for d in read_dead_letters(tmp_path / "two" / "data", ducklake)
    ] == letters
    # A DuckDB-file catalog: one process opens it.
    env = {
        "CROSSINGS_HOME": str(tmp_path / "file" / "home"),
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_LAKE": f"ducklake:{tmp_path / 'file' / 'lake.ducklake'}",
    }
    command = ["replay", "--file", str(history), "--data", str(tmp_path / "file" / "data"), "--jobs", "2"]
    refused = CliRunner().invoke(cli, command, env=env)
    assert refused.exit_code == 2 and "DuckDB file" in refused.output, refused.output


def test_a_replay_into_ducklake_killed_and_run_again_writes_each_row_once(history, one_job, tmp_path):
    from streams.settings.lake import load_lake
    from streams.sinks.ducklake.read import attach

    env = {
        **os.environ,
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_LAKE": "ducklake",
    }
    command = [
        "replay",
        "--file",
        str(history),
        "--data",
        str(tmp_path / "data"),
        "--state",
        str(tmp_path / "state"),
    ]
    killed = subprocess.Popen([sys.executable, "-m", "streams.cli", *command, "--jobs", "1"], env=env)
    lake = load_lake(env)

    def partition_1_committed() -> bool:
        if not (tmp_path / "data" / "lake.sqlite").exists():
            return False
        try:
            con = attach(lake, tmp_path / "data")
        except Exception:  # the catalog is being created
            return False
        try:
            rows = con.execute("SELECT commit_seq FROM lake.commits WHERE kafka_partition = 1").fetchall()
        except Exception:
            return False
        finally:
            con.close()
        return bool(rows) and rows[0][0] >= 1

    deadline = time.monotonic() + 180
    while not partition_1_committed():
        assert killed.poll() is None, "the replay ended before it could be killed"
        assert time.monotonic() < deadline, "no commit of partition 1 within 180 s"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    expected = lake_content(one_job[0], "parquet")
    assert len(lake_content(tmp_path / "data", "ducklake")["events"]) < len(expected["events"])
    result = _cli_replay_ducklake(history, tmp_path, "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert lake_content(tmp_path / "data", "ducklake") == expected


def _tables_of(data: Path) -> dict[str, list[tuple]]:
    """Every row of each DuckLake table but its commit sequence (a replay stamps each commit's,
    a conversion the publishing commit's), in a fixed order."""
    from streams.settings.lake import load_lake
    from streams.sinks.ducklake.read import attach

    con = attach(load_lake({"CROSSINGS_LAKE": "ducklake"}), data)
    try:
        return {
            table: con.execute(f"SELECT * EXCLUDE (commit_seq) FROM lake.{table} ORDER BY ALL").fetchall()
            for table in ("events", "alerts", "daily_counts", "dead_letters")
        }
    finally:
        con.close()


def test_a_parquet_lake_converted_into_ducklake_holds_the_rows_a_ducklake_replay_writes(
    history, one_job, tmp_path
):
    env = {
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_PARTITIONS": str(PARTITIONS),
        "CROSSINGS_LAKE": "ducklake",
        "CROSSINGS_DATA_DIR": str(tmp_path / "converted"),
    }
    result = CliRunner().invoke(cli, ["lake", "convert", str(one_job[0])], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r"converted .*: events [\d,]+ rows \([\d,]+ files\)", result.output), result.output
    # Through the query views: the rows of the Parquet lake, dead letters included.
    assert lake_content(tmp_path / "converted", "ducklake") == lake_content(one_job[0], "parquet")
    # In the tables: the rows, days, checkpoints and source partitions the DuckLake sink
    # writes (a worker going on with the lake replaces its partitions' daily counts).
    replayed = _cli_replay_ducklake(history, tmp_path / "replayed")
    assert replayed.exit_code == 0, replayed.output
    expected = _tables_of(tmp_path / "replayed" / "data")
    assert all(expected.values())
    assert _tables_of(tmp_path / "converted") == expected
    # A second run would double every row: refused, saying why.
    again = CliRunner().invoke(cli, ["lake", "convert", str(one_job[0])], env=env)
    assert again.exit_code == 2 and "already holds rows" in again.output


def test_a_parquet_lake_with_rows_still_staged_is_not_converted(one_job, tmp_path):
    import shutil

    source = tmp_path / "parquet"
    shutil.copytree(one_job[0], source)
    staged = source / "_staging" / "p000" / "events" / "date=2024-03-01" / "checkpoint=korday"
    staged.mkdir(parents=True)
    next((source / "events").rglob("*.parquet")).rename(staged / "p000-0000000009-o1-2.parquet")
    env = {
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_LAKE": "ducklake",
        "CROSSINGS_DATA_DIR": str(tmp_path / "converted"),
    }
    result = CliRunner().invoke(cli, ["lake", "convert", str(source)], env=env)
    assert result.exit_code == 2 and "still staged" in result.output and "stop it" in result.output


def test_a_default_ducklake_lake_replays_as_the_parquet_lake_of_the_same_events(history, one_job, tmp_path):
    """``crossings replay --parquet DATA`` of the default lake (DuckLake, its rows kept in
    the catalog here: no file holds them) rebuilds the lake the same events rebuild from the
    Parquet lake's ``events/``, file for file."""
    home = {"CROSSINGS_HOME": str(tmp_path / "home"), "CROSSINGS_PARTITIONS": str(PARTITIONS)}
    ducklake = tmp_path / "ducklake"
    written = CliRunner().invoke(
        cli,
        ["replay", "--file", str(history), "--data", str(ducklake), "--state", str(tmp_path / "s0")],
        env={**home, "CROSSINGS_LAKE_INLINE_ROWS": "1000000"},  # the default lake, every row inlined
    )
    assert written.exit_code == 0, written.output
    assert (ducklake / "lake.sqlite").is_file() and not list(ducklake.rglob("*/events/**/*.parquet"))

    def rebuilt(source: Path, name: str) -> dict[str, bytes]:
        command = ["replay", "--parquet", str(source), "--data", str(tmp_path / name)]
        result = CliRunner().invoke(
            cli,
            [*command, "--state", str(tmp_path / f"{name}-state"), "--jobs", "2"],
            env={**home, "CROSSINGS_LAKE": "parquet"},
        )
        assert result.exit_code == 0, result.output
        return parquet_files(tmp_path / name)

    from_parquet = rebuilt(one_job[0], "from-parquet")  # a Parquet lake's data folder: its events/
    assert any(name.startswith("alerts/") for name in from_parquet)
    assert rebuilt(ducklake, "from-ducklake") == from_parquet

    mixed = CliRunner().invoke(
        cli,
        [
            "replay",
            "--parquet",
            str(ducklake),
            "--parquet",
            str(one_job[0] / "events"),
            "--data",
            str(tmp_path / "x"),
        ],
        env={**home, "CROSSINGS_LAKE": "parquet"},
    )
    assert mixed.exit_code == 2 and "replay it alone" in mixed.output
    # A file of a DuckLake lake alone is not its rows: the data folder is asked for.
    inside = tmp_path / "inside"
    inside.mkdir()
    shutil.copy(next((one_job[0] / "events").rglob("*.parquet")), inside / "ducklake-0001.parquet")
    refused = CliRunner().invoke(
        cli,
        ["replay", "--parquet", str(inside), "--data", str(tmp_path / "y")],
        env={**home, "CROSSINGS_LAKE": "parquet"},
    )
    assert refused.exit_code == 2 and "lake.sqlite" in refused.output
