"""Start, stop and inspect the project's own single-node Apache Kafka broker.

Why this exists: the demo and the integration tests need a *real* Kafka (Faust and the
clients exercise group coordination, offsets and transactions that fakes get wrong), but
the machine has no Docker. So the broker is Apache Kafka 4.1.1 itself, run straight from
its Maven Central jars with the local Java 17, in KRaft mode (one JVM is both broker and
controller, no ZooKeeper).

Everything lives under one directory, ``kafka_dir`` (``.local/kafka`` by default)::

    libs/          runtime jars copied by Maven from deploy/kafka/pom.xml (+ .installed stamp)
    config/        server.properties and log4j2.yaml rendered from deploy/kafka/
    data/          topic data and the KRaft metadata log (formatted once)
    logs/          server.log, controller.log, state-change.log, server.out (JVM stdout/err)
    cluster.id     the KRaft cluster id the data dir was formatted with
    broker.pid     pid of the running JVM

The broker listens on 127.0.0.1 only: ``port`` for clients (PLAINTEXT) and ``port + 1``
for the KRaft controller. The JVM is started fully detached (its own session), so it
outlives the Python process that started it; ``down()`` stops it.

This module deliberately does not import Faust: the CLI and the test fixtures use it
before (or without) any stream processing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEPLOY_DIR = PROJECT_ROOT / "deploy" / "kafka"
POM = DEPLOY_DIR / "pom.xml"
SERVER_TEMPLATE = DEPLOY_DIR / "server.properties.template"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.yaml"

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
#: Kafka 4.x brokers refuse to run on anything older.
MIN_JAVA = 17
#: Small heap: this is a laptop/CI broker for one app, not a production cluster.
JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
#: Seconds between readiness probes while waiting for the broker.
_POLL = 0.25
_TAIL_LINES = 40

#: Popen handles of brokers started by this process, so they can be reaped (no zombies,
#: no ResourceWarning) when down() stops them from the same process.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BrokerStatus:
    """What ``status()``/``up()``/``down()`` found, for the CLI to print as is."""

    running: bool
    pid: int | None
    bootstrap: str
    #: A human sentence, e.g. "running (pid 1234) on 127.0.0.1:9092, data in ...".
    detail: str


class BrokerError(RuntimeError):
    """The broker could not be installed, started or stopped; the message says what to fix."""


@dataclass(frozen=True)
class _Layout:
    """Paths inside ``kafka_dir``; one place so every function agrees on them."""

    root: Path

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def stamp(self) -> Path:
        return self.libs / ".installed"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def server_properties(self) -> Path:
        return self.config / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.config / "log4j2.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server_out(self) -> Path:
        return self.logs / "server.out"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.root / "cluster.id"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def _layout(kafka_dir: Path) -> _Layout:
    # Absolute, because the paths end up in the JVM command line and config files and the
    # JVM's working directory is not ours to rely on.
    return _Layout(Path(kafka_dir).expanduser().resolve())


# --------------------------------------------------------------------------- tools


def _find_java() -> str:
    """Locate ``java`` (``$JAVA_HOME/bin/java`` first, then ``PATH``) and check it is 17+."""
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    java = next((c for c in candidates if os.access(c, os.X_OK)), None)
    if java is None:
        raise BrokerError(
            f"Java not found (looked in $JAVA_HOME and PATH). Kafka needs Java {MIN_JAVA} or "
            "newer: install a JDK/JRE (e.g. `apt-get install openjdk-17-jre-headless`) or set "
            "JAVA_HOME, or point the project at an existing cluster with --broker."
        )
    major = _java_major(java)
    if major is not None and major < MIN_JAVA:
        raise BrokerError(
            f"{java} is Java {major}, but Kafka 4.1 needs Java {MIN_JAVA} or newer: install "
            f"a newer JDK and set JAVA_HOME to it."
        )
    return java


def _java_major(java: str) -> int | None:
    """Major Java version from ``java -version`` ("1.8.0" -> 8, "17.0.15" -> 17)."""
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not match:
        return None
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first


def _find_mvn() -> str:
    """Locate Maven (``PATH``, then ``$MAVEN_HOME``/``$M2_HOME``)."""
    mvn = shutil.which("mvn")
    if mvn:
        return mvn
    for var in ("MAVEN_HOME", "M2_HOME"):
        home = os.environ.get(var)
        if home and os.access(Path(home) / "bin" / "mvn", os.X_OK):
            return str(Path(home) / "bin" / "mvn")
    raise BrokerError(
        "Maven (mvn) not found on PATH: it is needed once to fetch the Kafka jars from Maven "
        "Central. Install it (e.g. `apt-get install maven`) or set MAVEN_HOME."
    )


# --------------------------------------------------------------------------- install


def _pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _jars_installed(layout: _Layout) -> bool:
    try:
        stamp = layout.stamp.read_text().strip()
    except OSError:
        return False
    return stamp == _pom_hash() and any(layout.libs.glob("kafka_2.13-*.jar"))


def install_jars(kafka_dir: Path, *, quiet: bool = True) -> Path:
    """Copy the Kafka runtime jars into ``kafka_dir/libs`` with Maven; return that directory.

    Idempotent: a stamp file records the hash of ``deploy/kafka/pom.xml`` the jars came
    from, so later calls return at once, and editing the pom (e.g. a version bump) triggers
    a fresh copy. Jars are copied into a scratch directory and swapped in whole, so an
    interrupted or failed run never leaves a half-populated or mixed-version classpath.
    With ``quiet=False`` Maven's output is shown as it runs (the first run downloads ~40
    jars). Raises BrokerError, including the tail of Maven's output, if Maven fails.
    """
    layout = _layout(kafka_dir)
    if _jars_installed(layout):
        return layout.libs
    if not POM.is_file():
        raise BrokerError(f"{POM} is missing; the project checkout is incomplete.")
    if _running_pid(layout) is not None:
        raise BrokerError(
            f"The broker in {layout.root} is running on jars from an older pom; stop it "
            "first (down) so its classpath is not replaced under it."
        )
    mvn = _find_mvn()
    layout.root.mkdir(parents=True, exist_ok=True)
    scratch = layout.root / "libs.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        "--no-transfer-progress",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "package",
        f"-Dkafka.libs={scratch}",
        f"-Dkafka.build.dir={layout.root / '.mvn-build'}",
    ]
    if quiet:
        cmd.insert(1, "-q")
    log.info("Fetching Kafka jars with Maven into %s", layout.libs)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=DEPLOY_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except OSError as exc:
        raise BrokerError(f"Could not run Maven ({mvn}): {exc}") from exc
    with proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if not quiet:
                sys.stdout.write(line)
        code = proc.wait()
    if code != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(layout.root / ".mvn-build", ignore_errors=True)
        output = "\n".join(tail) or "(no output)"
        raise BrokerError(
            f"Maven failed (exit {code}) fetching the Kafka jars; check network access to "
            f"Maven Central and ~/.m2. Command: {' '.join(cmd)}\nLast output:\n{output}"
        )
    if not any(scratch.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven succeeded but copied no kafka_2.13 jar into {scratch}.")
    (scratch / ".installed").write_text(_pom_hash() + "\n")
    old = layout.root / "libs.old"
    shutil.rmtree(old, ignore_errors=True)
    if layout.libs.exists():
        layout.libs.rename(old)
    scratch.rename(layout.libs)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(layout.root / ".mvn-build", ignore_errors=True)
    return layout.libs


# --------------------------------------------------------------------------- config/storage


def _properties_escape(value: str) -> str:
    # Backslash is the escape character in Java .properties files.
    return value.replace("\\", "\\\\")


def _render(template: str, values: dict[str, str], source: Path) -> str:
    """Fill ``{name}`` placeholders; an unknown name is an error, not a silent blank."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise BrokerError(f"{source}: unknown placeholder {{{name}}}")
        return values[name]

    return re.sub(r"\{([a-z_]+)\}", sub, template)


