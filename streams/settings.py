"""Runtime configuration, read once from the environment.

Every setting has a safe local default (a broker on 127.0.0.1 that the project starts
itself, files under ``.local/`` in a checkout or ``./.crossings`` in the working folder
once installed), so ``make demo`` needs nothing set. A bad value fails
at start-up with a message naming the variable, rather than surfacing later as a
confusing Kafka or filesystem error mid-stream.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit

from streams.core.processor import CoreConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def is_checkout(root: Path = PROJECT_ROOT) -> bool:
    """True when this package runs from the project's source tree (``make setup``'s editable
    install), False when pip installed it (then ``root`` is site-packages, not ours to write)."""
    return (root / "pyproject.toml").is_file() and (root / "streams" / "settings.py").is_file()


def default_home(cwd: Path | None = None) -> Path:
    """Where state goes without ``CROSSINGS_HOME``: ``.local/`` of the checkout, so ``make``
    targets and the tests agree; otherwise ``./.crossings`` under the working folder, never
    inside the installed package."""
    if is_checkout():
        return PROJECT_ROOT / ".local"
    return (cwd or Path.cwd()) / ".crossings"


DEFAULT_LOCAL_DIR = PROJECT_ROOT / ".local"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

_KAFKA_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


MASK: Final = "**********"


class RevealedSecret(str):
    """The secret's text, for the one place that must hand it to a Kafka client. Still a
    ``str`` to the client, but its repr is masked, so a client that logs its configuration
    (kafka-python does, at debug level) or an exception that shows it prints the mask."""

    def __repr__(self) -> str:
        return repr(MASK)


class Secret:
    """A password held so that its repr and str are masked: it cannot leak through a log
    line, a traceback's locals, ``Settings``' repr or an error message by accident.
    ``reveal()`` is the only way to the text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> RevealedSecret:
        return RevealedSecret(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> object:
        raise TypeError("a Secret is not pickled")


#: What CROSSINGS_KAFKA_SECURITY_PROTOCOL and CROSSINGS_KAFKA_SASL_MECHANISM accept.
SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client the project starts authenticates and encrypts.

    ``protocol`` is Kafka's ``security.protocol``; SASL fields are set only for the SASL
    protocols, SSL fields only for the SSL ones. The password is a ``Secret``.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    #: CA bundle to verify the brokers' certificates; None: the system's CAs.
    ssl_cafile: Path | None = None
    #: Client certificate and key (mutual TLS); both or neither.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """A line for messages: protocol, mechanism and user, never the password."""
        if not self.sasl:
            return self.protocol
        return f"{self.protocol} {self.sasl_mechanism} as user {self.sasl_username!r}"


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
class Receiver:
    """One place ``crossings notify`` delivers alerts to.

    ``target`` (scheme, host and port only) is what logs, metrics and dead letters show:
    webhook URLs often carry a token in their path or query, which must not leak there.
    ``id`` names its consumer group: a hash of the full URL, so each receiver keeps its own
    offset, and a changed URL is a new receiver.
    """

    kind: str  # "alertmanager" | "webhook"
    url: str

    def __repr__(self) -> str:
        return f"Receiver({self.kind!r}, {self.target!r})"

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    @property
    def id(self) -> str:
        return f"{self.kind}-{hashlib.sha256(self.url.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class NotifySettings:
    """``crossings notify``: where alerts go and how hard it tries."""

    alertmanagers: tuple[Receiver, ...] = ()
    webhooks: tuple[Receiver, ...] = ()
    #: HMAC-SHA256 key of the webhook signatures; required when there are webhooks.
    webhook_secret: Secret | None = None
    #: Seconds from a message's first failed attempt after which it is dead-lettered.
    give_up_seconds: float = 3600.0
    #: Seconds between re-posts of the firing episodes to each Alertmanager.
    resend_seconds: float = 60.0
    #: Longest wait between two attempts (exponential backoff from 0.5 s, with jitter).
    retry_max_seconds: float = 60.0
    #: Seconds one HTTP request may take.
    request_timeout_seconds: float = 10.0
    #: Where a receiver with no committed offset starts reading: "latest" or "earliest".
    start: str = "latest"
    #: Alertmanager's generatorURL; may hold {checkpoint}, {direction} and {episode}.
    generator_url: str = "http://127.0.0.1:6066/metrics"
    web_port: int = 6067

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return self.alertmanagers + self.webhooks


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
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    notify: NotifySettings = field(default_factory=NotifySettings)

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


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or default).strip()
    value = raw.upper()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return value


