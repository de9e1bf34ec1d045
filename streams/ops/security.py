"""Kafka security settings (``CROSSINGS_KAFKA_SECURITY_PROTOCOL``, SASL, TLS) turned into
the keyword arguments of each client library the project uses, and client failures turned
into messages that name the setting to check.

Every client the project starts takes its security from ``client_kwargs``: the Faust app
(``broker_credentials``), the worker's transactional producers and changelog reader and
replay's consumer and admin (aiokafka), the topic admin and the readiness probe
(kafka-python). The password is revealed only here, as a ``RevealedSecret`` (a ``str``
whose repr is masked, so a client that logs its configuration prints the mask).

Imports no Faust at module level: the ``faust`` flavour imports it when asked for.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Literal

from streams.settings import ConfigError, KafkaSecurity

Library = Literal["aiokafka", "kafka-python", "faust"]


class AuthenticationFailed(ConfigError):
    """The cluster refused the SASL credentials (the message names the settings)."""


#: Words in client and broker errors that mean "the broker refused who we said we are".
_AUTH_WORDS = ("authentication", "sasl", "scram", "invalid credentials", "illegalsaslstate")


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The TLS context for the SSL protocols (None for the others), built with aiokafka's
    ``create_ssl_context``: the CA file (or the system's CAs), the client certificate and
    key if set, hostname checking unless turned off. A file that is not a usable PEM
    stops the start with the setting's name."""
    if not security.ssl:
        return None
    from aiokafka.helpers import create_ssl_context

    try:
        context = create_ssl_context(cafile=security.ssl_cafile)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"CROSSINGS_KAFKA_SSL_CAFILE={str(security.ssl_cafile)!r} is not a usable CA bundle "
            f"({_reason(error)}); set it to a PEM file of the CA that signed the brokers' certificates"
        ) from None
    if security.ssl_certfile is not None:
        try:
            context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"CROSSINGS_KAFKA_SSL_CERTFILE={str(security.ssl_certfile)!r} / CROSSINGS_KAFKA_SSL_KEYFILE="
                f"{str(security.ssl_keyfile)!r} are not a usable certificate and key ({_reason(error)}); "
                "set them to the client's PEM certificate and its unencrypted private key"
            ) from None
    if not security.ssl_check_hostname:
        context.check_hostname = False
    return context


def _reason(error: BaseException) -> str:
    return getattr(error, "reason", None) or getattr(error, "strerror", None) or type(error).__name__


def client_kwargs(security: KafkaSecurity, library: Library) -> dict[str, Any]:
    """Keyword arguments that make a client of ``library`` use ``security``.

    ``aiokafka`` and ``kafka-python``: ``security_protocol`` and, as the protocol calls
    for them, ``sasl_mechanism``/``sasl_plain_username``/``sasl_plain_password`` and
    ``ssl_context``. ``faust``: ``broker_credentials`` (``faust.SASLCredentials`` with the
    TLS context for SASL_SSL, ``faust.SSLCredentials`` for SSL), nothing for PLAINTEXT.
    """
    context = ssl_context(security)
    password = security.sasl_password.reveal() if security.sasl_password is not None else None
    if library == "faust":
        import faust

        if security.sasl:
            credentials: Any = faust.SASLCredentials(
                username=security.sasl_username,
                password=password,
                ssl_context=context,
                mechanism=security.sasl_mechanism,
            )
        elif context is not None:
            credentials = faust.SSLCredentials(context)
        else:
            return {}
        return {"broker_credentials": credentials}
    if library not in ("aiokafka", "kafka-python"):
        raise ValueError(f"unknown Kafka client library {library!r}")
    kwargs: dict[str, Any] = {"security_protocol": security.protocol}
    if security.sasl:
        kwargs |= {
            "sasl_mechanism": security.sasl_mechanism,
            "sasl_plain_username": security.sasl_username,
            "sasl_plain_password": password,
        }
    if context is not None:
        kwargs["ssl_context"] = context
        if library == "kafka-python":
            kwargs["ssl_check_hostname"] = security.ssl_check_hostname
    return kwargs


