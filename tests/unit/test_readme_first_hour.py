"""The README's "Running it yourself" as a newcomer follows it (issue 20, finding 9): it
says what ``crossings topics`` creates (five topics, not three), how long each command that
takes long runs, and when live rows become visible."""

from __future__ import annotations

import re
from pathlib import Path

from streams.ops.topics import topic_specs
from streams.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
NUMBERS = {"three": 3, "four": 4, "five": 5, "six": 6}


def section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## Running it yourself", 1)[1].split("\n## ", 1)[0]


def commands() -> dict[str, str]:
    """The walk-through's commands (up to the first '#'), each with its comment."""
    block = section().split("```sh\n", 1)[1].split("```", 1)[0]
    return {
        line.partition("#")[0].strip(): line.partition("#")[2].strip()
        for line in block.splitlines()
        if line.strip()
    }


def test_topics_says_how_many_it_creates() -> None:
    comment = commands()[".venv/bin/crossings topics"]
    said = re.search(r"\b(three|four|five|six)\b topics", comment)
    assert said, comment
    assert NUMBERS[said.group(1)] == len(topic_specs(Settings()))


def test_every_long_command_says_how_long() -> None:
    duration = re.compile(r"~?\d+(\.\d+)?(-\d+)? ?(s|min)\b|until Ctrl-C|a few (seconds|minutes)")
    for command, comment in commands().items():
        if "--format json" not in command:  # a report again, with options
            assert duration.search(comment), (command, comment)
    replay = next(c for cmd, c in commands().items() if "load_tests.scenario replay" in cmd)
    assert "8.5 min at 500/s" in replay


def test_it_says_when_live_rows_become_visible() -> None:
    text = " ".join(section().split())
    assert "When live rows become visible" in text
    for setting in ("CROSSINGS_COMMIT_INTERVAL", "CROSSINGS_LAKE_ROLL_SECONDS"):
        assert setting in text.split("When live rows become visible", 1)[1]
