"""The JVM side: find Java, build its command line, render the broker's config files and
format the KRaft storage once."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from streams.ops.broker.layout import (
    LOG4J_CONFIG,
    SERVER_TEMPLATE,
    TAIL_LINES,
    BrokerError,
    Layout,
    ScramListener,
)

log = logging.getLogger(__name__)

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


def find_java() -> str:
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


def java_cmd(java: str, layout: Layout, main: str, *args: str) -> list[str]:
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


def _scram_properties(scram: ScramListener) -> str:
    """The SASL_PLAINTEXT listener's settings: the mechanism, and the JAAS login the broker
    itself uses on that listener (it is also the inter-broker listener). No authorizer is
    configured, so any authenticated user may create topics and run transactions."""
    mechanism = scram.mechanism
    return (
        "\n############################# SASL/SCRAM client listener #############################\n"
        f"sasl.enabled.mechanisms={mechanism}\n"
        f"sasl.mechanism.inter.broker.protocol={mechanism}\n"
        f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{scram.username}" password="{scram.secret()}";\n'
    )


def render_config(layout: Layout, port: int, scram: ScramListener | None = None) -> None:
    """Write server.properties and log4j2.yaml into ``kafka_dir/config`` for this port.

    Rendered on every start, so the running broker always matches the repo's templates
    and a copy of exactly what it was started with sits next to its data. With ``scram``
    the client listener is SASL_PLAINTEXT and the file (which then holds the broker's
    SCRAM password) is readable by its owner only.
    """
    layout.config.mkdir(parents=True, exist_ok=True)
    text = _render(
        SERVER_TEMPLATE.read_text(),
        {
            "port": str(port),
            "controller_port": str(port + 1),
            "log_dirs": _properties_escape(str(layout.data)),
            "client_listener": "SASL_PLAINTEXT" if scram else "PLAINTEXT",
        },
        SERVER_TEMPLATE,
    )
    if scram is not None:
        text += _scram_properties(scram)
    tmp = layout.server_properties.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if scram else 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(layout.server_properties)
    shutil.copyfile(LOG4J_CONFIG, layout.log4j_config)


def security_stamp(scram: ScramListener | None) -> str:
    """What the storage is formatted for: ``plaintext``, or the SCRAM mechanism, user and a
    hash of the password (so a changed password is noticed; the file never holds it)."""
    if scram is None:
        return "plaintext"
    digest = hashlib.sha256(f"crossings-embedded-broker|{scram.secret()}".encode()).hexdigest()[:16]
    return f"{scram.mechanism} {scram.username} {digest}"


def check_security(layout: Layout, scram: ScramListener | None) -> None:
    """A formatted storage keeps the SCRAM users it was formatted with: refuse to start it
    with other ones (clients would fail to authenticate, with no hint why)."""
    stamp = layout.security_stamp.read_text().strip() if layout.security_stamp.exists() else "plaintext"
    wanted = security_stamp(scram)
    if stamp == wanted:
        return
    if (scram is None) != (stamp == "plaintext"):
        was = "a PLAINTEXT listener" if stamp == "plaintext" else "a SASL/SCRAM listener"
    else:
        was = "another SCRAM user or password"
    raise BrokerError(
        f"the broker data in {layout.data} was formatted for {was}; SCRAM users are created "
        "only when the storage is formatted. Use another CROSSINGS_HOME (or remove "
        f"{layout.root} to start afresh), or set the security settings it was started with."
    )


def _new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding (22 chars).

    Same format as ``kafka-storage.sh random-uuid``, without paying for a JVM start; ids
    starting with '-' are skipped because they read as command-line options.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def ensure_formatted(layout: Layout, java: str, scram: ScramListener | None = None) -> None:
    """Format the KRaft storage once; later starts reuse the data (and the cluster id).

    A formatted data dir has ``meta.properties``. The cluster id is kept in a file so a
    wiped data dir is re-formatted under the same id. With ``scram`` the user is created
    at format time (``--add-scram``, Kafka 3.5+); the password is on the storage tool's
    command line for the second it runs (a local broker's, under the user's own account).
    """
    if (layout.data / "meta.properties").exists():
        check_security(layout, scram)
        return
    if layout.cluster_id_file.exists():
        cluster_id = layout.cluster_id_file.read_text().strip()
    else:
        cluster_id = _new_cluster_id()
        layout.cluster_id_file.write_text(cluster_id + "\n")
    layout.data.mkdir(parents=True, exist_ok=True)
    cmd = java_cmd(
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
    if scram is not None:
        cmd += ["--add-scram", f"{scram.mechanism}=[name={scram.username},password={scram.secret()}]"]
    log.info("Formatting Kafka storage in %s (cluster id %s)", layout.data, cluster_id)
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).splitlines()[-TAIL_LINES:])
        if scram is not None:
            output = output.replace(scram.secret(), "**********")
        raise BrokerError(
            f"Formatting Kafka storage in {layout.data} failed (exit {proc.returncode}); the "
            f"tool's output below says why (a bad setting in {layout.server_properties} or "
            f"an existing data dir from another cluster).\n{output}"
        )
    layout.security_stamp.write_text(security_stamp(scram) + "\n")
