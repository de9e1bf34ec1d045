"""A misspelt ``CROSSINGS_*`` variable is warned about, naming the closest setting.

Issue 20, finding 4: ``CROSSINGS_COMIT_INTERVAL=3`` was ignored in silence.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import load_settings, names, unknown_variables
from streams.settings.paths import PROJECT_ROOT


def crossings(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["checkpoints", "list"],  # reads the settings
        ["checkpoints", "validate", str(PROJECT_ROOT / "schemas" / "checkpoints.json")],  # reads none
        ["report", "--data", "/nonexistent"],  # stops with an error
    ],
)
def test_every_command_warns_about_a_misspelt_setting(command: list[str], tmp_path: Path) -> None:
    result = crossings(*command, env={"CROSSINGS_HOME": str(tmp_path), "CROSSINGS_COMIT_INTERVAL": "3"})
    warnings = [line for line in result.stderr.splitlines() if "CROSSINGS_COMIT_INTERVAL" in line]
    assert len(warnings) == 1, result.stderr
    assert "WARNING" in warnings[0] and "did you mean CROSSINGS_COMMIT_INTERVAL?" in warnings[0]


def test_closest_names_and_unknown_ones() -> None:
    env = {
        "CROSSINGS_WEBPORT": "1",
        "CROSSINGS_DATADIR": "x",
        "CROSSINGS_KAFKA_SASL_PASWORD": "hunter2",
        "CROSSINGS_FOO": "1",
        "CROSSINGS_COMMIT_INTERVAL": "5",
        "CROSSINGS_TEST_KAFKA_PORT": "19092",
        "PATH": "/bin",
    }
    assert unknown_variables(env) == [
        ("CROSSINGS_DATADIR", "CROSSINGS_DATA_DIR"),
        ("CROSSINGS_FOO", None),
        ("CROSSINGS_KAFKA_SASL_PASWORD", "CROSSINGS_KAFKA_SASL_PASSWORD"),
        ("CROSSINGS_WEBPORT", "CROSSINGS_WEB_PORT"),
    ]


def test_load_settings_warns_once_and_never_shows_the_value(caplog, monkeypatch) -> None:
    monkeypatch.setattr(names, "_warned", set())
    env = {"CROSSINGS_KAFKA_SASL_PASWORD": "hunter2"}
    with caplog.at_level(logging.WARNING):
        load_settings(env)
        load_settings(env)
    lines = [r.getMessage() for r in caplog.records if "PASWORD" in r.getMessage()]
    assert len(lines) == 1 and "CROSSINGS_KAFKA_SASL_PASSWORD" in lines[0]
    assert "hunter2" not in caplog.text


def test_every_variable_the_project_names_is_known() -> None:
    """A setting added to the code and not to ``names.SETTINGS`` would be warned about."""
    pattern = re.compile(r"CROSSINGS_[A-Z0-9_]*[A-Z0-9]\b")
    sources = [
        *PROJECT_ROOT.glob("streams/**/*.py"),
        *PROJECT_ROOT.glob("load_tests/**/*.py"),
        *PROJECT_ROOT.glob("deploy/**/*"),
        PROJECT_ROOT / "README.md",
    ]
    found = {
        name
        for path in sources
        if path.is_file()
        for name in pattern.findall(path.read_text(encoding="utf-8", errors="replace"))
    }
    found.discard("CROSSINGS_COMIT_INTERVAL")  # the typo the README and names.py show
    assert len(found) > 30
    assert [name for name, _ in unknown_variables(dict.fromkeys(found, ""))] == []
