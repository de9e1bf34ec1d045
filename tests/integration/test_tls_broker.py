"""TLS and the SASL mechanisms other than SCRAM-SHA-512, against the real embedded broker.

One broker (started once for the module) with a listener of each kind, every certificate
from a throwaway CA made here with ``openssl``:

    SSL       the broker proves who it is (server certificate signed by the test CA)
    MTLS      SSL that also requires a client certificate signed by the test CA
    SASL_SSL  TLS, then SCRAM-SHA-256 or PLAIN (one user, one password, both mechanisms)

The commands read nothing but the project's settings (``CROSSINGS_KAFKA_SECURITY_PROTOCOL``,
``CROSSINGS_KAFKA_SSL_*``, ``CROSSINGS_KAFKA_SASL_*``, ``KAFKA_BOOTSTRAP``): ``crossings
topics`` (kafka-python's admin), ``crossings replay`` (aiokafka's consumer) and a worker
(Faust and aiokafka's transactional producers) count the events a kafka-python producer
sent over each listener; a wrong password, a CA that did not sign the broker's certificate,
a missing or foreign client certificate and a mechanism the listener does not offer each
stop a command within seconds, with a message that names the setting to fix.

The broker's own inter-broker listener is PLAINTEXT (127.0.0.1 only); no client here uses it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from load_tests.harness import WorkerProcess, free_port
from streams import query
from streams.ops import broker
from streams.ops.broker import ScramListener
from streams.ops.broker.jvm import ensure_formatted, find_java, render_config
from streams.ops.broker.layout import layout_of
from streams.ops.security import client_kwargs
from streams.settings import Secret, load_settings

pytestmark = pytest.mark.integration

#: Inter-broker PLAINTEXT listener; the controller takes PORT + 1, the client listeners the next three.
PORT = int(os.environ.get("CROSSINGS_TEST_TLS_KAFKA_PORT", "19692"))
LISTENERS = {"SSL": PORT + 2, "MTLS": PORT + 3, "SASL_SSL": PORT + 4}
USER = "crossings-tls"
PASSWORD = f"it-{uuid.uuid4().hex}"
WRONG = f"wrong-{uuid.uuid4().hex}"
EVENTS = 9
#: A command with wrong security settings must stop within this many seconds.
FAIL_FAST_S = 60


def openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def new_ca(folder: Path, name: str) -> None:
    """``name``.key and ``name``.pem: a self-signed CA."""
    openssl(
        folder,
        *(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN=crossings-test-{name}",
        ),
        *("-addext", "basicConstraints=critical,CA:TRUE", "-keyout", f"{name}.key", "-out", f"{name}.pem"),
    )


def new_leaf(folder: Path, name: str, ca: str) -> None:
    """``name``.key and ``name``.pem, signed by ``ca``, valid for 127.0.0.1 (server and client use)."""
    (folder / "leaf.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl(
        folder,
        *("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}"),
        *("-keyout", f"{name}.key", "-out", f"{name}.csr"),
    )
    openssl(
        folder,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-days", "2", "-extfile", "leaf.ext", "-out", f"{name}.pem"),
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory, need_binary) -> Path:
    """The test CA and what it signed (broker, client), and another CA with its own client."""
    need_binary("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls-certs")
    new_ca(folder, "ca")
    new_leaf(folder, "broker", "ca")
    new_leaf(folder, "client", "ca")
    new_ca(folder, "other-ca")
    new_leaf(folder, "stranger", "other-ca")
    # Kafka's PEM key store: the unencrypted PKCS#8 key, then the certificate.
    (folder / "broker-keystore.pem").write_text(
        (folder / "broker.key").read_text() + (folder / "broker.pem").read_text()
    )
    return folder


def tls_properties(certs: Path) -> str:
    """The listeners this module adds to the embedded broker's rendered config."""
    names = ",".join(f"{name}://127.0.0.1:{port}" for name, port in LISTENERS.items())
    plain_users = f'user_{USER}="{PASSWORD}"'
    return "\n".join(
        [
            "",
            "############################# TLS test listeners #############################",
            f"listeners=PLAINTEXT://127.0.0.1:{PORT},CONTROLLER://127.0.0.1:{PORT + 1},{names}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{PORT},{names}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,MTLS:SSL,"
            "SASL_SSL:SASL_SSL",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={certs / 'broker-keystore.pem'}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={certs / 'ca.pem'}",
            "listener.name.mtls.ssl.client.auth=required",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256,PLAIN",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            "",
        ]
    )


