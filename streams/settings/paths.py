"""Where the project's files are: the checkout, or the working folder once installed."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def is_checkout(root: Path = PROJECT_ROOT) -> bool:
    """True when this package runs from the project's source tree (``make setup``'s editable
    install), False when pip installed it (then ``root`` is site-packages, not ours to write)."""
    return (root / "pyproject.toml").is_file() and (root / "streams" / "settings" / "paths.py").is_file()


def default_home(cwd: Path | None = None) -> Path:
    """Where state goes without ``CROSSINGS_HOME``: ``.local/`` of the checkout, so ``make``
    targets and the tests agree; otherwise ``./.crossings`` under the working folder, never
    inside the installed package."""
    if is_checkout():
        return PROJECT_ROOT / ".local"
    return (cwd or Path.cwd()) / ".crossings"


DEFAULT_LOCAL_DIR = PROJECT_ROOT / ".local"
