"""Runtime configuration, read once from the environment.

Every setting has a safe local default (a broker on 127.0.0.1 that the project starts
itself, files under ``.local/`` in a checkout or ``./.crossings`` in the working folder
once installed), so ``make demo`` needs nothing set. A bad value fails
at start-up with a message naming the variable, rather than surfacing later as a
confusing Kafka or filesystem error mid-stream.

The variables are read by the modules of this package (``values``: one variable;
``security``: Kafka SASL/TLS; ``notify``: alert delivery; ``paths``: where files go);
:func:`load_settings` puts them together. Everything is importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.core.processor import CoreConfig
from streams.ops.bounded_batches import DEFAULT_LIMIT as DEFAULT_BATCH_LIMIT
from streams.settings.lake import LakeConfig, load_lake
from streams.settings.lake_upkeep import UpkeepConfig, load_upkeep
from streams.settings.names import unknown_variables, warn_unknown_variables
from streams.settings.notify import NotifySettings, Receiver, load_notify
from streams.settings.paths import (
    DEFAULT_LOCAL_DIR,
    PROJECT_ROOT,
    default_home,
    is_checkout,
)
from streams.settings.security import SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaSecurity, load_security
from streams.settings.values import (
    MASK,
    ConfigError,
    RevealedSecret,
    Secret,
    _float,
    _int,
    _name,
    _web_host,
    is_loopback,
    parse_bootstrap,
)
from streams.settings.web import WebConfig, load_web_config

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_LOCAL_DIR",
    "MASK",
    "PROJECT_ROOT",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "ConfigError",
    "KafkaSecurity",
    "NotifySettings",
    "Receiver",
    "RevealedSecret",
    "Secret",
    "Settings",
    "Topics",
    "WebConfig",
    "default_home",
    "is_checkout",
    "is_loopback",
    "load_notify",
    "load_security",
    "load_settings",
    "parse_bootstrap",
    "unknown_variables",
    "warn_unknown_variables",
]


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

    @property
    def alerts_undelivered(self) -> str:
        """Alert messages ``crossings notify`` gave up delivering to a sink, with the reason."""
        return f"{self.namespace}.alerts.undelivered.v1"


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
    #: TLS and basic auth of the web server (CROSSINGS_WEB_CONFIG_FILE); None: plain HTTP, open.
    web: WebConfig | None = None
    #: Seconds between commits (Parquet, then one Kafka transaction per partition).
    commit_interval: float = 10.0
    #: Appended lake rows (events, alerts) are staged, hidden, and published as one file per
    #: folder once the oldest staged commit is this old (0: every commit publishes).
    lake_roll_seconds: float = 3600.0
    #: ... or once this many rows are staged for a partition.
    lake_roll_rows: int = 1_000_000
    #: How long an event_id is remembered for de-duplication, in hours of event time.
    dedup_horizon_hours: int = 72
    #: Wall-clock seconds without messages after which a partition counts as idle and its
    #: clock follows the other partitions (so a silent checkpoint's drop is still seen).
    idle_after_seconds: float = 30.0
    #: How far ahead of its arrival in Kafka an event may be stamped, in seconds.
    max_clock_skew_seconds: float = 900.0
    #: A message value larger than this is dead-lettered ``oversize`` without being decoded.
    max_event_bytes: int = 64 * 2**10
    #: A dead letter's key and value are cut to this many bytes (headers say what was cut).
    dead_letter_max_bytes: int = 2**20
    #: A record batch of the events topic that decompresses to more than this is not read
    #: (``streams.ops.bounded_batches``): its records are dead-lettered as one ``oversize``.
    max_batch_decompressed_bytes: int = DEFAULT_BATCH_LIMIT
    #: How long the broker lets a commit's transaction stay open (``KafkaOutputs``).
    transaction_timeout_seconds: float = 30.0
    #: The checkpoint registry (JSON or YAML); None: the shipped schemas/checkpoints.json.
    checkpoints_file: Path | None = None
    #: Replicas of each topic the project creates; None: min(3, brokers in the cluster).
    replication_factor: int | None = None
    #: How far ahead of the broker's clock a record's timestamp may be: the topics the
    #: project creates get it as ``message.timestamp.after.max.ms``.
    timestamp_after_max_seconds: int = 3600
    topics: Topics = field(default_factory=Topics)
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    notify: NotifySettings = field(default_factory=NotifySettings)
    #: The lake's format and place (CROSSINGS_LAKE, ``streams.settings.lake``).
    lake: LakeConfig = field(default_factory=LakeConfig)
    #: DuckLake's compaction and retention (``streams.settings.lake_upkeep``).
    lake_upkeep: UpkeepConfig = field(default_factory=UpkeepConfig)

    def core_config(self) -> CoreConfig:
        """What the core (worker and replay alike) takes from these settings."""
        return CoreConfig(
            dedup_horizon_s=self.dedup_horizon_hours * 3600.0,
            max_clock_skew_s=self.max_clock_skew_seconds,
            max_event_bytes=self.max_event_bytes,
            dead_letter_max_bytes=self.dead_letter_max_bytes,
        )

    @property
    def state_dir(self) -> Path:
        """Local RocksDB state, one folder per partition (a cache of the changelog)."""
        return self.worker_dir / "state"

    @property
    def quarantine_dir(self) -> Path:
        """Partitions the worker holds back, and operators' skip requests (``crossings quarantine``)."""
        return self.worker_dir / "quarantine"

    @property
    def broker_url(self) -> str:
        """Faust's broker URL list (``kafka://h1:p1;h2:p2``)."""
        return ";".join(f"kafka://{host}" for host in self.bootstrap.split(","))


