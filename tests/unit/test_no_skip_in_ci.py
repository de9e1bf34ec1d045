"""CROSSINGS_TEST_NO_SKIP=1 (set by .ci/run) makes a skipped test fail, wherever it skips:
in the test, in a fixture, or for a whole module. Checked by running pytest on a small
test folder with this project's tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

SKIPPING = {
    "test_in_body.py": "import pytest\n\ndef test_it():\n    pytest.skip('no frobnicator here')\n",
    "test_in_fixture.py": (
        "import pytest\n\n@pytest.fixture\ndef needs():\n    pytest.skip('cannot mount here')\n\n"
        "def test_it(needs):\n    pass\n"
    ),
    "test_whole_module.py": "import pytest\n\npytest.skip('module away', allow_module_level=True)\n",
    "test_runs.py": "def test_it():\n    assert True\n",
}


def run_pytest(folder: Path, no_skip: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CROSSINGS_TEST_NO_SKIP"}
    if no_skip is not None:
        env["CROSSINGS_TEST_NO_SKIP"] = no_skip
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            str(folder),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copyfile(CONFTEST, tmp_path / "conftest.py")
    for name, text in SKIPPING.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_skips_stay_skips_outside_ci(folder):
    result = run_pytest(folder, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped" in result.stdout, result.stdout


def test_a_skip_in_a_test_or_fixture_fails_where_ci_says_no_skip(folder):
    (folder / "test_whole_module.py").unlink()
    result = run_pytest(folder, "1")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed, 1 passed, 1 error" in result.stdout, result.stdout
    for reason in ("no frobnicator here", "cannot mount here"):
        assert reason in output, output
    assert "CROSSINGS_TEST_NO_SKIP=1 (as in CI) says every test must run" in output


def test_a_skipped_module_stops_the_run_where_ci_says_no_skip(folder):
    result = run_pytest(folder, "1")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ERROR test_whole_module.py" in output and "module away" in output, output
    assert "CROSSINGS_TEST_NO_SKIP=1 (as in CI) says every test must run" in output
