"""Runtime configuration, read once from the environment.

Every setting has a safe local default (a broker on 127.0.0.1 that the project starts
itself, files under ``.local/``), so ``make demo`` needs nothing set. A bad value fails
at start-up with a message naming the variable, rather than surfacing later as a
confusing Kafka or filesystem error mid-stream.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from streams.core.processor import CoreConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL_DIR = PROJECT_ROOT / ".local"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

_KAFKA_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Topics:
    """Kafka topic names. Versioned so a schema change can run beside the old one;
    the namespace lets several deployments (or test runs) share one cluster."""

    namespace: str = "crossings"

    @property
    def events(self) -> str:
        return f"{self.namespace}.events.v1"

    @property
    def dead_letter(self) -> str:
        return f"{self.namespace}.events.dlq.v1"

    @property
    def alerts(self) -> str:
        return f"{self.namespace}.alerts.v1"


@dataclass(frozen=True)
class Settings:
    bootstrap: str = DEFAULT_BOOTSTRAP
    #: True when the user pointed us at their own cluster: never start or stop a broker.
    external_broker: bool = False
    app_id: str = "crossings"
    partitions: int = 4
    data_dir: Path = DEFAULT_LOCAL_DIR / "data"
    kafka_dir: Path = DEFAULT_LOCAL_DIR / "kafka"
    worker_dir: Path = DEFAULT_LOCAL_DIR / "worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: Seconds between commits (Parquet, then one Kafka transaction per partition).
    commit_interval: float = 10.0
    #: How long an event_id is remembered for de-duplication, in hours of event time.
    dedup_horizon_hours: int = 72
    #: Wall-clock seconds without messages after which a partition counts as idle and its
    #: clock follows the other partitions (so a silent checkpoint's drop is still seen).
    idle_after_seconds: float = 30.0
    #: How far ahead of its arrival in Kafka an event may be stamped, in seconds.
    max_clock_skew_seconds: float = 900.0
    #: The checkpoint registry (JSON or YAML); None: the shipped schemas/checkpoints.json.
    checkpoints_file: Path | None = None
    #: Replicas of each topic the project creates; None: min(3, brokers in the cluster).
    replication_factor: int | None = None
    topics: Topics = field(default_factory=Topics)

    def core_config(self) -> CoreConfig:
        """What the core (worker and replay alike) takes from these settings."""
        return CoreConfig(
            dedup_horizon_s=self.dedup_horizon_hours * 3600.0,
            max_clock_skew_s=self.max_clock_skew_seconds,
        )

    @property
    def state_dir(self) -> Path:
        """Local RocksDB state, one folder per partition (a cache of the changelog)."""
        return self.worker_dir / "state"

    @property
    def broker_url(self) -> str:
        """Faust's broker URL list (``kafka://h1:p1;h2:p2``)."""
        return ";".join(f"kafka://{host}" for host in self.bootstrap.split(","))


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, low: N, high: N, kind: type[N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    noun = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {noun}; set it to {low}..{high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range; set it to {low}..{high}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float)


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    """A Kafka-safe identifier (topic names and consumer group ids are built from it)."""
    raw = env.get(name) or default
    if not _KAFKA_NAME.match(raw):
        raise ConfigError(f"{name}={raw!r} may only use letters, digits, '.', '_' and '-' (1-100 chars)")
    return raw


def _web_host(raw: str) -> str:
    """An address to bind /metrics to: an IP address, or ``localhost``."""
    if raw != "localhost":
        try:
            ipaddress.ip_address(raw)
        except ValueError:
            raise ConfigError(
                f"CROSSINGS_WEB_HOST={raw!r} is not an IP address; set it to 127.0.0.1 (the default), "
                "or to the address of the interface /metrics should be reachable on (0.0.0.0: all)"
            ) from None
    return raw


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def parse_bootstrap(raw: str, source: str) -> str:
    """Validate a comma-separated ``host:port`` list; fail with the variable's name."""
    hosts = [part.strip() for part in raw.split(",") if part.strip()]
    if not hosts:
        raise ConfigError(f"{source} is empty; set it to host:port[,host:port...]")
    for host in hosts:
        host = host.removeprefix("kafka://")
        if not _HOST_PORT.match(host) or not 0 < int(host.rsplit(":", 1)[1]) < 65536:
            raise ConfigError(f"{source}: {host!r} is not host:port; set it like 'broker1:9092,broker2:9092'")
    return ",".join(h.removeprefix("kafka://") for h in hosts)


def load_settings(env: Mapping[str, str] | None = None, broker: str | None = None) -> Settings:
    """Build settings from the environment (``CROSSINGS_*``) and an optional ``--broker``.

    ``--broker`` wins over ``KAFKA_BOOTSTRAP``; either one means "use my cluster" and the
    project will not start its embedded broker.
    """
    env = os.environ if env is None else env
    external = broker or env.get("KAFKA_BOOTSTRAP")
    source = "--broker" if broker else "KAFKA_BOOTSTRAP"
    local_dir = Path(env.get("CROSSINGS_HOME") or DEFAULT_LOCAL_DIR)
    local_port = _int(env, "CROSSINGS_KAFKA_PORT", 9092, 1024, 65535)
    bootstrap = parse_bootstrap(external, source) if external else f"127.0.0.1:{local_port}"
    return Settings(
        bootstrap=bootstrap,
        external_broker=bool(external),
        app_id=_name(env, "CROSSINGS_APP_ID", "crossings"),
        partitions=_int(env, "CROSSINGS_PARTITIONS", 4, 1, 256),
        data_dir=Path(env.get("CROSSINGS_DATA_DIR") or local_dir / "data"),
        kafka_dir=local_dir / "kafka",
        worker_dir=local_dir / "worker",
        web_host=_web_host(env.get("CROSSINGS_WEB_HOST") or "127.0.0.1"),
        web_port=_int(env, "CROSSINGS_WEB_PORT", 6066, 1024, 65535),
        commit_interval=_float(env, "CROSSINGS_COMMIT_INTERVAL", 10.0, 0.1, 600.0),
        dedup_horizon_hours=_int(env, "CROSSINGS_DEDUP_HORIZON_HOURS", 72, 1, 24 * 60),
        idle_after_seconds=_float(env, "CROSSINGS_IDLE_AFTER_SECONDS", 30.0, 1.0, 86400.0),
        max_clock_skew_seconds=_float(env, "CROSSINGS_MAX_CLOCK_SKEW_SECONDS", 900.0, 0.0, 86400.0),
        replication_factor=(
            _int(env, "CROSSINGS_REPLICATION_FACTOR", 1, 1, 32)
            if env.get("CROSSINGS_REPLICATION_FACTOR")
            else None
        ),
        checkpoints_file=Path(env["CROSSINGS_CHECKPOINTS"]) if env.get("CROSSINGS_CHECKPOINTS") else None,
        topics=Topics(_name(env, "CROSSINGS_TOPIC_NAMESPACE", "crossings")),
    )