def _render_config(layout: _Layout, port: int) -> None:
    """Write server.properties and log4j2.yaml into ``kafka_dir/config`` for this port.

    Rendered on every start, so the running broker always matches the repo's templates
    and a copy of exactly what it was started with sits next to its data.
    """
    layout.config.mkdir(parents=True, exist_ok=True)
    text = _render(
        SERVER_TEMPLATE.read_text(),
        {
            "port": str(port),
            "controller_port": str(port + 1),
            "log_dirs": _properties_escape(str(layout.data)),
        },
        SERVER_TEMPLATE,
    )
    layout.server_properties.write_text(text)
    shutil.copyfile(LOG4J_CONFIG, layout.log4j_config)


def _new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding (22 chars).

    Same format as ``kafka-storage.sh random-uuid``, without paying for a JVM start; ids
    starting with '-' are skipped because they read as command-line options.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _java_cmd(java: str, layout: _Layout, main: str, *args: str) -> list[str]:
    return [
        java,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={layout.log4j_config}",
        f"-Dkafka.logs.dir={layout.logs}",
        "-cp",
        str(layout.libs / "*"),
        main,
        *args,
    ]


def _ensure_formatted(layout: _Layout, java: str) -> None:
    """Format the KRaft storage once; later starts reuse the data (and the cluster id).

    A formatted data dir has ``meta.properties``. The cluster id is kept in a file so a
    wiped data dir is re-formatted under the same id.
    """
    if (layout.data / "meta.properties").exists():
        return
    if layout.cluster_id_file.exists():
        cluster_id = layout.cluster_id_file.read_text().strip()
    else:
        cluster_id = _new_cluster_id()
        layout.cluster_id_file.write_text(cluster_id + "\n")
    layout.data.mkdir(parents=True, exist_ok=True)
    cmd = _java_cmd(
        java,
        layout,
        STORAGE_TOOL_MAIN,
        "format",
        "--cluster-id",
        cluster_id,
        "--config",
        str(layout.server_properties),
        "--ignore-formatted",
    )
    log.info("Formatting Kafka storage in %s (cluster id %s)", layout.data, cluster_id)
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).splitlines()[-_TAIL_LINES:])
        raise BrokerError(
            f"Formatting Kafka storage in {layout.data} failed (exit {proc.returncode}); the "
            f"tool's output below says why (a bad setting in {layout.server_properties} or "
            f"an existing data dir from another cluster).\n{output}"
        )


