"""pytest imports test modules by file name ("prepend" mode, which the unit tests' shared
``samples`` module relies on): two test files with one name in different folders stop the
whole run at collection. Found twice in merged work; caught here, by name, instead."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_file_name():
    names = Counter(path.name for path in TESTS.rglob("*.py") if path.name != "__init__.py")
    assert {name: n for name, n in names.items() if n > 1 and name != "conftest.py"} == {}
