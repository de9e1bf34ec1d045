"""Shared by unit and integration tests: binaries from Debian packages (promtool, prometheus),
and no skipping in CI.

A test that needs such a binary skips, naming the package, when it is absent, unless
CROSSINGS_REQUIRE_SYSTEM_PACKAGES=1 (as .ci/run sets after installing them with
deploy/ci/system-packages.sh): then it fails, so CI cannot pass by skipping it.

CROSSINGS_TEST_NO_SKIP=1 (also set by .ci/run) turns every skip into a failure that says
why the test skipped: CI installs what each test needs and runs as root (tmpfs and bind
mounts), so a test that skips there is a test that did not run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest
from hypothesis import settings


def _need_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"{name} not found: install the Debian package {package!r} (deploy/ci/system-packages.sh {package})"
    )
    if os.environ.get("CROSSINGS_REQUIRE_SYSTEM_PACKAGES") == "1":
        pytest.fail(message + "; CROSSINGS_REQUIRE_SYSTEM_PACKAGES=1 says it must be there")
    pytest.skip(message)


@pytest.fixture(scope="session")
def need_binary() -> Callable[[str, str], str]:
    """``need_binary("promtool", "prometheus")`` -> its path, or skip/fail (see above)."""
    return _need_binary


NO_SKIP = "CROSSINGS_TEST_NO_SKIP"


def _no_skip() -> bool:
    return os.environ.get(NO_SKIP) == "1"


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped ({reason}), but {NO_SKIP}=1 (as in CI) says every test must run"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _no_skip() and not hasattr(report, "wasxfail"):
        _as_failure(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _no_skip():
        _as_failure(report)


# Time is measured in load_tests/, not here: on a shared 2-core machine one slow example
# says nothing about the code, so hypothesis' per-example deadline is off.
settings.register_profile("crossings", deadline=None)
settings.load_profile("crossings")