def _existing_file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name}={raw!r}: no such file; set it to a readable file")
    return path


def _password(env: Mapping[str, str]) -> Secret:
    """From CROSSINGS_KAFKA_SASL_PASSWORD or _FILE (exactly one), read now."""
    secret = _secret(env, "CROSSINGS_KAFKA_SASL_PASSWORD", "the SASL password")
    if secret is None:
        name, file_name = "CROSSINGS_KAFKA_SASL_PASSWORD", "CROSSINGS_KAFKA_SASL_PASSWORD_FILE"
        raise ConfigError(f"a SASL protocol needs a password: set {name} or {file_name}")
    return secret


def _secret(env: Mapping[str, str], name: str, what: str) -> Secret | None:
    """From ``name`` or ``name``_FILE (at most one; the file's trailing newline dropped), read
    now; None when neither is set."""
    file_name = f"{name}_FILE"
    value, file = env.get(name), env.get(file_name)
    if value and file:
        raise ConfigError(f"both {name} and {file_name} are set; set only one")
    if file:
        try:
            text = Path(file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise ConfigError(f"{file_name}={file!r} cannot be read ({reason})") from None
        value = text.rstrip("\r\n")
        if not value:
            raise ConfigError(f"{file_name}={file!r} is empty; put {what} in it")
    return Secret(value) if value else None


def load_security(env: Mapping[str, str]) -> KafkaSecurity:
    """``CROSSINGS_KAFKA_SECURITY_PROTOCOL`` and the SASL/SSL settings it calls for.

    Settings of the other family are refused rather than ignored (a password set with
    ``SSL``, a CA file with ``SASL_PLAINTEXT``): ignoring one would look like it works.
    """
    protocol = _choice(env, "CROSSINGS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", SECURITY_PROTOCOLS)
    sasl, ssl = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
    sasl_names = (
        "CROSSINGS_KAFKA_SASL_MECHANISM",
        "CROSSINGS_KAFKA_SASL_USERNAME",
        "CROSSINGS_KAFKA_SASL_PASSWORD",
        "CROSSINGS_KAFKA_SASL_PASSWORD_FILE",
    )
    ssl_names = (
        "CROSSINGS_KAFKA_SSL_CAFILE",
        "CROSSINGS_KAFKA_SSL_CERTFILE",
        "CROSSINGS_KAFKA_SSL_KEYFILE",
        "CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME",
    )
    for names, wanted, family in ((sasl_names, sasl, "SASL_"), (ssl_names, ssl, "SSL")):
        stray = [n for n in names if env.get(n)]
        if stray and not wanted:
            raise ConfigError(
                f"{stray[0]} is set but CROSSINGS_KAFKA_SECURITY_PROTOCOL={protocol}; "
                f"set the protocol to one with {family.rstrip('_')} or unset {stray[0]}"
            )
    if not (sasl or ssl):
        return KafkaSecurity()
    mechanism = username = password = None
    if sasl:
        mechanism = _choice(env, "CROSSINGS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", SASL_MECHANISMS)
        username = (env.get("CROSSINGS_KAFKA_SASL_USERNAME") or "").strip()
        if not username:
            raise ConfigError(f"{protocol} needs a user name: set CROSSINGS_KAFKA_SASL_USERNAME")
        password = _password(env)
    certfile = keyfile = cafile = None
    check_hostname = True
    if ssl:
        cafile = _existing_file(env, "CROSSINGS_KAFKA_SSL_CAFILE")
        certfile = _existing_file(env, "CROSSINGS_KAFKA_SSL_CERTFILE")
        keyfile = _existing_file(env, "CROSSINGS_KAFKA_SSL_KEYFILE")
        if keyfile and not certfile:
            raise ConfigError(
                "CROSSINGS_KAFKA_SSL_KEYFILE is set without CROSSINGS_KAFKA_SSL_CERTFILE; "
                "set the client certificate too (or unset the key)"
            )
        raw = (env.get("CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME") or "true").strip().lower()
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME={raw!r} is not true or false")
        check_hostname = raw in ("true", "1", "yes")
    return KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password=password,
        ssl_cafile=cafile,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_check_hostname=check_hostname,
    )


