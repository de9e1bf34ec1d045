"""``CROSSINGS_WEB_CONFIG_FILE``: TLS and basic auth for the worker's and notify's web
server, in the Prometheus exporter-toolkit's web-config format, so one file (and one
Prometheus ``scrape_config`` with ``basic_auth`` and ``tls_config``) serves both::

    tls_server_config:
      cert_file: server.crt          # relative paths: from the file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: ca.crt
      min_version: TLS12             # optional: TLS12 (default) or TLS13
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':')

Read and checked at start-up (files readable, the certificate and key a pair, every
password a bcrypt hash): a mistake stops the process naming the key and the fix, never
a server that quietly answers without the protection asked for. Keys of the toolkit this
project does not implement (``http_server_config``, cipher suites, ...) are refused the
same way rather than ignored.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from streams.settings.values import ConfigError

SETTING = "CROSSINGS_WEB_CONFIG_FILE"

#: The exporter-toolkit's client_auth_type values, as Python's ssl can honour them.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
MIN_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version"}


@dataclass(frozen=True)
class TlsServer:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"

    def context(self) -> ssl.SSLContext:
        """A server context; ConfigError naming the file when it cannot be used."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = MIN_VERSIONS[self.min_version]
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"{SETTING}: tls_server_config cert_file {str(self.cert_file)!r} and key_file "
                f"{str(self.key_file)!r} cannot be loaded as a certificate and its key ({error}); "
                "give a PEM certificate and the PEM private key that goes with it"
            ) from None
        context.verify_mode = CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"{SETTING}: tls_server_config client_ca_file {str(self.client_ca_file)!r} "
                    f"cannot be loaded ({error}); give a PEM CA certificate"
                ) from None
        return context


@dataclass(frozen=True)
class WebConfig:
    path: Path
    tls: TlsServer | None = None
    #: user name -> bcrypt hash; empty: no basic auth.
    users: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def load_web_config(env: Mapping[str, str]) -> WebConfig | None:
    raw = env.get(SETTING)
    if not raw:
        return None
    path = Path(raw).expanduser()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{SETTING}={raw!r} cannot be read ({reason}); set it to a readable file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{SETTING}={raw!r} is not YAML ({error})") from None
    document = document or {}
    if not isinstance(document, dict):
        raise ConfigError(f"{SETTING}={raw!r}: expected a mapping (tls_server_config, basic_auth_users)")
    unknown = sorted(set(document) - {"tls_server_config", "basic_auth_users"})
    if unknown:
        raise ConfigError(
            f"{SETTING}={raw!r}: {', '.join(unknown)} not supported here; only tls_server_config and "
            "basic_auth_users are (remove the others)"
        )
    config = WebConfig(
        path,
        tls=_tls(document.get("tls_server_config"), path.parent),
        users=_users(document.get("basic_auth_users")),
    )
    if config.tls is not None:
        config.tls.context()  # a key that does not load stops the start, not the first scrape
    return config


def _tls(section: object, folder: Path) -> TlsServer | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{SETTING}: tls_server_config must be a mapping (cert_file, key_file, ...)")
    unknown = sorted(set(section) - _TLS_KEYS)
    if unknown:
        raise ConfigError(
            f"{SETTING}: tls_server_config {', '.join(unknown)} not supported here; "
            f"use only {', '.join(sorted(_TLS_KEYS))}"
        )

    def file(key: str) -> Path | None:
        value = section.get(key)
        if value in (None, ""):
            return None
        found = folder / Path(str(value)).expanduser()
        if not found.is_file():
            raise ConfigError(f"{SETTING}: tls_server_config {key} {str(found)!r}: no such file")
        return found

    cert, key = file("cert_file"), file("key_file")
    if cert is None or key is None:
        raise ConfigError(f"{SETTING}: tls_server_config needs both cert_file and key_file")
    client_auth = str(section.get("client_auth_type") or "NoClientCert")
    if client_auth not in CLIENT_AUTH:
        raise ConfigError(
            f"{SETTING}: tls_server_config client_auth_type {client_auth!r} is not one of "
            f"{', '.join(CLIENT_AUTH)}"
        )
    client_ca = file("client_ca_file")
    if client_auth != "NoClientCert" and client_ca is None:
        raise ConfigError(f"{SETTING}: client_auth_type {client_auth} needs client_ca_file (the CA to trust)")
    min_version = str(section.get("min_version") or "TLS12")
    if min_version not in MIN_VERSIONS:
        raise ConfigError(
            f"{SETTING}: tls_server_config min_version {min_version!r} is not one of "
            f"{', '.join(MIN_VERSIONS)}"
        )
    return TlsServer(cert, key, client_auth, client_ca, min_version)


def _users(section: object) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{SETTING}: basic_auth_users must map user names to bcrypt hashes")
    users = {}
    for user, hashed in section.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise ConfigError(f"{SETTING}: basic_auth_users: {user!r} is not a user name (no ':')")
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            raise ConfigError(
                f"{SETTING}: basic_auth_users {user}: not a bcrypt hash; put the hash, not the password "
                "(htpasswd -nBC 10 \"\" | tr -d ':\\n', or python -c 'import bcrypt; "
                'print(bcrypt.hashpw(b"PASSWORD", bcrypt.gensalt()).decode())\')'
            )
        users[user] = hashed.encode()
    return users
