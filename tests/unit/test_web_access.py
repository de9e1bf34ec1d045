"""CROSSINGS_WEB_CONFIG_FILE (the exporter-toolkit's web-config format) on the worker's and
notify's web servers: /metrics refused without credentials, served with them, over TLS
with a certificate made here; the probes' paths open; a bad file stops the start naming
the key and the fix."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import bcrypt
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from load_tests.harness import free_port
from streams.notify.health import NotifyHealth
from streams.notify.metrics import NotifyMetrics
from streams.notify.runner import serve_metrics
from streams.settings import ConfigError, load_settings

PASSWORD = "correct horse battery staple"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture
def certificate(tmp_path: Path, need_binary) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    need_binary("openssl", "openssl")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def web_config(tmp_path: Path, document: dict) -> dict[str, str]:
    path = tmp_path / "web-config.yml"
    path.write_text(yaml.safe_dump(document))
    return {"CROSSINGS_WEB_CONFIG_FILE": str(path)}


def test_notify_metrics_need_the_password_and_are_served_over_tls(tmp_path, certificate):
    cert, _ = certificate
    env = web_config(
        tmp_path,
        {
            # relative to the file's folder, as the exporter-toolkit reads them
            "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
            "basic_auth_users": {
                "prometheus": hashed(PASSWORD),
                "$2y-style": hashed("other").replace("$2b$", "$2y$"),
            },
        },
    )
    settings = load_settings(env)
    port = free_port()
    metrics = NotifyMetrics()
    metrics.retries.labels("webhook", "http://hook:80").inc()

    async def go() -> dict[str, object]:
        runner = await serve_metrics(metrics, NotifyHealth(), "127.0.0.1", port, settings.web)
        trusted = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}"
        seen: dict[str, object] = {}
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as session:
                for name, headers in {
                    "none": {},
                    "wrong": basic("prometheus", "guess"),
                    "unknown": basic("nobody", PASSWORD),
                    "right": basic("prometheus", PASSWORD),
                    "again": basic("prometheus", PASSWORD),  # remembered: no second bcrypt
                    "2y": basic("$2y-style", "other"),
                }.items():
                    async with session.get(f"{url}/metrics", headers=headers) as response:
                        seen[name] = (response.status, await response.text(), response.headers)
                async with session.get(f"{url}/healthz") as response:
                    seen["healthz"] = response.status
                async with session.get(f"{url}/readyz") as response:
                    seen["readyz"] = response.status
            async with aiohttp.ClientSession() as plain:
                try:
                    async with plain.get(
                        f"http://127.0.0.1:{port}/metrics", headers=basic("prometheus", PASSWORD)
                    ):
                        seen["plain"] = "answered"
                except aiohttp.ClientError as error:
                    seen["plain"] = type(error).__name__
        finally:
            await runner.cleanup()
        return seen

    seen = asyncio.run(go())
    for name in ("none", "wrong", "unknown"):
        status, body, headers = seen[name]
        assert status == 401, name
        assert "crossings_notify" not in body
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
    for name in ("right", "again", "2y"):
        status, body, _ = seen[name]
        assert status == 200, name
        assert 'crossings_notify_retries_total{sink="webhook",target="http://hook:80"} 1.0' in body
    assert seen["healthz"] == 200 and seen["readyz"] == 200  # the probes need no password
    assert seen["plain"] != "answered"  # plain HTTP on the TLS port gets nothing


def test_the_worker_web_server_asks_for_the_password_except_on_the_probes(tmp_path):
    from streams.worker.faust_app import create_app

    env = {
        "CROSSINGS_HOME": str(tmp_path / "home"),
        **web_config(tmp_path, {"basic_auth_users": {"prometheus": hashed(PASSWORD)}}),
    }
    app = create_app(load_settings(env))
    app.web.init_server()  # Faust's pages on its aiohttp application
    # No consumer runs here: readiness as a worker still joining its group would say.
    not_ready = SimpleNamespace(ready=False, as_json=lambda: {"ready": False})
    app.worker_core.readiness = lambda: not_ready

    async def go() -> dict[str, int]:
        client = TestClient(TestServer(app.web.web_app))
        await client.start_server()
        try:
            seen = {}
            for name, path, headers in [
                ("metrics", "/metrics", {}),
                ("metrics wrong", "/metrics", basic("prometheus", "guess")),
                ("metrics right", "/metrics", basic("prometheus", PASSWORD)),
                ("status page", "/", {}),
                ("healthz", "/healthz", {}),
                ("readyz", "/readyz", {}),
            ]:
                response = await client.get(path, headers=headers)
                seen[name] = response.status
                if name == "metrics right":
                    assert "crossings_" in await response.text()
            return seen
        finally:
            await client.close()

    seen = asyncio.run(go())
    assert seen["metrics"] == seen["metrics wrong"] == seen["status page"] == 401
    assert seen["metrics right"] == 200
    assert seen["healthz"] == 200 and seen["readyz"] == 503  # answered without a password


def test_the_worker_serves_tls_when_the_file_asks(tmp_path, certificate):
    from streams.worker.faust_app import create_app

    env = {
        "CROSSINGS_HOME": str(tmp_path / "home"),
        **web_config(tmp_path, {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}),
    }
    app = create_app(load_settings(env))
    assert isinstance(app.conf.web_ssl_context, ssl.SSLContext)  # Faust's TCPSite takes it
    assert app.conf.web_ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert create_app(load_settings({"CROSSINGS_HOME": str(tmp_path / "h2")})).conf.web_ssl_context is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"basic_auth_users": {"prometheus": PASSWORD}}, r"basic_auth_users prometheus: not a bcrypt hash"),
        (
            {"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}},
            r"cert_file .*no such",
        ),
        ({"tls_server_config": {"cert_file": "web-config.yml"}}, r"needs both cert_file and key_file"),
        ({"http_server_config": {"http2": False}}, r"http_server_config not supported"),
        (
            {"tls_server_config": {"cert_file": "web-config.yml", "key_file": "web-config.yml"}},
            r"cannot be loaded",
        ),
    ],
)
def test_a_bad_web_config_file_stops_the_start_naming_the_fix(tmp_path, document, message):
    with pytest.raises(ConfigError, match=rf"CROSSINGS_WEB_CONFIG_FILE.*{message}"):
        load_settings(web_config(tmp_path, document))


def test_a_web_config_file_that_is_missing_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"CROSSINGS_WEB_CONFIG_FILE=.*cannot be read"):
        load_settings({"CROSSINGS_WEB_CONFIG_FILE": str(tmp_path / "nope.yml")})
