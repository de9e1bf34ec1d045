"""The README's worked `crossings backtest` example runs on shipped data and prints what
the README shows: the exact command, from the repository root, the exact output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from streams.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _worked_example() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Worked example on shipped data") :]
    found = re.search(r"```sh\n(.+?)\n```\n```\n(.*?)```", section, re.S)
    assert found, "the worked example's command and output blocks"
    return found.group(1), found.group(2)


def test_the_readme_worked_example_is_shipped_and_prints_what_the_readme_shows(monkeypatch):
    command, shown = _worked_example()
    words = shlex.split(command)
    assert words[:2] == [".venv/bin/crossings", "backtest"]
    data = ROOT / words[2]
    assert data.is_file() and data.stat().st_size < 200_000, "shipped in the repository, small"
    assert data.is_relative_to(ROOT / "examples")
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, words[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == shown
    # What the example is for: the 2020 restrictions are a drop at both ports.
    assert "2020-03-01  Buffalo Niagara Falls 0901  entry      drop" in shown
    assert "2020-04-01  San Ysidro 2504             entry      drop" in shown
