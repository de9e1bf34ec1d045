"""``--help`` and the plain listings, as a newcomer reads them (issue 20, finding 8): no
description cut with "...", no raw reStructuredText, a header on ``checkpoints list``, and
one meaning for ``--checkpoint`` (an id) across commands, the old backtest flags kept."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli.main import cli
from streams.domain.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def help_of(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", commands(), ids=lambda path: " ".join(path) or "crossings")
def test_no_help_is_cut_short_or_shows_markup(path: tuple[str, ...]) -> None:
    text = help_of(path)
    listed = text.partition("Commands:")[2]
    assert "..." not in listed, listed
    assert "``" not in text


def test_the_top_level_help_lists_every_command_with_a_whole_sentence() -> None:
    listed = help_of(()).partition("Commands:")[2].partition("\n\n")[0]
    for name in cli.commands:
        assert f"\n  {name} " in listed
    entries: list[str] = []
    for line in listed.strip("\n").splitlines():
        if line.startswith("   "):  # a description wrapped onto the next line
            entries[-1] += " " + line.strip()
        else:
            entries.append(line.strip())
    assert len(entries) == len(cli.commands)
    assert all(entry.endswith(".") and not entry.endswith("...") for entry in entries), entries


def test_checkpoints_list_has_a_header() -> None:
    result = CliRunner().invoke(cli, ["checkpoints", "list"])
    assert result.exit_code == 0
    header, *rows = result.output.splitlines()
    assert header.split()[:3] == ["id", "kind", "countries"]
    assert sorted(row.split()[0] for row in rows) == sorted(load_registry())


def test_backtest_names_columns_with_column_flags_and_keeps_the_old_ones(tmp_path: Path) -> None:
    text = help_of(("backtest",))
    assert "--checkpoint-column" in text and "--registry" in text
    assert "--checkpoint " not in text and "--checkpoints" not in text
    series = tmp_path / "series.csv"
    lines = ["day,post,way,n"]
    for day in range(1, 29):
        lines.append(f"2024-02-{day:02d},korday,entry,{1000 if day < 25 else 3000}")
    series.write_text("\n".join(lines) + "\n")
    new = [
        "--time-column",
        "day",
        "--checkpoint-column",
        "post",
        "--direction-column",
        "way",
        "--count-column",
        "n",
    ]
    old = ["--time", "day", "--checkpoint", "post", "--direction", "way", "--count", "n"]
    registry = ["--registry", str(ROOT / "schemas" / "checkpoints.json")]
    outputs = []
    for flags in (new + registry, [*old, "--checkpoints", registry[1]]):
        result = CliRunner().invoke(
            cli, ["backtest", str(series), *flags, "--format", "json", "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        outputs.append([json.loads(line) for line in result.stdout.splitlines()])
    assert outputs[0] == outputs[1] and outputs[0], outputs