def _urls(env: Mapping[str, str], name: str, kind: str) -> tuple[Receiver, ...]:
    """A comma-separated list of http(s) URLs, each with a host."""
    receivers = []
    for raw in (env.get(name) or "").split(","):
        url = raw.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "(no host)"
            raise ConfigError(
                f"{name}: {shown} is not an http(s) URL with a host; set it like 'http://host:9093[,...]'"
            )
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigError(f"{name}: the URL for {parts.hostname} has a malformed port") from None
        receivers.append(Receiver(kind, url.rstrip("/") if kind == "alertmanager" else url))
    return tuple(dict.fromkeys(receivers))


def load_notify(env: Mapping[str, str], web_port: int) -> NotifySettings:
    """``crossings notify``'s settings. The webhook secret is required with webhooks and
    refused without them (a secret nobody uses looks like signing that works)."""
    webhooks = _urls(env, "CROSSINGS_WEBHOOK_URLS", "webhook")
    secret = _secret(env, "CROSSINGS_WEBHOOK_SECRET", "the webhook signing secret")
    if webhooks and secret is None:
        raise ConfigError(
            "CROSSINGS_WEBHOOK_URLS needs a signing secret: set CROSSINGS_WEBHOOK_SECRET or "
            "CROSSINGS_WEBHOOK_SECRET_FILE"
        )
    if secret is not None and not webhooks:
        raise ConfigError(
            "CROSSINGS_WEBHOOK_SECRET is set but CROSSINGS_WEBHOOK_URLS is empty; set both or neither"
        )
    start = (env.get("CROSSINGS_NOTIFY_START") or "latest").strip().lower()
    if start not in ("latest", "earliest"):
        raise ConfigError(f"CROSSINGS_NOTIFY_START={start!r} is not latest or earliest")
    generator = env.get("CROSSINGS_NOTIFY_GENERATOR_URL") or f"http://127.0.0.1:{web_port}/metrics"
    if urlsplit(generator).scheme not in ("http", "https"):
        raise ConfigError(f"CROSSINGS_NOTIFY_GENERATOR_URL={generator!r} is not an http(s) URL")
    try:
        generator.format(checkpoint="", direction="", episode="")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            f"CROSSINGS_NOTIFY_GENERATOR_URL={generator!r} may only use {{checkpoint}}, {{direction}} "
            "and {episode} as placeholders"
        ) from None
    return NotifySettings(
        alertmanagers=_urls(env, "CROSSINGS_ALERTMANAGER_URLS", "alertmanager"),
        webhooks=webhooks,
        webhook_secret=secret,
        give_up_seconds=_float(env, "CROSSINGS_NOTIFY_GIVE_UP_SECONDS", 3600.0, 1.0, 7 * 86400.0),
        resend_seconds=_float(env, "CROSSINGS_NOTIFY_RESEND_SECONDS", 60.0, 1.0, 3600.0),
        retry_max_seconds=_float(env, "CROSSINGS_NOTIFY_RETRY_MAX_SECONDS", 60.0, 0.5, 3600.0),
        request_timeout_seconds=_float(env, "CROSSINGS_NOTIFY_TIMEOUT_SECONDS", 10.0, 0.5, 300.0),
        start=start,
        generator_url=generator,
        web_port=_int(env, "CROSSINGS_NOTIFY_WEB_PORT", 6067, 1024, 65535),
    )


def load_settings(env: Mapping[str, str] | None = None, broker: str | None = None) -> Settings:
    """Build settings from the environment (``CROSSINGS_*``) and an optional ``--broker``.

    ``--broker`` wins over ``KAFKA_BOOTSTRAP``; either one means "use my cluster" and the
    project will not start its embedded broker.
    """
    env = os.environ if env is None else env
    external = broker or env.get("KAFKA_BOOTSTRAP")
    source = "--broker" if broker else "KAFKA_BOOTSTRAP"
    local_dir = Path(env.get("CROSSINGS_HOME") or default_home())
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
        security=load_security(env),
        notify=load_notify(env, _int(env, "CROSSINGS_WEB_PORT", 6066, 1024, 65535)),
    )