# --------------------------------------------------------------------------- processes


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our own child, so it does not linger as a
    zombie. Only pids we started are touched: reaping arbitrary children would steal exit
    statuses from other subprocess users in this process."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _alive(pid: int) -> bool:
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


def _is_our_broker(pid: int, layout: _Layout) -> bool:
    """True if ``pid`` is a live Kafka JVM started with this kafka_dir's config.

    Checking the exact command line (not just that the pid exists) guards against pid
    reuse after a reboot or crash left a stale pid file behind.
    """
    argv = _cmdline(pid)
    if not argv or KAFKA_MAIN not in argv or str(layout.server_properties) not in argv:
        return False
    return _alive(pid)


def _read_pid(layout: _Layout) -> int | None:
    try:
        return int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _write_pid(layout: _Layout, pid: int) -> None:
    tmp = layout.pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(layout.pid_file)


def _scan_for_broker(layout: _Layout) -> int | None:
    """Find our broker JVM by command line when the pid file was lost (Linux only)."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return None
    for entry in proc_dir.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if _is_our_broker(pid, layout):
                return pid
    return None


def _running_pid(layout: _Layout) -> int | None:
    """Pid of this kafka_dir's running broker, or None. A stale pid file is ignored."""
    pid = _read_pid(layout)
    if pid is not None and _is_our_broker(pid, layout):
        return pid
    return _scan_for_broker(layout)


def _configured_port(layout: _Layout) -> int | None:
    """The client port in the rendered config, i.e. the port the broker was started on."""
    try:
        text = layout.server_properties.read_text()
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=PLAINTEXT://[^:]+:(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _port_free(port: int) -> bool:
    """Can a listener bind 127.0.0.1:port? (SO_REUSEADDR like the JVM, so sockets left in
    TIME_WAIT by a broker we just stopped do not count as "taken".)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"{item!r} in bootstrap {bootstrap!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip()
    except OSError:
        return ""


def _log_tail(layout: _Layout) -> str:
    parts = []
    for path in (layout.server_log, layout.server_out):
        text = _tail(path)
        if text:
            parts.append(f"--- last lines of {path} ---\n{text}")
    return "\n".join(parts) or f"(no log output in {layout.logs})"


@contextlib.contextmanager
def _locked(layout: _Layout) -> Iterator[None]:
    """Serialise up()/down() on one kafka_dir across processes (e.g. two CLI invocations
    or parallel test sessions) so they cannot both format or start a broker."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- readiness


