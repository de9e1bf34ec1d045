"""A real ``crossings worker`` with CROSSINGS_WEB_CONFIG_FILE: Faust's own web server serves
/metrics over TLS, refuses it without the password and serves it with, while the probes'
paths stay open. (tests/unit/test_web_access.py checks the same pieces without a broker.)"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import bcrypt
import pytest
import yaml

from load_tests.harness import free_port

pytestmark = pytest.mark.integration


def fetch(url: str, context: ssl.SSLContext | None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_worker_serves_metrics_over_tls_to_the_right_user_only(kafka_bootstrap, tmp_path, need_binary):
    need_binary("openssl", "openssl")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(tmp_path / "server.key"), "-out", str(tmp_path / "server.crt")),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                "basic_auth_users": {"prometheus": hashed},
            }
        )
    )
    namespace = f"it-web-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path / "home"),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_WEB_PORT": str(port),
        "CROSSINGS_WEB_CONFIG_FILE": str(tmp_path / "web.yml"),
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    trusted = ssl.create_default_context(cafile=str(tmp_path / "server.crt"))
    base = f"https://127.0.0.1:{port}"
    password = {"Authorization": "Basic " + base64.b64encode(b"prometheus:s3cret").decode()}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            try:
                healthz = fetch(f"{base}/healthz", trusted)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        without = fetch(f"{base}/metrics", trusted)
        wrong = fetch(
            f"{base}/metrics",
            trusted,
            {"Authorization": "Basic " + base64.b64encode(b"prometheus:guess").decode()},
        )
        right = fetch(f"{base}/metrics", trusted, password)
        readyz = fetch(f"{base}/readyz", trusted)
        with pytest.raises((OSError, http.client.HTTPException)):
            fetch(f"http://127.0.0.1:{port}/metrics", None, password)  # plain HTTP: no answer
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    assert healthz[0] == 200
    assert readyz[0] in (200, 503)  # answered without a password, whatever the group's state
    assert without[0] == 401 and wrong[0] == 401 and "crossings_" not in without[1] + wrong[1]
    assert right[0] == 200 and "crossings_commit_seconds" in right[1]
