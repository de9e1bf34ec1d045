"""A replay's source read in a child process, a batch ahead of the core.

Reading a topic costs about a sixth of a replay's time in one process (aiokafka parses
every record batch into Python objects, then each message becomes a ``SourceRecord``).
Here a child process reads while the core works on the previous batch, and hands each
batch over a pipe as plain tuples: pickled and unpickled for ~0.7 us a record, against
~3.6 us to fetch and parse it. Records and their order are exactly the source's, so a
replay writes the same lake with or without it.

The pipe's buffer is the only queue between the two: the child is at most a buffer
ahead, so memory stays bounded whatever the source's size. The buffer is grown to 1 MiB
(Linux's limit for any user) and batches go over in pieces of ``PIECE`` records (~0.5
MB): with the default 64 KiB buffer, every batch crossed in lock step, each 64 KiB
waiting for the other process to be scheduled (0.6 s of a 4.7 s replay, on a busy
machine). The child is forked when this process runs a single Python thread, which
costs no start-up; otherwise it is spawned (about half a second of imports). Native
threads may exist then (pyarrow's jemalloc and numpy's OpenBLAS start one each on import;
both libraries handle a fork), but nothing of ours: no store, DuckDB connection or pool
is open before the replay's reader is forked, and the child only reads the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from multiprocessing.connection import Connection

from streams.core.records import SourceRecord

log = logging.getLogger(__name__)

#: Records per message over the pipe: a piece fits the pipe's buffer with room to spare.
PIECE = 2000
#: The pipe buffer asked for (bytes); Linux grants up to /proc/sys/fs/pipe-max-size.
PIPE_BYTES = 2**20

Batches = AsyncIterator[list[SourceRecord]] | Iterable[list[SourceRecord]]


class SourceReaderDied(RuntimeError):
    """The child reading the source ended without saying why (killed, out of memory)."""


class Prefetch:
    """Iterate the batches of ``open_source()`` (called in the child), read there ahead.

    The child starts at construction, so it reads while the caller sets up; ``close``
    (or leaving the iteration early) stops it.
    """

    def __init__(self, open_source: Callable[[], Batches]) -> None:
        method = "fork" if _may_fork() else "spawn"
        context = multiprocessing.get_context(method)
        self._receive, send = context.Pipe(duplex=False)
        _grow(self._receive)
        # A forked child holds a copy of this end too: it lets go of it first, or its
        # writes would block for ever once this process is gone (killed) instead of failing.
        inherited = self._receive if method == "fork" else None
        self._child = context.Process(
            target=_read, args=(open_source, send, inherited), name="replay-source", daemon=True
        )
        self._child.start()
        send.close()  # the child's end: EOF here once the child is gone
        log.debug("replay source reader %s started (%s)", self._child.pid, method)

    def __iter__(self) -> Iterator[list[SourceRecord]]:
        make = SourceRecord._make
        try:
            while True:
                try:
                    kind, payload = pickle.loads(self._receive.recv_bytes())
                except (EOFError, OSError) as error:  # OSError: it ended in the middle of a piece
                    self._child.join(5)
                    if isinstance(error, OSError) and self._child.exitcode is None:
                        raise  # not the child's doing
                    raise SourceReaderDied(
                        f"the replay's source reader (pid {self._child.pid}) ended without a word, "
                        f"exit code {self._child.exitcode}: killed, or out of memory?"
                    ) from None
                if kind == "batch":
                    yield list(map(make, payload))
                elif kind == "end":
                    return
                else:
                    raise payload
        finally:
            self.close()

    def close(self) -> None:
        self._receive.close()
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()


def _grow(connection: Connection) -> None:
    """Ask for a larger pipe buffer; the default is kept where that is not possible."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or over the limit
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _may_fork() -> bool:
    """Fork only a process with one thread of any kind. Python's count misses the threads of
    native libraries (RocksDB, DuckDB, Arrow): a fork while one of them holds the allocator's
    lock leaves the child waiting on it for ever, and the replay waiting on the child."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() != 1:
        return False
    return _os_threads() == 1


def _os_threads() -> int:
    """Threads of this process as the kernel counts them (1 where that cannot be read: the
    Python count was already 1)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _read(open_source: Callable[[], Batches], connection: Connection, parents: Connection | None) -> None:
    """The child: every batch as a list of plain tuples, then "end" (or the exception)."""
    if parents is not None:  # forked: the parent's end, copied
        parents.close()
    try:
        batches = open_source()
        if hasattr(batches, "__aiter__"):
            asyncio.run(_send_all(batches, connection))  # type: ignore[arg-type]
        else:
            for batch in batches:  # type: ignore[union-attr]
                _send(connection, batch)
        connection.send_bytes(pickle.dumps(("end", None), pickle.HIGHEST_PROTOCOL))
    except BaseException as error:  # handed to the parent, which raises it
        try:
            message = pickle.dumps(("error", error), pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that does not pickle: its words
            failure = RuntimeError(f"the replay's source failed: {type(error).__name__}: {error}")
            message = pickle.dumps(("error", failure), pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):  # the parent is gone
            connection.send_bytes(message)
    finally:
        connection.close()


async def _send_all(batches: AsyncIterator[list[SourceRecord]], connection: Connection) -> None:
    async for batch in batches:
        _send(connection, batch)


def _send(connection: Connection, batch: list[SourceRecord]) -> None:
    # Plain tuples: a NamedTuple pickles its class with every item, three times slower.
    for start in range(0, len(batch), PIECE):
        piece = list(map(tuple, batch[start : start + PIECE]))
        connection.send_bytes(pickle.dumps(("batch", piece), pickle.HIGHEST_PROTOCOL))
