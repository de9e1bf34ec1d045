"""``crossings report`` as a newcomer runs it: no empty tables that look like an answer.

Issue 20, findings 2 and 6: a ``--data`` folder that does not exist (or holds nothing) gave
four "(no rows)" and "agree (0 checkpoint-days, 0 crossings)", exit 0; a typo in
``--checkpoint`` gave "(no rows)"; rows a running worker had committed but not published
(staged) were simply missing from the alerts and events.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from load_tests.backtest import scenario_records
from load_tests.scenario import ScenarioSpec
from streams import query
from streams.cli.main import cli
from streams.core.engine import Engine, EngineConfig
from streams.domain.registry import load_registry
from streams.replay.outputs import LocalOutputs
from streams.sinks.parquet.sink import LakeSink

# Long enough for the Jibek Joly surge's first alerts.
SPEC = ScenarioSpec(days=30, other_scale=0.05, invalid_rate=0.0)


async def _write(root: Path, roll_seconds: float) -> None:
    records, _ = scenario_records(SPEC, 4)
    engine = Engine(
        EngineConfig(4, root / "state"),
        load_registry(),
        LakeSink(root / "data", roll_seconds=roll_seconds),
        LocalOutputs(),
    )
    for start in range(0, len(records), 20_000):
        await engine.process(records[start : start + 20_000])
        await engine.commit()
    await engine.close(list(engine.tasks))


@pytest.fixture(scope="module")
def staged_lake(tmp_path_factory) -> Path:
    """A lake as a running worker leaves it within the hour: counts written, the events and
    alerts staged (CROSSINGS_LAKE_ROLL_SECONDS=3600)."""
    root = tmp_path_factory.mktemp("live")
    asyncio.run(_write(root, 3600.0))
    return root / "data"


def report(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["report", *args], env=env)


def test_a_data_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    result = report("--data", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "no lake at" in result.output and "nowhere" in result.output
    assert "(no rows)" not in result.output


def test_sql_over_a_data_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["sql", "SELECT count(*) FROM events", "--data", str(tmp_path / "nowhere")]
    )
    assert result.exit_code == 1
    assert "no lake at" in result.output and "nowhere" in result.output


def test_the_default_lake_before_any_data_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = report(env={"CROSSINGS_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "holds no data yet" in result.output and "CROSSINGS_DATA_DIR" in result.output
    assert "agree" not in result.output


@pytest.mark.parametrize("what", ["daily", "nationality", "alerts", "reconcile", "all", "chart"])
def test_an_unknown_checkpoint_is_an_error_naming_the_nearest(staged_lake: Path, what: str) -> None:
    result = report(what, "--data", str(staged_lake), "--checkpoint", "zhibek-zoly")
    assert result.exit_code == 2, result.output
    assert "'zhibek-zoly' is not a checkpoint id" in result.output
    assert "nearest: zhibek-zholy" in result.output
    assert "(no rows)" not in result.output


def test_a_known_checkpoint_still_reports(staged_lake: Path) -> None:
    result = report("daily", "--data", str(staged_lake), "--checkpoint", "zhibek-zholy", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and {row["checkpoint_id"] for row in rows} == {"zhibek-zholy"}


def test_every_report_says_how_many_rows_are_staged_and_when(staged_lake: Path) -> None:
    counted = sum(row["total"] for row in query.daily_totals(staged_lake))
    staged_alerts = sum(1 for _ in (staged_lake / "_staging").rglob("alerts/*/*/*.parquet"))
    assert counted > 1000 and staged_alerts > 0
    assert query.events_count(staged_lake) == 0 and query.alerts(staged_lake) == []  # all staged
    for what in ("daily", "nationality", "alerts", "reconcile", "all"):
        result = report(what, "--data", str(staged_lake))
        assert result.exit_code == 0, result.output
        assert f"Not shown yet: {counted:,} events and " in result.output, what
        assert "CROSSINGS_LAKE_ROLL_SECONDS=3600 s" in result.output
        assert " UTC (in 6" in result.output or " UTC (in 5" in result.output  # ~60 min from now


def test_the_staged_note_keeps_json_on_stdout_clean(staged_lake: Path) -> None:
    result = report("alerts", "--data", str(staged_lake), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "Not shown yet" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_says_on_stderr_how_many_rows_are_staged(staged_lake: Path, fmt: str) -> None:
    counted = sum(row["total"] for row in query.daily_totals(staged_lake))
    result = CliRunner().invoke(
        cli, ["sql", "SELECT count(*) AS n FROM events", "--data", str(staged_lake), "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    assert "Not shown yet" not in result.stdout and "0" in result.stdout
    assert f"note: Not shown yet: {counted:,} events and " in result.stderr


def test_a_published_lake_has_no_staged_note(tmp_path: Path) -> None:
    asyncio.run(_write(tmp_path, 0.0))
    result = report("alerts", "--data", str(tmp_path / "data"))
    assert result.exit_code == 0
    assert "Not shown yet" not in result.output
    assert "(no rows)" not in result.output
    sql = CliRunner().invoke(cli, ["sql", "SELECT count(*) FROM events", "--data", str(tmp_path / "data")])
    assert sql.exit_code == 0 and "Not shown yet" not in sql.output
    # Counts and events agree: the verdict alone, not an empty table of differences after it.
    agreed = report("reconcile", "--data", str(tmp_path / "data"))
    assert len([line for line in agreed.output.splitlines() if line.strip()]) == 1
    assert agreed.output.startswith("Daily counts vs raw events: agree (")


def test_alert_summaries_wrap_under_their_row_to_the_width(tmp_path: Path) -> None:
    """Issue 20, finding 8: the demo's alert table had lines 438 characters wide."""
    asyncio.run(_write(tmp_path, 0.0))
    summaries = [row["summary"] for row in query.alerts(tmp_path / "data")]
    assert summaries and max(map(len, summaries)) > 150
    text = query.report_main(tmp_path / "data", "alerts", "table", None, None, None, 100)
    lines = text.splitlines()
    under = [line for line in lines if line.startswith("    ")]
    assert under and max(len(line) for line in under) <= 100
    assert max(len(line) for line in lines) < 140
    assert " ".join(line.strip() for line in under) == " ".join(" ".join(s.split()) for s in summaries)
    # Without a width (a pipe, a file): one line per alert, as before.
    assert (
        len(query.report_main(tmp_path / "data", "alerts", "table", None, None, None).splitlines())
        == len(summaries) + 3
    )


