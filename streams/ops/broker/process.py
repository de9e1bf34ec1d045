"""The broker's JVM as an operating-system process: pid file, finding our own JVM (and
not a stranger that reused its pid), ports, log tails, the per-directory lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from streams.ops.broker.jvm import KAFKA_MAIN
from streams.ops.broker.layout import HOST, TAIL_LINES, Layout

#: Popen handles of brokers started by this process, so they can be reaped (no zombies,
#: no ResourceWarning) when down() stops them from the same process.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our own child, so it does not linger as a
    zombie. Only pids we started are touched: reaping arbitrary children would steal exit
    statuses from other subprocess users in this process."""
    child = CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del CHILDREN[pid]


def alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # Field 3 (after the parenthesised command name) is the state; Z = zombie.
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _cmdline(pid: int) -> list[str] | None:
    """The process's argv (from /proc, or ``ps`` where there is no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None  # /proc works: the process is gone
    except OSError:
        return None
    try:  # no /proc (macOS); whitespace-split is good enough for our own paths
        proc = subprocess.run(
            ["ps", "-o", "args=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.split() or None


def is_our_broker(pid: int, layout: Layout) -> bool:
    """True if ``pid`` is a live Kafka JVM started with this kafka_dir's config.

    Checking the exact command line (not just that the pid exists) guards against pid
    reuse after a reboot or crash left a stale pid file behind.
    """
    argv = _cmdline(pid)
    if not argv or KAFKA_MAIN not in argv or str(layout.server_properties) not in argv:
        return False
    return alive(pid)


def read_pid(layout: Layout) -> int | None:
    try:
        return int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(layout: Layout, pid: int) -> None:
    tmp = layout.pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(layout.pid_file)


def _scan_for_broker(layout: Layout) -> int | None:
    """Find our broker JVM by command line when the pid file was lost (Linux only)."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return None
    for entry in proc_dir.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if is_our_broker(pid, layout):
                return pid
    return None


def running_pid(layout: Layout) -> int | None:
    """Pid of this kafka_dir's running broker, or None. A stale pid file is ignored."""
    pid = read_pid(layout)
    if pid is not None and is_our_broker(pid, layout):
        return pid
    return _scan_for_broker(layout)


def configured_port(layout: Layout) -> int | None:
    """The client port in the rendered config, i.e. the port the broker was started on."""
    try:
        text = layout.server_properties.read_text()
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=(?:SASL_)?PLAINTEXT://[^:]+:(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def configured_listener(layout: Layout) -> str | None:
    """The client listener's protocol in the rendered config (PLAINTEXT or SASL_PLAINTEXT)."""
    try:
        text = layout.server_properties.read_text()
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=(\w+)://", text, re.MULTILINE)
    return match.group(1) if match else None


def port_free(port: int) -> bool:
    """Can a listener bind 127.0.0.1:port? (SO_REUSEADDR like the JVM, so sockets left in
    TIME_WAIT by a broker we just stopped do not count as "taken".)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip()
    except OSError:
        return ""


def log_tail(layout: Layout) -> str:
    parts = []
    for path in (layout.server_log, layout.server_out):
        text = _tail(path)
        if text:
            parts.append(f"--- last lines of {path} ---\n{text}")
    return "\n".join(parts) or f"(no log output in {layout.logs})"


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """Serialise up()/down() on one kafka_dir across processes (e.g. two CLI invocations
    or parallel test sessions) so they cannot both format or start a broker."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
