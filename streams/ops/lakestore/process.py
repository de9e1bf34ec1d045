"""A detached service process owned by one directory: pid file, start, readiness, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.ops.broker.process import port_free  # one probe for every service the project starts

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be installed, started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class ServiceStatus:
    running: bool
    pid: int | None
    address: str
    detail: str


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def accepts(port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout):
        return True
    return False


def check_ports(ports: Sequence[int], what: str) -> None:
    for port in ports:
        if not 1024 <= port <= 65535:
            raise ServiceError(f"{what}: port {port} is out of range (1024..65535); pick another --port")
        if not port_free(port):
            raise ServiceError(
                f"{what}: port {port} on {HOST} is already in use by another process; pick another --port"
            )


def tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return "(no log)"


def read_pid(pid_file: Path) -> int | None:
    """The pid on the file's first line (PostgreSQL's postmaster.pid has more lines)."""
    try:
        return int(pid_file.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line has ``marker``
    (so a stranger that reused the pid is not taken for ours)."""
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return pid
    return pid if marker in cmdline else None


def start(cmd: Sequence[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path) -> subprocess.Popen:
    """Launch ``cmd`` in its own session (it outlives us), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {cmd[0]}\n".encode())
        out.flush()
        try:
            return subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ServiceError(f"could not run {cmd[0]}: {exc}") from exc


def wait_until(ready: Callable[[], bool], died: Callable[[], str | None], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        problem = died()
        if problem is not None:
            raise ServiceError(problem)
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def stop(pid: int, *, timeout: float = 30.0, sig: int = signal.SIGTERM) -> None:
    """``sig``, then SIGKILL after ``timeout`` seconds; returns once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    for _ in range(2):
        deadline = time.monotonic() + timeout
        while alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        timeout = 10.0
    raise ServiceError(f"pid {pid} survived SIGKILL; check it with `ps -p {pid}`")