@pytest.fixture(scope="module")
def tls_broker(certs, tmp_path_factory):
    """The embedded broker, its config rendered as ``crossings kafka up`` would, with the
    three listener lines replaced by the TLS listeners above; the SCRAM-SHA-256 user is made
    when the storage is formatted, as for the SCRAM broker."""
    kafka_dir = tmp_path_factory.mktemp("tls-kafka")
    layout = layout_of(kafka_dir)
    java = find_java()
    broker.install_jars(layout.root)
    render_config(layout, PORT)
    rendered = layout.server_properties.read_text()
    rendered = re.sub(
        r"^(advertised\.)?listeners=.*\n|^listener\.security\.protocol\.map=.*\n", "", rendered, flags=re.M
    )
    layout.server_properties.write_text(rendered + tls_properties(certs))
    ensure_formatted(layout, java, ScramListener(USER, Secret(PASSWORD), "SCRAM-SHA-256"))
    try:
        broker.launch(layout.root, PORT, timeout=240, java=java)
        yield certs
    finally:
        broker.down(layout.root)


#: How each kind of client reaches the broker: its listener and its security settings.
KINDS = {
    "ssl": ("SSL", {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL"}),
    "mtls": (
        "MTLS",
        {
            "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL",
            "CROSSINGS_KAFKA_SSL_CERTFILE": "{certs}/client.pem",
            "CROSSINGS_KAFKA_SSL_KEYFILE": "{certs}/client.key",
        },
    ),
    "scram-sha-256": (
        "SASL_SSL",
        {
            "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CROSSINGS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "CROSSINGS_KAFKA_SASL_USERNAME": USER,
            "CROSSINGS_KAFKA_SASL_PASSWORD": PASSWORD,
        },
    ),
    "plain": (
        "SASL_SSL",
        {
            "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CROSSINGS_KAFKA_SASL_MECHANISM": "PLAIN",
            "CROSSINGS_KAFKA_SASL_USERNAME": USER,
            "CROSSINGS_KAFKA_SASL_PASSWORD": PASSWORD,
        },
    ),
}


def settings_env(kind: str, certs: Path, home: Path, **changes: str) -> dict[str, str]:
    """Every variable a command reads, for a client of ``kind`` in its own home and namespace."""
    listener, security = KINDS[kind]
    namespace = f"it-tls-{kind}-{uuid.uuid4().hex[:8]}"
    env = {
        "CROSSINGS_HOME": str(home),
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{LISTENERS[listener]}",
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        "CROSSINGS_LAKE_ROLL_SECONDS": "0",
        "CROSSINGS_KAFKA_SSL_CAFILE": str(certs / "ca.pem"),
        **{name: value.format(certs=certs) for name, value in security.items()},
        **changes,
    }
    # Whatever the caller's shell holds is not this test's: every other security setting blank.
    for name in os.environ:
        if name.startswith("CROSSINGS_KAFKA_") and name not in env:
            env[name] = ""
    return env


def crossings(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def send_events(env: dict[str, str], n: int) -> None:
    """``n`` events on the events topic, sent by kafka-python with the same settings."""
    settings = load_settings({k: v for k, v in env.items() if v})
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", **client_kwargs(settings.security, "kafka-python")
    )
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(n):
        value = {
            "version": 1,
            "event_id": f"tls-{uuid.uuid4().hex}",
            "checkpoint_id": "zhibek-zholy",
            "direction": "entry",
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "nationality": "UZB",
            "purpose": "labour",
            "mode": "car",
            "outcome": "admitted",
        }
        producer.send(settings.topics.events, key=b"zhibek-zholy", value=json.dumps(value).encode())
    producer.flush()
    producer.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_topics_replay_and_a_worker_count_the_events_over(kind, tls_broker, tmp_path):
    env = settings_env(kind, tls_broker, tmp_path / "home")
    topics = crossings(env, "topics")
    assert topics.returncode == 0, topics.stdout + topics.stderr
    send_events(env, EVENTS)

    replayed = crossings(env, "replay", "--data", str(tmp_path / "replayed"), "--state", str(tmp_path / "st"))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replayed {EVENTS} records" in replayed.stdout
    assert query.events_count(tmp_path / "replayed") == EVENTS

    data_dir = load_settings({k: v for k, v in env.items() if v}).data_dir
    worker = WorkerProcess(env, free_port(), tmp_path / "worker.log")
    worker.start(timeout=240)
    try:
        worker.wait_handled(EVENTS, timeout=300)
        deadline = time.monotonic() + 120
        while query.events_count(data_dir) < EVENTS and time.monotonic() < deadline:
            time.sleep(0.5)
        counted = query.events_count(data_dir)
    finally:
        stopped = worker.stop()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert stopped == 0, log[-3000:]
    assert counted == EVENTS, log[-3000:]
    assert PASSWORD not in topics.stdout + topics.stderr + replayed.stdout + replayed.stderr + log


WRONG_PASSWORD = ("refused authentication", "CROSSINGS_KAFKA_SASL_PASSWORD")
UNTRUSTED_CA = ("certificate was not accepted", "CROSSINGS_KAFKA_SSL_CAFILE")
NO_CLIENT_CERTIFICATE = ("asks for a client certificate and none is set", "CROSSINGS_KAFKA_SSL_CERTFILE")
STRANGER = {
    "CROSSINGS_KAFKA_SSL_CERTFILE": "{certs}/stranger.pem",
    "CROSSINGS_KAFKA_SSL_KEYFILE": "{certs}/stranger.key",
}
#: id -> (command, kind of client, settings changed from that kind's, words the error must hold).
#: The worker starts with the same access check as ``crossings topics``: three cases show it.
MISTAKES = {
    "scram-sha-256-wrong-password": (
        "topics",
        "scram-sha-256",
        {"CROSSINGS_KAFKA_SASL_PASSWORD": WRONG},
        WRONG_PASSWORD,
    ),
    "plain-wrong-password": ("topics", "plain", {"CROSSINGS_KAFKA_SASL_PASSWORD": WRONG}, WRONG_PASSWORD),
    "plain-unknown-user": ("topics", "plain", {"CROSSINGS_KAFKA_SASL_USERNAME": "nobody"}, WRONG_PASSWORD),
    "worker-scram-sha-256-wrong-password": (
        "worker",
        "scram-sha-256",
        {"CROSSINGS_KAFKA_SASL_PASSWORD": WRONG},
        WRONG_PASSWORD,
    ),
    "mechanism-not-offered": (
        "topics",
        "scram-sha-256",
        {"CROSSINGS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
        ("does not offer SASL mechanism SCRAM-SHA-512", "CROSSINGS_KAFKA_SASL_MECHANISM"),
    ),
    "ssl-untrusted-ca": (
        "topics",
        "ssl",
        {"CROSSINGS_KAFKA_SSL_CAFILE": "{certs}/other-ca.pem"},
        UNTRUSTED_CA,
    ),
    "sasl-ssl-untrusted-ca": (
        "topics",
        "plain",
        {"CROSSINGS_KAFKA_SSL_CAFILE": "{certs}/other-ca.pem"},
        UNTRUSTED_CA,
    ),
    "worker-ssl-untrusted-ca": (
        "worker",
        "ssl",
        {"CROSSINGS_KAFKA_SSL_CAFILE": "{certs}/other-ca.pem"},
        UNTRUSTED_CA,
    ),
    "mtls-no-client-certificate": (
        "topics",
        "mtls",
        {"CROSSINGS_KAFKA_SSL_CERTFILE": "", "CROSSINGS_KAFKA_SSL_KEYFILE": ""},
        NO_CLIENT_CERTIFICATE,
    ),
    "worker-mtls-no-client-certificate": (
        "worker",
        "mtls",
        {"CROSSINGS_KAFKA_SSL_CERTFILE": "", "CROSSINGS_KAFKA_SSL_KEYFILE": ""},
        NO_CLIENT_CERTIFICATE,
    ),
    "mtls-client-certificate-of-another-ca": (
        "topics",
        "mtls",
        STRANGER,
        ("did not accept the client certificate", "CROSSINGS_KAFKA_SSL_CERTFILE"),
    ),
    "plaintext-client-on-a-tls-listener": (
        "topics",
        "ssl",
        {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "CROSSINGS_KAFKA_SSL_CAFILE": ""},
        ("did not answer over PLAINTEXT", "CROSSINGS_KAFKA_SECURITY_PROTOCOL"),
    ),
}


@pytest.mark.parametrize(("command", "kind", "changes", "words"), MISTAKES.values(), ids=MISTAKES.keys())
def test_wrong_security_stops_the_command_quickly_naming_the_setting(
    tls_broker, tmp_path, command, kind, changes, words
):
    changes = {name: value.format(certs=tls_broker) for name, value in changes.items()}
    env = settings_env(kind, tls_broker, tmp_path / "home", **changes)
    if command == "worker":
        env["CROSSINGS_WEB_PORT"] = str(free_port())
    started = time.monotonic()
    result = crossings(env, command, timeout=FAIL_FAST_S + 60)
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert took < FAIL_FAST_S, f"{took:.0f}s\n{output}"
    for word in words:
        assert word in output, output
    assert PASSWORD not in output and WRONG not in output
