"""A SQLite catalog in write-ahead-log mode, so that readers never lock writers out.

In SQLite's default (rollback journal) mode a reader's shared lock keeps a writer from
committing, and DuckDB's SQLite catalog sets no busy timeout: a writer meets "database is
locked" at once. A reader querying without pause (``crossings sql`` in a loop, a
dashboard) then made the lake's compaction fail every retry (measured:
``tests/unit/test_ducklake_upkeep.py``, the reader test, failed 1 run in 2 without WAL).
With WAL, readers read the last committed state while one writer writes. The mode is kept
in the file, so setting it once (when the lake is opened for writing) is enough.

A reader then needs write access to the catalog's folder (SQLite's ``-shm`` file), or the
``-shm`` and ``-wal`` files present.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def use_wal(catalog: str) -> None:
    """Put a ``sqlite:`` catalog (created if missing) in WAL mode; other catalogs untouched."""
    if not catalog.startswith("sqlite:"):
        return
    path = Path(catalog.removeprefix("sqlite:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
    finally:
        connection.close()
    if mode != "wal":
        raise RuntimeError(f"{path}: SQLite refused write-ahead logging (journal mode {mode})")