def is_auth_failure(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the broker refused our credentials."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        name = type(seen).__name__.lower()
        if "authentication" in name or "sasl" in name:
            return True
        text = str(seen).lower()
        if any(word in text for word in _AUTH_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def auth_failure_message(bootstrap: str, security: KafkaSecurity) -> str:
    """What to say when the cluster refused our credentials: who we tried to be, and
    which settings to check (never the password itself)."""
    password = "CROSSINGS_KAFKA_SASL_PASSWORD (or CROSSINGS_KAFKA_SASL_PASSWORD_FILE)"
    return (
        f"Kafka at {bootstrap} refused authentication ({security.describe()}): check "
        f"CROSSINGS_KAFKA_SASL_USERNAME, {password} and CROSSINGS_KAFKA_SASL_MECHANISM"
    )


def unreachable_message(bootstrap: str, security: KafkaSecurity, external: bool) -> str:
    """What to say when no broker answered: where we looked and with which protocol."""
    hint = (
        "check KAFKA_BOOTSTRAP"
        if external
        else "start it with `crossings kafka up`, or set CROSSINGS_KAFKA_PORT to the port it runs on"
    )
    if security.protocol != "PLAINTEXT":
        hint += (
            f", and that its listener speaks {security.protocol} "
            "(CROSSINGS_KAFKA_SECURITY_PROTOCOL; for TLS, CROSSINGS_KAFKA_SSL_CAFILE)"
        )
    return f"no Kafka broker answers at {bootstrap} ({security.describe()}); {hint}"


def check_access(bootstrap: str, security: KafkaSecurity, external: bool, timeout: float = 20.0) -> None:
    """Connect to the bootstrap brokers as the settings say and ask one for metadata; on
    failure raise a ConfigError that says why and names the settings to check.

    Run before the other clients start, so that wrong credentials stop a command in about
    a second with "refused authentication": the clients themselves would retry for their
    bootstrap timeout (kafka-python) or fail with "Unable to bootstrap" (aiokafka), and a
    broker that drops a failed SCRAM exchange only shows them a closed socket.
    """
    kwargs = client_kwargs(security, "aiokafka")  # ConfigError here for unusable TLS files
    errors = asyncio.run(_try_hosts(bootstrap, kwargs, timeout))
    if errors is None:
        return
    raise _diagnose(errors, bootstrap, security, external)


async def _try_hosts(bootstrap: str, kwargs: dict[str, Any], timeout: float) -> list[BaseException] | None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.metadata import MetadataRequest

    errors: list[BaseException] = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        conn = None
        try:
            async with asyncio.timeout(timeout):
                conn = await create_conn(
                    host.strip("[]"),
                    int(port),
                    client_id="crossings-access-check",
                    request_timeout_ms=int(timeout * 1000),
                    **kwargs,
                )
                await conn.send(MetadataRequest([]))
            return None
        except (OSError, KafkaError, TimeoutError) as error:  # ssl.SSLError is an OSError
            errors.append(error)
        finally:
            if conn is not None:
                conn.close()
    return errors


def _diagnose(
    errors: list[BaseException], bootstrap: str, security: KafkaSecurity, external: bool
) -> ConfigError:
    if any(type(e).__name__ == "UnsupportedSaslMechanismError" for e in errors):
        return ConfigError(
            f"Kafka at {bootstrap} does not offer SASL mechanism {security.sasl_mechanism}: "
            "set CROSSINGS_KAFKA_SASL_MECHANISM to one its listener enables"
        )
    if security.sasl and any(is_auth_failure(e) for e in errors):
        return AuthenticationFailed(auth_failure_message(bootstrap, security))
    tls = [e for e in map(_tls_error, errors) if e is not None]
    verify = [e for e in tls if isinstance(e, ssl.SSLCertVerificationError)]
    if verify:
        return ConfigError(
            f"TLS to Kafka at {bootstrap} failed: the broker's certificate was not accepted "
            f"({verify[0].verify_message}); set CROSSINGS_KAFKA_SSL_CAFILE to the CA that signed it"
            + (
                " (or CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME=false if its name does not match)"
                if security.ssl_check_hostname
                else ""
            )
        )
    refused = [e for e in tls if "CERTIFICATE" in str(_reason(e)).upper()]
    if refused:
        # An alert from the broker after our side of the handshake (TLS 1.3 sends the
        # client's certificate last): it wanted a certificate, or did not trust ours. The
        # client sees it only as a closed connection whose cause is this SSLError.
        which = (
            "did not accept the client certificate "
            f"CROSSINGS_KAFKA_SSL_CERTFILE={str(security.ssl_certfile)!r}"
            if security.ssl_certfile is not None
            else "asks for a client certificate and none is set"
        )
        return ConfigError(
            f"TLS to Kafka at {bootstrap} failed: the broker {which} ({_reason(refused[0])}); set "
            "CROSSINGS_KAFKA_SSL_CERTFILE and CROSSINGS_KAFKA_SSL_KEYFILE to a client certificate signed "
            "by a CA the broker trusts, and its key"
        )
    if tls:
        return ConfigError(
            f"TLS to Kafka at {bootstrap} failed ({_reason(tls[0])}): check that its listener speaks "
            f"{security.protocol} (CROSSINGS_KAFKA_SECURITY_PROTOCOL) and, if it asks for a client "
            "certificate, CROSSINGS_KAFKA_SSL_CERTFILE and CROSSINGS_KAFKA_SSL_KEYFILE"
        )
    if all(isinstance(e, ConnectionRefusedError | socket.gaierror) for e in errors):
        return ConfigError(unreachable_message(bootstrap, security, external))
    return ConfigError(
        f"Kafka at {bootstrap} accepted a connection but did not answer over {security.describe()} "
        f"({type(errors[0]).__name__}: {errors[0]}): check that its listener speaks {security.protocol} "
        f"(CROSSINGS_KAFKA_SECURITY_PROTOCOL{', CROSSINGS_KAFKA_SASL_MECHANISM' if security.sasl else ''})"
    )


def _tls_error(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``error``: itself, or what caused it (aiokafka wraps a TLS alert
    that arrives after the handshake in a KafkaConnectionError "closed")."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def explain(error: BaseException, bootstrap: str, security: KafkaSecurity, external: bool) -> ConfigError:
    """A client's failure to connect, as a ConfigError naming the settings to check."""
    if security.sasl and is_auth_failure(error):
        return AuthenticationFailed(auth_failure_message(bootstrap, security))
    return ConfigError(unreachable_message(bootstrap, security, external))
