"""``up``, ``down`` and ``status`` of this project's broker in one ``kafka_dir``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from streams.ops.broker.install import install_jars
from streams.ops.broker.jvm import (
    KAFKA_MAIN,
    check_security,
    ensure_formatted,
    find_java,
    java_cmd,
    render_config,
)
from streams.ops.broker.layout import (
    DEFAULT_PORT,
    HOST,
    BrokerError,
    BrokerStatus,
    Layout,
    ScramListener,
    layout_of,
)
from streams.ops.broker.process import (
    CHILDREN,
    configured_listener,
    configured_port,
    is_our_broker,
    locked,
    log_tail,
    port_free,
    read_pid,
    running_pid,
    wait_exit,
    write_pid,
)
from streams.ops.broker.ready import accepts, wait_until

log = logging.getLogger(__name__)


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
    layout = layout_of(kafka_dir)
    pid = running_pid(layout)
    if pid is not None:
        actual = configured_port(layout) or port
        bootstrap = _bootstrap(actual)
        if accepts(HOST, actual):
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
    stale = read_pid(layout)
    detail = f"not running (data in {layout.data})"
    if stale is not None:
        detail = f"not running (stale pid file for pid {stale}; data in {layout.data})"
    if accepts(HOST, port, 0.5):
        detail += f"; something else is listening on {bootstrap}"
    return BrokerStatus(False, None, bootstrap, detail)


def _probe_client(scram: ScramListener | None) -> dict[str, object] | None:
    """kafka-python keyword arguments for the readiness probe of a SCRAM listener."""
    if scram is None:
        return None
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": scram.mechanism,
        "sasl_plain_username": scram.username,
        "sasl_plain_password": scram.password.reveal(),  # type: ignore[attr-defined]
    }


def up(
    kafka_dir: Path,
    port: int = DEFAULT_PORT,
    *,
    timeout: float = 120.0,
    scram: ScramListener | None = None,
) -> BrokerStatus:
    """Ensure the broker is running and answering on 127.0.0.1:``port``; return its status.

    Idempotent: an already running broker is only waited for. Otherwise this installs the
    jars (Maven, first time only), renders the config, formats storage (first start only),
    launches the JVM detached with output in ``logs/server.out``, writes ``broker.pid``
    and waits up to ``timeout`` seconds (from JVM launch) for a metadata response.

    With ``scram`` the client listener is SASL_PLAINTEXT with that SCRAM user (created
    when the storage is formatted; a kafka_dir formatted without it, or with another
    user, is refused). Without, it is PLAINTEXT, as always.

    Raises BrokerError if java/mvn is missing, the port (or ``port + 1``) is held by
    another process, our broker already runs on another port or with another listener,
    or the broker exits or does not answer in time (with the tail of its log).
    """
    _check_port(port)
    if scram is not None:
        scram.check()
    client = _probe_client(scram)
    layout = layout_of(kafka_dir)
    bootstrap = _bootstrap(port)
    with locked(layout):
        pid = running_pid(layout)
        if pid is not None:
            actual = configured_port(layout)
            if actual is not None and actual != port:
                raise BrokerError(
                    f"The broker in {layout.root} is already running (pid {pid}) on port "
                    f"{actual}, not {port}; stop it first (down) or use port {actual}."
                )
            listener, wanted = configured_listener(layout), "SASL_PLAINTEXT" if scram else "PLAINTEXT"
            if listener is not None and listener != wanted:
                raise BrokerError(
                    f"The broker in {layout.root} is already running (pid {pid}) with a {listener} "
                    f"listener, not {wanted}; stop it first (down) or use the security settings it "
                    "was started with (CROSSINGS_KAFKA_SECURITY_PROTOCOL)."
                )
            check_security(layout, scram)
            write_pid(layout, pid)  # re-create a lost pid file
            try:
                wait_until(bootstrap, timeout, lambda: _exited(pid, layout), client)
            except BrokerError as exc:
                raise BrokerError(f"{exc}\n{log_tail(layout)}") from None
            return status(layout.root, port)

        if layout.pid_file.exists():
            log.info("Removing stale pid file %s", layout.pid_file)
            layout.pid_file.unlink(missing_ok=True)
        for p, role in ((port, "client"), (port + 1, "controller")):
            if not port_free(p):
                raise BrokerError(
                    f"Port {p} on {HOST} (needed for the Kafka {role} listener) is already "
                    f"in use by another process, not by the broker in {layout.root}. Stop "
                    f"that process, pick another port, or use it as an external cluster "
                    f"with --broker."
                )

        java = find_java()
        install_jars(layout.root)
        render_config(layout, port, scram)
        ensure_formatted(layout, java, scram)
        return launch(layout.root, port, timeout=timeout, client=client, java=java)


def launch(
    kafka_dir: Path,
    port: int,
    *,
    timeout: float = 120.0,
    client: Mapping[str, object] | None = None,
    java: str | None = None,
) -> BrokerStatus:
    """Start the JVM on the config and storage already in ``kafka_dir``, write ``broker.pid``
    and wait up to ``timeout`` seconds for a metadata answer on 127.0.0.1:``port`` (asked
    with the kafka-python keyword arguments ``client``). ``up`` renders and formats, then
    calls this; a test that writes its own server.properties (extra TLS listeners) calls it
    too, and stops the broker with ``down`` like any other."""
    layout = layout_of(kafka_dir)
    bootstrap = _bootstrap(port)
    java = java or find_java()
    layout.logs.mkdir(parents=True, exist_ok=True)
    cmd = java_cmd(java, layout, KAFKA_MAIN, str(layout.server_properties))
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
    CHILDREN[child.pid] = child
    write_pid(layout, child.pid)
    log.info("Started Kafka (pid %d) on %s; waiting until it answers", child.pid, bootstrap)

    def died() -> str | None:
        code = child.poll()
        if code is None:
            return None
        layout.pid_file.unlink(missing_ok=True)
        return f"Kafka exited during start-up (exit code {code}).\n{log_tail(layout)}"

    try:
        wait_until(bootstrap, timeout, died, client)
    except BrokerError as exc:
        if child.poll() is None:
            raise BrokerError(
                f"{exc} It is still running (pid {child.pid}); stop it with down().\n{log_tail(layout)}"
            ) from None
        raise
    return status(layout.root, port)


def _exited(pid: int, layout: Layout) -> str | None:
    if is_our_broker(pid, layout):
        return None
    return f"Kafka (pid {pid}) exited while waiting for it.\n{log_tail(layout)}"


def down(kafka_dir: Path, *, timeout: float = 60.0) -> BrokerStatus:
    """Stop this kafka_dir's broker: SIGTERM (a clean shutdown that flushes logs), then
    SIGKILL if it is still alive after ``timeout`` seconds. Idempotent: with nothing
    running it only removes a stale pid file. Data is kept for the next ``up()``.
    """
    layout = layout_of(kafka_dir)
    port = configured_port(layout) or DEFAULT_PORT
    with locked(layout):
        pid = running_pid(layout)
        if pid is None:
            layout.pid_file.unlink(missing_ok=True)
            return status(layout.root, port)
        log.info("Stopping Kafka (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_exit(pid, timeout):
            log.warning("Kafka (pid %d) ignored SIGTERM for %.0fs; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not wait_exit(pid, 10.0):
                raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL; check it with `ps -p {pid}`.")
        CHILDREN.pop(pid, None)
        layout.pid_file.unlink(missing_ok=True)
        after = status(layout.root, port)
        # Said as what just happened, not as a state that reads like a failure.
        return BrokerStatus(
            after.running, after.pid, after.bootstrap, f"stopped (was pid {pid}); data kept in {layout.data}"
        )
