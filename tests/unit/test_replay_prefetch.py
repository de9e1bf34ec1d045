"""``streams.replay.prefetch``: a replay's source read in a child process hands over the
same batches, in order, and a failure there (an exception, or the child killed) fails the
replay with what happened; leaving early stops the child."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest

from streams.core.records import SourceRecord
from streams.replay import prefetch
from streams.replay.prefetch import Prefetch, SourceReaderDied
from streams.replay.sources import ndjson_records

#: A fork is only safe in a process whose threads hold no lock: the suite's own process has
#: the busy threads of every native library an earlier test used (DuckDB, RocksDB, Arrow),
#: and a child forked while one of them held a lock waits for ever. The fork variants run in
#: a fresh interpreter of their own (the last test below), where the only other threads are
#: the idle ones DuckDB and Arrow start when imported.
FORK_RUN = os.environ.get("CROSSINGS_TEST_PREFETCH_FORK") == "1"
START_METHODS = ["fork"] if FORK_RUN else ["spawn"]


@pytest.fixture(params=START_METHODS)
def start_method(request, monkeypatch) -> str:
    monkeypatch.setattr(prefetch, "_may_fork", lambda: request.param == "fork")
    return request.param


@pytest.fixture()
def history(tmp_path) -> Path:
    lines = [
        b'{"checkpoint_id": "%s", "n": %d}' % (cp.encode(), n)
        for n in range(12_000)
        for cp in (("korday", "zhibek-zholy", "nur-zholy")[n % 3],)
    ]
    lines += [b"not json", b'{"checkpoint_id": 7}', b"\xff\xfe"]
    path = tmp_path / "history.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_the_child_hands_over_the_sources_batches_in_order(history, start_method):
    direct = [r for batch in ndjson_records([history], 4) for r in batch]
    ahead = list(Prefetch(partial(ndjson_records, [history], 4, {1, 3})))
    assert [r for batch in ahead for r in batch] == [r for r in direct if r.partition in {1, 3}]
    assert all(type(record) is SourceRecord for batch in ahead for record in batch)
    assert max(map(len, ahead)) == prefetch.PIECE, "batches cross in pieces"
    assert len(direct) == 12_003


def _async_source() -> AsyncIterator[list[SourceRecord]]:
    async def batches() -> AsyncIterator[list[SourceRecord]]:
        for start in range(0, 30, 7):
            yield [
                SourceRecord(2, o, 1000 + o, b"k", b"v%d" % o, o % 5 == 0) for o in range(start, start + 7)
            ]

    return batches()


def fork_test_an_async_source_is_read_in_the_child_too(monkeypatch):
    # Fork only: a closure cannot be sent to a spawned child.
    monkeypatch.setattr(prefetch, "_may_fork", lambda: True)
    records = [r for batch in Prefetch(_async_source) for r in batch]
    assert [r.offset for r in records] == list(range(35))
    assert [r.rekeyed for r in records] == [o % 5 == 0 for o in range(35)]


def test_a_failing_source_raises_its_own_error_in_the_replay(tmp_path, start_method):
    missing = tmp_path / "no-such-file.ndjson"
    with pytest.raises(FileNotFoundError, match="no-such-file"):
        list(Prefetch(partial(ndjson_records, [missing], 4)))


def _one_batch_then_hang() -> Iterator[list[SourceRecord]]:
    yield [SourceRecord(0, 0, 0, None, b"{}")]
    time.sleep(600)
    yield []


def fork_test_a_killed_reader_fails_the_replay_saying_so(monkeypatch):
    monkeypatch.setattr(prefetch, "_may_fork", lambda: True)
    ahead = Prefetch(_one_batch_then_hang)
    batches = iter(ahead)
    assert len(next(batches)) == 1
    os.kill(ahead._child.pid, signal.SIGKILL)
    with pytest.raises(SourceReaderDied, match="exit code -9"):
        next(batches)


def test_leaving_early_stops_the_reader(history, start_method):
    ahead = Prefetch(partial(ndjson_records, [history] * 50, 4))
    for _ in ahead:
        break
    assert not ahead._child.is_alive()


def _endless() -> Iterator[list[SourceRecord]]:
    while True:
        yield [SourceRecord(0, o, 0, None, b"x" * 200) for o in range(prefetch.PIECE)]


def test_a_reader_whose_replay_is_gone_ends_by_itself(start_method):
    # A forked child holds copies of what the parent had open, the pipe's reading end too:
    # unless it lets go of it, once the parent is gone (killed) its writes block for ever,
    # an orphan holding its source open.
    ahead = Prefetch(_endless)
    try:
        ahead._receive.close()  # what the parent's death does to its end
        ahead._child.join(10)
        assert ahead._child.exitcode is not None, "the reader blocks on a pipe nobody can read"
    finally:
        ahead.close()


def _pieces_larger_than_the_pipe() -> Iterator[list[SourceRecord]]:
    yield [SourceRecord(0, o, 0, None, b"%07d" % o * 150) for o in range(prefetch.PIECE)]  # ~2 MB
    time.sleep(600)


def fork_test_a_reader_killed_in_the_middle_of_a_piece_fails_the_replay_saying_so(monkeypatch):
    monkeypatch.setattr(prefetch, "_may_fork", lambda: True)
    ahead = Prefetch(_pieces_larger_than_the_pipe)
    waiting, previous = time.monotonic() + 20, -1
    while time.monotonic() < waiting:  # until the pipe is full: the child blocked mid-piece
        time.sleep(0.2)
        buffered = int.from_bytes(fcntl.ioctl(ahead._receive.fileno(), termios.FIONREAD, b"\0" * 4), "little")
        if buffered == previous > 0:
            break
        previous = buffered
    os.kill(ahead._child.pid, signal.SIGKILL)
    with pytest.raises(SourceReaderDied, match="exit code -9"):
        list(ahead)


def test_a_process_with_a_native_thread_is_not_forked():
    """Python's own count says one thread; the watchdog faulthandler starts is a second."""
    import faulthandler

    faulthandler.dump_traceback_later(3600)
    try:
        assert prefetch._os_threads() >= 2
        assert not prefetch._may_fork()
    finally:
        faulthandler.cancel_dump_traceback_later()


if FORK_RUN:
    # Tests that need a forked reader (a closure or a hang cannot be sent to a spawned one).
    test_an_async_source_is_read_in_the_child_too = fork_test_an_async_source_is_read_in_the_child_too
    test_a_killed_reader_fails_the_replay_saying_so = fork_test_a_killed_reader_fails_the_replay_saying_so
    test_a_reader_killed_in_the_middle_of_a_piece_fails_the_replay_saying_so = (
        fork_test_a_reader_killed_in_the_middle_of_a_piece_fails_the_replay_saying_so
    )
else:

    def test_the_forked_readers_pass_in_a_fresh_single_threaded_process():
        env = {**os.environ, "CROSSINGS_TEST_PREFETCH_FORK": "1"}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        # every fork variant and fork-only test ran there (none skipped or deselected)
        assert run.stdout.rstrip().splitlines()[-1].startswith("8 passed in"), run.stdout[-2000:]