def load_settings(env: Mapping[str, str] | None = None, broker: str | None = None) -> Settings:
    """Build settings from the environment (``CROSSINGS_*``) and an optional ``--broker``.

    ``--broker`` wins over ``KAFKA_BOOTSTRAP``; either one means "use my cluster" and the
    project will not start its embedded broker. A ``CROSSINGS_*`` variable that is no
    setting (a typo) is warned about, naming the closest one.
    """
    env = os.environ if env is None else env
    warn_unknown_variables(env)
    external = broker or env.get("KAFKA_BOOTSTRAP")
    source = "--broker" if broker else "KAFKA_BOOTSTRAP"
    local_dir = Path(env.get("CROSSINGS_HOME") or default_home())
    local_port = _int(env, "CROSSINGS_KAFKA_PORT", 9092, 1024, 65535)
    bootstrap = parse_bootstrap(external, source) if external else f"127.0.0.1:{local_port}"
    max_event_bytes = _int(env, "CROSSINGS_MAX_EVENT_BYTES", 64 * 2**10, 1024, 4 * 2**20)
    max_batch = _int(env, "CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES", DEFAULT_BATCH_LIMIT, 2**20, 2**30)
    if max_batch < 2 * max_event_bytes:
        raise ConfigError(
            f"CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES={max_batch} is less than twice "
            f"CROSSINGS_MAX_EVENT_BYTES={max_event_bytes}: a batch holding one event of the largest "
            "size allowed could be refused; raise the first or lower the second"
        )
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
        web=load_web_config(env),
        commit_interval=_float(env, "CROSSINGS_COMMIT_INTERVAL", 10.0, 0.1, 600.0),
        lake_roll_seconds=_float(env, "CROSSINGS_LAKE_ROLL_SECONDS", 3600.0, 0.0, 7 * 86400.0),
        lake_roll_rows=_int(env, "CROSSINGS_LAKE_ROLL_ROWS", 1_000_000, 1, 100_000_000),
        dedup_horizon_hours=_int(env, "CROSSINGS_DEDUP_HORIZON_HOURS", 72, 1, 24 * 60),
        idle_after_seconds=_float(env, "CROSSINGS_IDLE_AFTER_SECONDS", 30.0, 1.0, 86400.0),
        max_clock_skew_seconds=_float(env, "CROSSINGS_MAX_CLOCK_SKEW_SECONDS", 900.0, 0.0, 86400.0),
        max_event_bytes=max_event_bytes,
        max_batch_decompressed_bytes=max_batch,
        dead_letter_max_bytes=_int(env, "CROSSINGS_DEAD_LETTER_MAX_BYTES", 2**20, 1024, 4 * 2**20),
        transaction_timeout_seconds=_float(env, "CROSSINGS_TRANSACTION_TIMEOUT_SECONDS", 30.0, 5.0, 900.0),
        replication_factor=(
            _int(env, "CROSSINGS_REPLICATION_FACTOR", 1, 1, 32)
            if env.get("CROSSINGS_REPLICATION_FACTOR")
            else None
        ),
        timestamp_after_max_seconds=_int(env, "CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS", 3600, 1, 30 * 86400),
        checkpoints_file=Path(env["CROSSINGS_CHECKPOINTS"]) if env.get("CROSSINGS_CHECKPOINTS") else None,
        topics=Topics(_name(env, "CROSSINGS_TOPIC_NAMESPACE", "crossings")),
        security=load_security(env),
        notify=load_notify(env, _int(env, "CROSSINGS_WEB_PORT", 6066, 1024, 65535)),
        lake=load_lake(env),
        lake_upkeep=load_upkeep(env),
    )
