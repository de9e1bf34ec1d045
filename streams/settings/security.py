"""How every Kafka client the project starts authenticates and encrypts (SASL, TLS)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streams.settings.values import ConfigError, Secret, _choice, _existing_file, _password

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
