"""A throwaway PostgreSQL cluster from Debian's packages, as the lake's catalog server.

Several hosts writing one DuckLake share its catalog in PostgreSQL. Tests and a single
machine get one the way they get the broker: ``initdb`` once into ``DIR/data`` (trust
authentication, 127.0.0.1 only, no Unix socket outside ``DIR``), ``pg_ctl start`` on
``port``, a database named ``lake``. The binaries come from the Debian package
``postgresql`` (``/usr/lib/postgresql/<major>/bin``); root runs them as the ``postgres``
user, who then owns ``DIR``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streams.ops.lakestore.process import (
    HOST,
    ServiceError,
    ServiceStatus,
    accepts,
    check_ports,
    read_pid,
    running_pid,
    stop,
    tail,
    wait_until,
)

DEFAULT_PORT = 15432
DEFAULT_DATABASE = "lake"
USER = "crossings"
PACKAGE = "postgresql"


@dataclass(frozen=True)
class Catalog:
    host: str
    port: int
    database: str
    user: str

    @property
    def libpq(self) -> str:
        """The connection string DuckDB's postgres extension and psql take."""
        return f"host={self.host} port={self.port} dbname={self.database} user={self.user}"

    def create_database(self, name: str) -> Catalog:
        """A new, empty database ``name`` on this server (a test's or a run's own catalog)."""
        subprocess.run(
            [str(bin_dir() / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name],
            check=True,
            timeout=60,
        )
        return replace(self, database=name)


def bin_dir() -> Path:
    """The newest PostgreSQL server binaries Debian installed (or ``pg_ctl``'s on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    raise ServiceError(
        f"PostgreSQL server binaries (pg_ctl, initdb) not found: install the Debian package {PACKAGE!r} "
        f"(deploy/ci/system-packages.sh {PACKAGE})"
    )


def _as_owner(directory: Path) -> Callable[[], None] | None:
    """initdb refuses to run as root: drop to ``postgres`` for the server's processes."""
    if os.geteuid() != 0:
        return None
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceError(f"running as root needs the 'postgres' user (Debian package {PACKAGE!r})") from exc
    for parent in directory.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise ServiceError(
                f"PostgreSQL runs as the 'postgres' user, who cannot enter {parent} (mode "
                f"{os.stat(parent).st_mode & 0o777:o}): put its directory under /tmp or another folder "
                "others may traverse"
            )
    for folder, _dirs, files in os.walk(directory):
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        for name in files:
            os.chown(Path(folder) / name, owner.pw_uid, owner.pw_gid)

    def demote() -> None:
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)

    return demote


def _run(cmd: list[str], directory: Path, what: str, timeout: float = 120.0) -> None:
    done = subprocess.run(
        cmd,
        cwd=directory,
        preexec_fn=_as_owner(directory),  # single-threaded callers: the CLI, fixtures
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise ServiceError(
            f"{what} failed (exit {done.returncode}): {output}\n{tail(directory / 'postgres.log')}"
        )


def status(directory: Path, port: int = DEFAULT_PORT) -> ServiceStatus:
    pid = running_pid(Path(directory) / "data" / "postmaster.pid", "postgres")
    address = f"{HOST}:{port}"
    if pid is None:
        return ServiceStatus(False, None, address, f"not running (data in {Path(directory) / 'data'})")
    return ServiceStatus(True, pid, address, f"running (pid {pid}) on {address}")


def up(
    directory: Path, port: int = DEFAULT_PORT, *, database: str = DEFAULT_DATABASE, timeout: float = 60.0
) -> Catalog:
    """Ensure this directory's cluster runs on ``port`` with ``database``; return how to reach it."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    binaries = bin_dir()
    data = directory / "data"
    catalog = Catalog(HOST, port, database, USER)
    if running_pid(data / "postmaster.pid", "postgres") is None:
        check_ports([port], "PostgreSQL")
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)
            _run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                directory,
                "initdb",
            )
        options = f"-c listen_addresses={HOST} -p {port} -k {directory} -c fsync=on"
        _run(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(directory / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            directory,
            "pg_ctl start",
            timeout=timeout + 10,
        )
    wait_until(lambda: accepts(port), lambda: None, timeout, f"PostgreSQL on {HOST}:{port}")
    if not (directory / f"created-{database}").exists():
        done = subprocess.run(
            [
                str(binaries / "psql"),
                "-h",
                HOST,
                "-p",
                str(port),
                "-U",
                USER,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{database}'",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if done.stdout.strip() != "1":
            _run(
                [str(binaries / "createdb"), "-h", HOST, "-p", str(port), "-U", USER, database],
                directory,
                "createdb",
            )
        (directory / f"created-{database}").touch()
    return catalog


def down(directory: Path, timeout: float = 30.0, *, crash: bool = False) -> None:
    """Stop the cluster (fast shutdown); data is kept. Nothing running is not an error.

    ``crash``: PostgreSQL's immediate shutdown (SIGQUIT) instead, what its manual offers in
    place of killing the server: every backend exits at once, nothing is checkpointed, and
    the next start recovers from the WAL, as after a power cut (the tests' lake outage)."""
    data = Path(directory).resolve() / "data"
    pid = running_pid(data / "postmaster.pid", "postgres")
    if pid is None:
        if read_pid(data / "postmaster.pid") is not None:
            (data / "postmaster.pid").unlink(missing_ok=True)
        return
    # SIGINT: PostgreSQL's "fast" shutdown; SIGQUIT: its "immediate" one
    stop(pid, timeout=timeout, sig=signal.SIGQUIT if crash else signal.SIGINT)
