"""Where the broker's files are, the constants every module shares, and what callers get
back (``BrokerStatus``) or catch (``BrokerError``). Imports nothing from the package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEPLOY_DIR = PROJECT_ROOT / "deploy" / "kafka"
POM = DEPLOY_DIR / "pom.xml"
SERVER_TEMPLATE = DEPLOY_DIR / "server.properties.template"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.yaml"

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
    def lock_file(self) -> Path:
        return self.root / ".lock"


def layout_of(kafka_dir: Path) -> Layout:
    # Absolute, because the paths end up in the JVM command line and config files and the
    # JVM's working directory is not ours to rely on.
    return Layout(Path(kafka_dir).expanduser().resolve())
