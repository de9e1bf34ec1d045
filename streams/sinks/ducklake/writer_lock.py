"""One writing process per SQLite catalog: a second worker or replay is refused at start.

SQLite serialises writers with a lock on the catalog file, so two processes writing one
catalog do not corrupt it, but a stalled one (a worker stopped by the OS or a debugger
mid-transaction) holds every other writer still, and SQLite's locks do not hold over NFS
at all. A lake shared by several workers belongs on a PostgreSQL catalog; this lock makes
that a clear error instead of a stall. It is a POSIX record lock on ``<catalog>.writer``:
the kernel drops it when its process dies, SIGKILL included, so it never goes stale, and
a forked child does not inherit it. Sinks in one process share it (tests put a writer and
its zombie in one process; the worker's upkeep has its own connection), and so do the
child processes a holder starts inside :func:`shared_with_children` (a replay's jobs, one
command writing its partitions in parallel: SQLite serialises their commits, and the sink
retries one that meets the other's lock).

Readers (``crossings report``, ``crossings sql``) and ``crossings lake compact|expire``
take no lock: SQLite lets them run beside the writer.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: How long a writer waits for the lock before it gives up: covers a writer that is
#: still exiting when its successor starts.
WAIT_SECONDS = 5.0


#: Set by a holder for the children it starts (:func:`shared_with_children`): its pid.
SHARED_WITH_CHILDREN = "CROSSINGS_LAKE_WRITER_PARENT"


class CatalogTaken(RuntimeError):
    """Another process writes the lake's SQLite catalog."""


class CatalogUnlockable(RuntimeError):
    """The catalog's folder cannot hold the lock (read-only, or a filesystem without locks,
    on which SQLite's own locks do not hold either)."""


@dataclass
class _Held:
    fd: int
    holders: int


#: This process's holds, by the lock file's (device, inode): one file reached under two
#: names (a bind mount) is one hold, never a second descriptor, whose closing would drop
#: the lock for both.
_HELD: dict[tuple[int, int], _Held] = {}
_GUARD = threading.Lock()


def lock_file(catalog: str) -> Path | None:
    """The lock file of a SQLite catalog (``sqlite:PATH``); None for any other catalog
    (PostgreSQL takes many writers; DuckDB locks its own file)."""
    if not catalog.startswith("sqlite:"):
        return None
    path = Path(catalog.removeprefix("sqlite:")).resolve()
    return path.with_name(path.name + ".writer")


class WriterLock:
    """This process's hold on a catalog's lock; :meth:`release` once (idempotent)."""

    def __init__(self, key: tuple[int, int] | None) -> None:
        self.key = key
        self._released = key is None

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        assert self.key is not None
        with _GUARD:
            held = _HELD[self.key]
            held.holders -= 1
            if held.holders == 0:
                del _HELD[self.key]
                os.close(held.fd)  # drops the lock: no other fd of this file is open here


def take(catalog: str, *, wait: float = WAIT_SECONDS) -> WriterLock:
    """Hold the catalog's writer lock for this process, waiting up to ``wait`` seconds;
    raises :class:`CatalogTaken` with what to do if another process keeps it."""
    path = lock_file(catalog)
    if path is None:
        return WriterLock(None)
    with _GUARD:
        key = _key(path)
        held = _HELD.get(key) if key is not None else None
        if held is not None:
            held.holders += 1
            return WriterLock(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise CatalogUnlockable(_unlockable(path, error)) from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):  # no locks here at all
                    os.close(fd)
                    raise CatalogUnlockable(_unlockable(path, error)) from None
                if _parent_shares(fd):
                    os.close(fd)  # we hold no lock on it: closing drops nothing
                    return WriterLock(None)  # the parent's hold covers this process
                if time.monotonic() >= deadline:
                    owner = _owner(fd)
                    os.close(fd)  # we hold no lock on it: closing drops nothing
                    raise CatalogTaken(_refusal(catalog, owner)) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        stat = os.fstat(fd)
        key = (stat.st_dev, stat.st_ino)
        _HELD[key] = _Held(fd, 1)
        return WriterLock(key)


def _key(path: Path) -> tuple[int, int] | None:
    """The lock file's (device, inode), read without opening it; None if it is missing."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


@contextmanager
def shared_with_children() -> Iterator[None]:
    """Child processes started in this block write the catalogs this process holds (its
    hold covers them: they take none of their own, and it outlives them)."""
    previous = os.environ.get(SHARED_WITH_CHILDREN)
    os.environ[SHARED_WITH_CHILDREN] = str(os.getpid())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SHARED_WITH_CHILDREN, None)
        else:
            os.environ[SHARED_WITH_CHILDREN] = previous


def _parent_shares(fd: int) -> bool:
    """The lock is this process's parent's, and the parent shares it with its children."""
    parent = str(os.getppid())
    return os.environ.get(SHARED_WITH_CHILDREN) == parent and _owner(fd) == parent


def _owner(fd: int) -> str:
    """The holder's pid, as it wrote it (a courtesy for the message: the lock is the truth)."""
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def _unlockable(path: Path, error: OSError) -> str:
    return (
        f"cannot lock {path} ({os.strerror(error.errno or 0) or error}): the lake's SQLite catalog "
        "needs a writable folder on a filesystem with locks (SQLite's own do not hold without "
        "them). Put CROSSINGS_DATA_DIR on a local disk, or use a PostgreSQL catalog "
        "(CROSSINGS_LAKE=ducklake:postgres:...)"
    )


def _refusal(catalog: str, owner: str) -> str:
    who = f"process {owner}" if owner else "another process"
    return (
        f"the lake's catalog {catalog.removeprefix('sqlite:')} is being written by {who} "
        "(a worker or a replay of this data folder): a SQLite catalog takes one writing "
        "process. Stop that process, give this one its own CROSSINGS_DATA_DIR, or for "
        "several workers on one lake use a PostgreSQL catalog "
        "(CROSSINGS_LAKE=ducklake:postgres:...)"
    )
