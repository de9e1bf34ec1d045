"""Fetch the Kafka runtime jars with Maven into ``kafka_dir/libs`` (first time only)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections import deque
from pathlib import Path

from streams.ops.broker.layout import KAFKA_VERSION, POM, TAIL_LINES, BrokerError, Layout, layout_of
from streams.ops.broker.process import running_pid

log = logging.getLogger(__name__)


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


def _pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _jars_installed(layout: Layout) -> bool:
    try:
        stamp = layout.stamp.read_text().strip()
    except OSError:
        return False
    return stamp == _pom_hash() and any(layout.libs.glob("kafka_2.13-*.jar"))


def install_jars(kafka_dir: Path, *, quiet: bool = True) -> Path:
    """Copy the Kafka runtime jars into ``kafka_dir/libs`` with Maven; return that directory.

    Idempotent: a stamp file records the hash of the packaged ``resources/pom.xml`` the jars came
    from, so later calls return at once, and editing the pom (e.g. a version bump) triggers
    a fresh copy. Jars are copied into a scratch directory and swapped in whole, so an
    interrupted or failed run never leaves a half-populated or mixed-version classpath.
    With ``quiet=False`` Maven's output is shown as it runs (the first run downloads ~40
    jars). Raises BrokerError, including the tail of Maven's output, if Maven fails.
    """
    layout = layout_of(kafka_dir)
    if _jars_installed(layout):
        return layout.libs
    if not POM.is_file():
        raise BrokerError(f"{POM} is missing; reinstall crossings (the pom ships inside the package).")
    if running_pid(layout) is not None:
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
    log.info(
        "Fetching the Kafka %s jars with Maven into %s (first time only: about 40 jars from Maven "
        "Central, a minute or two unless ~/.m2 has them)",
        KAFKA_VERSION,
        layout.libs,
    )
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=layout.root,
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
    log.info("Kafka jars ready in %s", layout.libs)
    return layout.libs
