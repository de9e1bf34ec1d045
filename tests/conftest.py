"""Shared by unit and integration tests: binaries from Debian packages (promtool, prometheus).

Such a test skips, naming the package, when the binary is absent, unless
CROSSINGS_REQUIRE_SYSTEM_PACKAGES=1 (as .ci/run sets after installing them with
deploy/ci/system-packages.sh): then it fails, so CI cannot pass by skipping it.
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


# Time is measured in load_tests/, not here: on a shared 2-core machine one slow example
# says nothing about the code, so hypothesis' per-example deadline is off.
settings.register_profile("crossings", deadline=None)
settings.load_profile("crossings")
