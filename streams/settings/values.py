"""Reading one setting from the environment: numbers in range, Kafka-safe names, addresses,
files and secrets. Every refusal is a ``ConfigError`` that names the variable and says
what to set it to; a secret is held so that it cannot leak into a log or a traceback."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TypeVar

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