def test_a_chosen_parquet_lake_is_read_as_parquet_beside_a_ducklake_catalog(
    staged_lake: Path, tmp_path
) -> None:
    """CROSSINGS_LAKE=parquet names the lake: a DuckLake catalog in the same folder (a lake
    converted in place) does not take its place in any report, nor in ``crossings sql``."""
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(staged_lake, mixed)
    (mixed / "lake.sqlite").write_bytes(b"")  # a catalog beside the folders, not the lake chosen
    env = {"CROSSINGS_LAKE": "parquet"}
    counted = sum(row["total"] for row in query.daily_totals(staged_lake))
    daily = report("daily", "--data", str(mixed), "--format", "json", env=env)
    assert daily.exit_code == 0, daily.output
    assert sum(row["total"] for row in json.loads(daily.stdout)) == counted > 0
    reconciled = report("reconcile", "--data", str(mixed), "--format", "json", env=env)
    assert reconciled.exit_code == 0 and json.loads(reconciled.stdout)["agree"] is True, reconciled.output
    sql = CliRunner().invoke(
        cli,
        ["sql", "SELECT sum(count) AS n FROM daily_counts", "--data", str(mixed), "--format", "json"],
        env=env,
    )
    assert sql.exit_code == 0 and json.loads(sql.stdout) == [{"n": counted}], sql.output
