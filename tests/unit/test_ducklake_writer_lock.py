"""One writing process per SQLite catalog (issue 19): a second worker, replay or convert
of the same data folder stops at start with what to do, instead of stalling behind (or
being stalled by) the first; a killed writer leaves no stale lock."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.settings.lake import LakeConfig
from streams.sinks.ducklake import writer_lock
from streams.sinks.ducklake.sink import DuckLakeSink, location_of

HOLD = textwrap.dedent(
    """
    import os, sys, time
    from streams.sinks.ducklake.writer_lock import take
    take(sys.argv[1])
    print(os.getpid(), flush=True)
    time.sleep(600)
    """
)
TRY = textwrap.dedent(
    """
    import sys
    from streams.sinks.ducklake.writer_lock import CatalogTaken, take
    try:
        take(sys.argv[1], wait=0)
    except CatalogTaken:
        sys.exit(3)
    """
)


def catalog_of(data_dir: Path) -> str:
    return LakeConfig().catalog_for(data_dir)


@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding the default lake's writer lock: (its pid, the catalog)."""
    catalog = catalog_of(tmp_path / "data")
    process = subprocess.Popen([sys.executable, "-c", HOLD, catalog], stdout=subprocess.PIPE, text=True)
    assert int(process.stdout.readline()) == process.pid  # it holds the lock now
    yield process, catalog
    process.kill()
    process.wait()


def another_process_may_write(catalog: str) -> bool:
    result = subprocess.run([sys.executable, "-c", TRY, catalog], timeout=60)
    assert result.returncode in (0, 3), result
    return result.returncode == 0


def test_a_second_writer_is_refused_naming_the_holder_and_the_fix(holder) -> None:
    process, catalog = holder
    with pytest.raises(writer_lock.CatalogTaken) as refused:
        writer_lock.take(catalog, wait=0.3)
    message = str(refused.value)
    assert f"process {process.pid}" in message
    assert catalog.removeprefix("sqlite:") in message
    assert "PostgreSQL" in message and "CROSSINGS_DATA_DIR" in message


def test_a_killed_writer_leaves_no_stale_lock(holder) -> None:
    process, catalog = holder
    assert not another_process_may_write(catalog)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert Path(writer_lock.lock_file(catalog)).exists()  # the file stays; the lock does not
    lock = writer_lock.take(catalog, wait=1)
    lock.release()


def test_writers_of_one_process_share_the_lock_until_the_last_lets_go(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path / "data")
    first = writer_lock.take(catalog, wait=0)
    second = writer_lock.take(catalog, wait=0)  # a zombie and its successor in one process
    assert not another_process_may_write(catalog)
    first.release()
    first.release()  # idempotent: does not let go of the second's hold
    assert not another_process_may_write(catalog)
    second.release()
    assert another_process_may_write(catalog)


def test_the_sink_holds_the_lock_from_opening_to_closing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sink = DuckLakeSink(location_of(LakeConfig(), data))
    try:
        assert not another_process_may_write(catalog_of(data))
    finally:
        sink.close()
    assert another_process_may_write(catalog_of(data))


def test_the_sink_is_refused_while_another_process_writes(holder, tmp_path: Path) -> None:
    process, _ = holder
    with pytest.raises(writer_lock.CatalogTaken, match=f"process {process.pid}"):
        DuckLakeSink(location_of(LakeConfig(), tmp_path / "data"))
    assert not (tmp_path / "data" / "lake.sqlite").exists()  # refused before it opened anything


@pytest.mark.parametrize(
    "catalog", ["postgres:host=db dbname=lake", "/srv/lake.ducklake", "duckdb:/srv/lake.duckdb"]
)
def test_catalogs_that_take_many_writers_or_lock_themselves_need_none(catalog: str) -> None:
    assert writer_lock.lock_file(catalog) is None
    writer_lock.take(catalog, wait=0).release()


