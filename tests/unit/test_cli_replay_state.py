"""``crossings replay`` as the README runs it: a replay's state belongs to its lake.

Issue 20, finding 1: the README's two replays, into one folder and then another, used one
shared state, so the second skipped every record, wrote nothing and said "replayed".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from load_tests.backtest import scenario_records
from load_tests.scenario import ScenarioSpec
from streams import query
from streams.cli.main import cli

SPEC = ScenarioSpec(days=3, other_scale=0.1, invalid_rate=0.0)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    records, _ = scenario_records(SPEC, 4)
    path = tmp_path_factory.mktemp("history") / "history.ndjson"
    with open(path, "wb") as out:
        for record in records:
            out.write(record.value.replace(b"\n", b" ") + b"\n")
    return path


def run(home: Path, *args: str) -> Result:
    """A replay into the Parquet lake, whose files the README's second replay reads."""
    env = {"CROSSINGS_HOME": str(home), "CROSSINGS_LAKE": "parquet"}
    return CliRunner().invoke(cli, ["replay", "--jobs", "1", *args], env=env)


def events(lake: Path) -> int:
    return query.events_count(lake)


def test_replays_into_two_folders_each_write_their_lake(history: Path, tmp_path: Path) -> None:
    first = run(tmp_path, "--file", str(history), "--data", str(tmp_path / "A"))
    assert first.exit_code == 0, first.output
    written = events(tmp_path / "A")
    assert written > 1000
    # The README's second replay: the first lake's events into another folder.
    second = run(tmp_path, "--parquet", str(tmp_path / "A" / "events"), "--data", str(tmp_path / "B"))
    assert second.exit_code == 0, second.output
    assert events(tmp_path / "B") == written
    assert f"{written:,} counted" in second.output
    # ... and a third, from the file again, into a third folder.
    third = run(tmp_path, "--file", str(history), "--data", str(tmp_path / "C"))
    assert third.exit_code == 0, third.output
    assert events(tmp_path / "C") == written


def test_a_state_of_another_lake_is_refused_naming_both(history: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert (
        run(tmp_path, "--file", str(history), "--data", str(tmp_path / "A"), "--state", str(state)).exit_code
        == 0
    )
    refused = run(tmp_path, "--file", str(history), "--data", str(tmp_path / "B"), "--state", str(state))
    assert refused.exit_code == 2
    assert "belongs to the lake" in refused.output
    assert str(tmp_path / "A") in refused.output and str(tmp_path / "B") in refused.output
    assert not (tmp_path / "B" / "events").exists()


def test_a_state_without_its_lake_is_refused(history: Path, tmp_path: Path) -> None:
    """A state folder as older versions left it (no record of its lake) is not trusted."""
    (tmp_path / "old-state" / "partition-000").mkdir(parents=True)
    refused = run(
        tmp_path,
        "--file",
        str(history),
        "--data",
        str(tmp_path / "B"),
        "--state",
        str(tmp_path / "old-state"),
    )
    assert refused.exit_code == 2
    assert "does not say which lake" in refused.output


def test_a_rerun_into_the_same_lake_says_nothing_new(history: Path, tmp_path: Path) -> None:
    lake = tmp_path / "A"
    assert run(tmp_path, "--file", str(history), "--data", str(lake)).exit_code == 0
    again = run(tmp_path, "--file", str(history), "--data", str(lake))
    assert again.exit_code == 0, again.output
    assert "nothing new" in again.output and "replayed" not in again.output


def test_a_state_whose_lake_lost_its_files_is_an_error(history: Path, tmp_path: Path) -> None:
    lake = tmp_path / "A"
    assert run(tmp_path, "--file", str(history), "--data", str(lake)).exit_code == 0
    for path in (lake / "events").rglob("*.parquet"):
        path.unlink()
    again = run(tmp_path, "--file", str(history), "--data", str(lake))
    assert again.exit_code == 1
    assert "nothing written" in again.output


def test_nothing_counted_is_not_reported_as_success(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ndjson"
    junk.write_text('{"not": "an event"}\nnot json at all\n')
    result = run(tmp_path, "--file", str(junk), "--data", str(tmp_path / "A"))
    assert result.exit_code == 1
    assert "no events counted" in result.output and "2 dead letters" in result.output
