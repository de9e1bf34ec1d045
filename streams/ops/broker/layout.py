"""Where the broker's files are (its resources in the package, its state under
``kafka_dir``), the constants every module shares, and what callers get back
(``BrokerStatus``) or catch (``BrokerError``). Imports nothing from the package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The pom, server.properties template and log4j2 config ship inside the package (package
#: data), so an installed ``crossings`` finds them wherever pip put it; they are only read,
#: never written (Maven's scratch output and the rendered configs go under ``kafka_dir``).
RESOURCES_DIR = Path(__file__).resolve().parent / "resources"
POM = RESOURCES_DIR / "pom.xml"
SERVER_TEMPLATE = RESOURCES_DIR / "server.properties.template"
LOG4J_CONFIG = RESOURCES_DIR / "log4j2.yaml"

#: What resources/pom.xml fetches (kept equal to its kafka.version; for messages).
KAFKA_VERSION = "4.1.1"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
TAIL_LINES = 40


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


#: SCRAM mechanisms the embedded broker can offer (Kafka's names).
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
_SCRAM_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
#: Characters safe both in ``--add-scram 'M=[name=..,password=..]'`` and in a quoted JAAS value.
_SCRAM_PASSWORD = re.compile(r"^[A-Za-z0-9._~+/@%:-]{1,200}$")


@dataclass(frozen=True)
class ScramListener:
    """Start the embedded broker's client listener as SASL_PLAINTEXT with this SCRAM user
    (also the broker's own identity on that listener; no authorizer, so the user may do
    anything). SCRAM users are created when the KRaft storage is formatted, so a kafka_dir
    keeps the user it was first started with.

    ``password`` is anything with ``reveal()`` (``streams.settings.Secret``), so the
    dataclass's repr never shows it."""

    username: str
    password: object
    mechanism: str = "SCRAM-SHA-512"

    def secret(self) -> str:
        return str(self.password.reveal())  # type: ignore[attr-defined]

    def check(self) -> None:
        if self.mechanism not in SCRAM_MECHANISMS:
            raise BrokerError(
                f"the embedded broker offers {' or '.join(SCRAM_MECHANISMS)}, not {self.mechanism}: "
                "set CROSSINGS_KAFKA_SASL_MECHANISM to one of them, or use your own cluster (KAFKA_BOOTSTRAP)"
            )
        if not _SCRAM_NAME.match(self.username):
            raise BrokerError(
                "for the embedded broker, CROSSINGS_KAFKA_SASL_USERNAME may only use letters, digits, "
                "'.', '_' and '-'"
            )
        if not _SCRAM_PASSWORD.match(self.secret()):
            raise BrokerError(
                "for the embedded broker, the SASL password (CROSSINGS_KAFKA_SASL_PASSWORD or _FILE) may "
                "only use letters, digits and ._~+/@%:- (1-200 characters)"
            )


@dataclass(frozen=True)
class Layout:
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
    def security_stamp(self) -> Path:
        """Which SCRAM user (a hash, never the password) the storage was formatted with."""
        return self.root / "security.stamp"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def layout_of(kafka_dir: Path) -> Layout:
    # Absolute, because the paths end up in the JVM command line and config files and the
    # JVM's working directory is not ours to rely on.
    return Layout(Path(kafka_dir).expanduser().resolve())