def test_a_second_worker_of_the_data_folder_stops_at_start_saying_what_to_do(holder, tmp_path: Path) -> None:
    process, _ = holder
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CROSSINGS_LAKE")},
        "CROSSINGS_HOME": str(tmp_path),
        "CROSSINGS_DATA_DIR": str(tmp_path / "data"),
        # No broker there: the lake is checked before Kafka is asked anything.
        "CROSSINGS_KAFKA_PORT": str(nobody),
    }
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"process {process.pid}" in lines[0] and "PostgreSQL" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("lockf", OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))),  # a filesystem without locks
        ("open", OSError(errno.EROFS, os.strerror(errno.EROFS))),  # a read-only folder
    ],
)
def test_a_folder_that_cannot_hold_the_lock_says_so_at_once(tmp_path: Path, monkeypatch, call, error) -> None:
    """Not "written by another process" after the wait: no process holds it, and SQLite's
    own locks would fail there too."""

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(writer_lock.fcntl if call == "lockf" else writer_lock.os, call, fail)
    started = time.monotonic()
    with pytest.raises(writer_lock.CatalogUnlockable) as refused:
        writer_lock.take(catalog_of(tmp_path / "data"), wait=5)
    assert time.monotonic() - started < 1
    message = str(refused.value)
    assert os.strerror(error.errno) in message and "another process" not in message
    assert "PostgreSQL" in message and "CROSSINGS_DATA_DIR" in message


def test_the_children_a_holder_starts_sharing_its_hold_write_under_it(tmp_path: Path) -> None:
    """A replay's jobs (``replay/jobs.py``): processes the holder starts inside
    ``shared_with_children`` write under its hold; nobody else does, not even their own
    children, and not once the block has ended."""
    catalog = catalog_of(tmp_path / "data")
    grandchild = (
        "import subprocess, sys; "
        f"sys.exit(subprocess.run([sys.executable, '-c', {TRY!r}, {catalog!r}]).returncode)"
    )
    hold = writer_lock.take(catalog)
    try:
        assert not another_process_may_write(catalog)
        with writer_lock.shared_with_children():
            assert another_process_may_write(catalog)
            assert subprocess.run([sys.executable, "-c", grandchild], timeout=60).returncode == 3
        assert not another_process_may_write(catalog)
        assert writer_lock.SHARED_WITH_CHILDREN not in os.environ
    finally:
        hold.release()
    assert another_process_may_write(catalog)  # released: free for anyone


def test_one_lock_file_reached_under_two_names_is_one_hold(tmp_path: Path) -> None:
    """Two catalogs whose lock files are one file (a bind mount; here a hard link): the
    second take joins the first hold. A second descriptor would have taken the lock again
    (a process's POSIX locks are its own) and dropped it for both when closed."""
    first, second = catalog_of(tmp_path / "a"), catalog_of(tmp_path / "b")
    hold = writer_lock.take(first)
    (tmp_path / "b").mkdir()
    os.link(writer_lock.lock_file(first), writer_lock.lock_file(second))
    try:
        writer_lock.take(second).release()
        assert not another_process_may_write(first)
    finally:
        hold.release()
    assert another_process_may_write(first)


def test_a_command_run_in_process_lets_the_catalog_go_when_it_ends(tmp_path: Path) -> None:
    """``crossings replay`` holds the lock until the command ends, not until the process
    exits: run in-process (a test, a notebook), it leaves the catalog free for others."""
    from click.testing import CliRunner

    from streams.cli.main import cli

    source = tmp_path / "history.ndjson"
    source.write_text("not json\n")  # a replay that writes one dead letter (and says no event)
    env = {"CROSSINGS_HOME": str(tmp_path / "home"), "CROSSINGS_PARTITIONS": "1"}
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["replay", "--file", str(source), "--data", str(data)], env=env)
    assert "0 counted, 0 duplicates, 1 dead letters" in result.output, result.output
    assert another_process_may_write(catalog_of(data))