def _probe(bootstrap: str, timeout: float) -> str | None:
    """One readiness check: None if the cluster answered a metadata request listing at
    least one broker, else a short reason. A plain TCP connect first keeps the common
    "not listening yet" case fast and free of client error logging."""
    targets = _split_bootstrap(bootstrap)
    if not any(_accepts(host, port, min(timeout, 1.0)) for host, port in targets):
        return f"nothing accepts connections on {bootstrap}"
    timeout_ms = max(int(timeout * 1000), 1000)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="crossings-readiness-probe",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
        cluster = admin.describe_cluster()
    except Exception as exc:  # any client failure just means "not ready yet"
        return f"{type(exc).__name__}: {exc}"
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
    if not cluster.get("brokers"):
        return "metadata answered but no broker is registered yet"
    return None


def _wait(bootstrap: str, timeout: float, abort: Callable[[], str | None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if abort is not None:
            why = abort()
            if why:
                raise BrokerError(why)
        remaining = deadline - time.monotonic()
        reason = _probe(bootstrap, max(min(remaining, 5.0), 0.5)) or ""
        if not reason:
            return
        if time.monotonic() + _POLL >= deadline:
            raise BrokerError(
                f"Kafka at {bootstrap} did not answer a metadata request within "
                f"{timeout:.0f}s (last error: {reason})."
            )
        time.sleep(_POLL)


def wait_ready(bootstrap: str, timeout: float) -> None:
    """Block until the cluster at ``bootstrap`` answers a metadata request, or raise.

    Works against any cluster (ours or an external ``--broker``), so the app can wait for
    Kafka instead of crashing when started alongside it. Raises BrokerError on timeout.
    """
    _wait(bootstrap, timeout)


# --------------------------------------------------------------------------- public API


def _bootstrap(port: int) -> str:
    return f"{HOST}:{port}"


def _check_port(port: int) -> None:
    if not 1024 <= port <= 65534:
        raise BrokerError(f"port {port} is out of range: use 1024..65534 (the controller takes port + 1)")


def status(kafka_dir: Path, port: int = DEFAULT_PORT) -> BrokerStatus:
    """Report whether this kafka_dir's broker is running, without changing anything.

    ``running`` means our JVM is alive; ``detail`` also says whether it accepts
    connections yet, if a stale pid file was found, or if a foreign process holds the port.
    If the broker runs on a different port than asked, the real port is reported.
    """
    layout = _layout(kafka_dir)
    pid = _running_pid(layout)
    if pid is not None:
        actual = _configured_port(layout) or port
        bootstrap = _bootstrap(actual)
        if _accepts(HOST, actual):
            detail = f"running (pid {pid}) on {bootstrap}, data in {layout.data}"
        else:
            detail = (
                f"starting or unhealthy (pid {pid}): not yet accepting connections on "
                f"{bootstrap}; logs in {layout.logs}"
            )
        if actual != port:
            detail += f" (note: on port {actual}, not the requested {port})"
        return BrokerStatus(True, pid, bootstrap, detail)
    bootstrap = _bootstrap(port)
    stale = _read_pid(layout)
    detail = f"not running (data in {layout.data})"
    if stale is not None:
        detail = f"not running (stale pid file for pid {stale}; data in {layout.data})"
    if _accepts(HOST, port, 0.5):
        detail += f"; something else is listening on {bootstrap}"
    return BrokerStatus(False, None, bootstrap, detail)


def up(kafka_dir: Path, port: int = DEFAULT_PORT, *, timeout: float = 120.0) -> BrokerStatus:
    """Ensure the broker is running and answering on 127.0.0.1:``port``; return its status.

    Idempotent: an already running broker is only waited for. Otherwise this installs the
    jars (Maven, first time only), renders the config, formats storage (first start only),
    launches the JVM detached with output in ``logs/server.out``, writes ``broker.pid``
    and waits up to ``timeout`` seconds (from JVM launch) for a metadata response.

    Raises BrokerError if java/mvn is missing, the port (or ``port + 1``) is held by
    another process, our broker already runs on another port, or the broker exits or does
    not answer in time (with the tail of its log).
    """
    _check_port(port)
    layout = _layout(kafka_dir)
    bootstrap = _bootstrap(port)
    with _locked(layout):
        pid = _running_pid(layout)
        if pid is not None:
            actual = _configured_port(layout)
            if actual is not None and actual != port:
                raise BrokerError(
                    f"The broker in {layout.root} is already running (pid {pid}) on port "
                    f"{actual}, not {port}; stop it first (down) or use port {actual}."
                )
            _write_pid(layout, pid)  # re-create a lost pid file
            try:
                _wait(bootstrap, timeout, lambda: _exited(pid, layout))
            except BrokerError as exc:
                raise BrokerError(f"{exc}\n{_log_tail(layout)}") from None
            return status(layout.root, port)

        if layout.pid_file.exists():
            log.info("Removing stale pid file %s", layout.pid_file)
            layout.pid_file.unlink(missing_ok=True)
        for p, role in ((port, "client"), (port + 1, "controller")):
            if not _port_free(p):
                raise BrokerError(
                    f"Port {p} on {HOST} (needed for the Kafka {role} listener) is already "
                    f"in use by another process, not by the broker in {layout.root}. Stop "
                    f"that process, pick another port, or use it as an external cluster "
                    f"with --broker."
                )

        java = _find_java()
        install_jars(layout.root)
        _render_config(layout, port)
        _ensure_formatted(layout, java)
        layout.logs.mkdir(parents=True, exist_ok=True)

        cmd = _java_cmd(java, layout, KAFKA_MAIN, str(layout.server_properties))
        with layout.server_out.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting Kafka\n".encode())
            out.flush()
            child = subprocess.Popen(
                cmd,
                cwd=layout.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session: survives our exit and Ctrl-C
                close_fds=True,
            )
        _CHILDREN[child.pid] = child
        _write_pid(layout, child.pid)
        log.info("Started Kafka (pid %d) on %s; waiting until it answers", child.pid, bootstrap)

        def died() -> str | None:
            code = child.poll()
            if code is None:
                return None
            layout.pid_file.unlink(missing_ok=True)
            return f"Kafka exited during start-up (exit code {code}).\n{_log_tail(layout)}"

        try:
            _wait(bootstrap, timeout, died)
        except BrokerError as exc:
            if child.poll() is None:
                raise BrokerError(
                    f"{exc} It is still running (pid {child.pid}); stop it with down().\n{_log_tail(layout)}"
                ) from None
            raise
        return status(layout.root, port)


def _exited(pid: int, layout: _Layout) -> str | None:
    if _is_our_broker(pid, layout):
        return None
    return f"Kafka (pid {pid}) exited while waiting for it.\n{_log_tail(layout)}"


def down(kafka_dir: Path, *, timeout: float = 60.0) -> BrokerStatus:
    """Stop this kafka_dir's broker: SIGTERM (a clean shutdown that flushes logs), then
    SIGKILL if it is still alive after ``timeout`` seconds. Idempotent: with nothing
    running it only removes a stale pid file. Data is kept for the next ``up()``.
    """
    layout = _layout(kafka_dir)
    port = _configured_port(layout) or DEFAULT_PORT
    with _locked(layout):
        pid = _running_pid(layout)
        if pid is None:
            layout.pid_file.unlink(missing_ok=True)
            return status(layout.root, port)
        log.info("Stopping Kafka (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout):
            log.warning("Kafka (pid %d) ignored SIGTERM for %.0fs; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_exit(pid, 10.0):
                raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL; check it with `ps -p {pid}`.")
        _CHILDREN.pop(pid, None)
        layout.pid_file.unlink(missing_ok=True)
        return status(layout.root, port)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
