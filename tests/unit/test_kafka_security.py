"""Kafka security settings: validated at start-up, turned into each client library's
keyword arguments, and the password never shown."""

from __future__ import annotations

import logging
import pickle
import ssl
import subprocess
from pathlib import Path

import pytest

from streams.ops.broker import ScramListener
from streams.ops.broker.jvm import check_security, render_config, security_stamp
from streams.ops.broker.layout import BrokerError, layout_of
from streams.ops.security import client_kwargs, explain, ssl_context
from streams.settings import ConfigError, RevealedSecret, Secret, load_settings

PASSWORD = "s3cret-Pa55word"
SASL = {
    "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "CROSSINGS_KAFKA_SASL_USERNAME": "alice",
    "CROSSINGS_KAFKA_SASL_PASSWORD": PASSWORD,
}


def test_default_is_plaintext_and_changes_no_client():
    security = load_settings({}).security
    assert security.protocol == "PLAINTEXT"
    assert client_kwargs(security, "aiokafka") == {"security_protocol": "PLAINTEXT"}
    assert client_kwargs(security, "kafka-python") == {"security_protocol": "PLAINTEXT"}
    assert client_kwargs(security, "faust") == {}


def test_sasl_defaults_to_scram_sha_512_and_fills_every_library():
    security = load_settings(SASL).security
    assert security.sasl_mechanism == "SCRAM-SHA-512"
    for library in ("aiokafka", "kafka-python"):
        kwargs = client_kwargs(security, library)
        assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert kwargs["sasl_plain_username"] == "alice"
        assert kwargs["sasl_plain_password"] == PASSWORD
        assert PASSWORD not in repr(kwargs)  # a client logging its config shows the mask
    credentials = client_kwargs(security, "faust")["broker_credentials"]
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert isinstance(credentials, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("alice", PASSWORD)
    assert PASSWORD not in repr(credentials)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "plain", "scram-sha-512"])
def test_other_mechanisms(mechanism):
    security = load_settings({**SASL, "CROSSINGS_KAFKA_SASL_MECHANISM": mechanism}).security
    assert security.sasl_mechanism == mechanism.upper()


def test_the_password_is_masked_everywhere_it_could_be_printed(caplog):
    settings = load_settings(SASL)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.security)
    assert PASSWORD not in f"{settings.security.sasl_password}"
    assert PASSWORD not in settings.security.describe()
    assert settings.security.sasl_password.reveal() == PASSWORD
    revealed = settings.security.sasl_password.reveal()
    assert isinstance(revealed, RevealedSecret)
    assert PASSWORD not in repr({"sasl_plain_password": revealed})
    with pytest.raises(TypeError):
        pickle.dumps(settings.security.sasl_password)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings: %s / %r", settings, settings.security)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(ScramListener("alice", settings.security.sasl_password))
    error = explain(RuntimeError("SaslAuthenticationFailed"), "b:9092", settings.security, True)
    assert "refused authentication" in str(error) and "CROSSINGS_KAFKA_SASL_PASSWORD" in str(error)
    assert PASSWORD not in str(error)


def test_password_file_is_read_at_start_up_without_its_trailing_newline(tmp_path):
    file = tmp_path / "password"
    file.write_text(PASSWORD + "\n")
    env = {**SASL, "CROSSINGS_KAFKA_SASL_PASSWORD": "", "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": str(file)}
    assert load_settings(env).security.sasl_password == Secret(PASSWORD)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "TLS"}, "CROSSINGS_KAFKA_SECURITY_PROTOCOL"),
        ({**SASL, "CROSSINGS_KAFKA_SASL_MECHANISM": "GSSAPI"}, "CROSSINGS_KAFKA_SASL_MECHANISM"),
        ({**SASL, "CROSSINGS_KAFKA_SASL_USERNAME": ""}, "CROSSINGS_KAFKA_SASL_USERNAME"),
        ({**SASL, "CROSSINGS_KAFKA_SASL_PASSWORD": ""}, "CROSSINGS_KAFKA_SASL_PASSWORD"),
        (
            {**SASL, "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": "/nonexistent"},
            "CROSSINGS_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {
                **SASL,
                "CROSSINGS_KAFKA_SASL_PASSWORD": "",
                "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": "/nonexistent",
            },
            "CROSSINGS_KAFKA_SASL_PASSWORD_FILE",
        ),
        ({"CROSSINGS_KAFKA_SASL_PASSWORD": PASSWORD}, "CROSSINGS_KAFKA_SASL_PASSWORD"),  # with PLAINTEXT
        ({**SASL, "CROSSINGS_KAFKA_SSL_CAFILE": "/etc/hosts"}, "CROSSINGS_KAFKA_SSL_CAFILE"),
        (
            {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL", "CROSSINGS_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            "CROSSINGS_KAFKA_SSL_CAFILE",
        ),
        (
            {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL", "CROSSINGS_KAFKA_SSL_KEYFILE": "/etc/hosts"},
            "CROSSINGS_KAFKA_SSL_KEYFILE",
        ),
        (
            {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL", "CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME": "maybe"},
            "CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME",
        ),
    ],
)
def test_bad_security_settings_name_the_variable(env, names):
    with pytest.raises(ConfigError, match=names) as raised:
        load_settings(env)
    assert PASSWORD not in str(raised.value)


def test_password_and_password_file_together_are_refused(tmp_path):
    file = tmp_path / "password"
    file.write_text(PASSWORD)
    with pytest.raises(ConfigError, match="only one"):
        load_settings({**SASL, "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": str(file)})


def test_an_empty_password_file_is_refused(tmp_path):
    file = tmp_path / "password"
    file.write_text("\n")
    env = {**SASL, "CROSSINGS_KAFKA_SASL_PASSWORD": "", "CROSSINGS_KAFKA_SASL_PASSWORD_FILE": str(file)}
    with pytest.raises(ConfigError, match=r"CROSSINGS_KAFKA_SASL_PASSWORD_FILE.*empty"):
        load_settings(env)


@pytest.fixture(scope="module")
def certs(tmp_path_factory, need_binary) -> dict[str, Path]:
    """A CA, and a client certificate it signed (openssl: skipped without it, a failure
    where CROSSINGS_REQUIRE_SYSTEM_PACKAGES=1, as in CI, which installs it)."""
    need_binary("openssl", "openssl")
    folder = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    new_key = ("-newkey", "rsa:2048", "-nodes", "-subj")
    run(
        "req", "-x509", *new_key, "/CN=crossings-test-ca", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"
    )
    run("req", *new_key, "/CN=client", "-keyout", "client.key", "-out", "client.csr")
    run(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "client.pem",
    )
    return {"ca": folder / "ca.pem", "cert": folder / "client.pem", "key": folder / "client.key"}


def test_ssl_settings_build_a_verifying_context_for_every_library(certs):
    env = {
        "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CROSSINGS_KAFKA_SASL_USERNAME": "alice",
        "CROSSINGS_KAFKA_SASL_PASSWORD": PASSWORD,
        "CROSSINGS_KAFKA_SSL_CAFILE": str(certs["ca"]),
        "CROSSINGS_KAFKA_SSL_CERTFILE": str(certs["cert"]),
        "CROSSINGS_KAFKA_SSL_KEYFILE": str(certs["key"]),
    }
    security = load_settings(env).security
    context = ssl_context(security)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # ours, not the system's
    assert client_kwargs(security, "aiokafka")["ssl_context"] is not None
    assert client_kwargs(security, "kafka-python")["security_protocol"] == "SASL_SSL"
    credentials = client_kwargs(security, "faust")["broker_credentials"]
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None
    no_check = load_settings({**env, "CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME": "false"}).security
    assert not ssl_context(no_check).check_hostname
    tls_only = load_settings(
        {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL", "CROSSINGS_KAFKA_SSL_CAFILE": str(certs["ca"])}
    ).security
    assert type(client_kwargs(tls_only, "faust")["broker_credentials"]).__name__ == "SSLCredentials"


def test_a_ca_file_that_is_not_a_certificate_is_refused_with_its_setting(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    security = load_settings(
        {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL", "CROSSINGS_KAFKA_SSL_CAFILE": str(bogus)}
    ).security
    with pytest.raises(ConfigError, match="CROSSINGS_KAFKA_SSL_CAFILE"):
        ssl_context(security)


def test_a_key_that_does_not_match_is_refused_with_its_settings(certs):
    security = load_settings(
        {
            "CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL",
            "CROSSINGS_KAFKA_SSL_CAFILE": str(certs["ca"]),
            "CROSSINGS_KAFKA_SSL_CERTFILE": str(certs["ca"]),  # the CA's certificate, the client's key
            "CROSSINGS_KAFKA_SSL_KEYFILE": str(certs["key"]),
        }
    ).security
    with pytest.raises(ConfigError, match="CROSSINGS_KAFKA_SSL_CERTFILE"):
        ssl_context(security)


def test_embedded_broker_config_plaintext_by_default_scram_when_asked(tmp_path):
    layout = layout_of(tmp_path / "plain")
    render_config(layout, 19000)
    text = layout.server_properties.read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:19000,CONTROLLER://127.0.0.1:19001" in text
    assert "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" in text
    assert "inter.broker.listener.name=PLAINTEXT" in text
    settings_lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in settings_lines if "sasl" in line.lower()]

    scram = ScramListener("alice", Secret(PASSWORD))
    layout = layout_of(tmp_path / "scram")
    render_config(layout, 19000, scram)
    text = layout.server_properties.read_text()
    assert "advertised.listeners=SASL_PLAINTEXT://127.0.0.1:19000" in text
    assert "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT" in text
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in text
    assert "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=" in text
    assert layout.server_properties.stat().st_mode & 0o077 == 0  # holds the password: owner only
    assert PASSWORD not in security_stamp(scram)


def test_embedded_broker_refuses_data_formatted_for_other_credentials(tmp_path):
    layout = layout_of(tmp_path)
    scram = ScramListener("alice", Secret(PASSWORD))
    check_security(layout, None)  # no stamp: formatted before SCRAM existed, PLAINTEXT
    with pytest.raises(BrokerError, match="PLAINTEXT listener"):
        check_security(layout, scram)
    layout.security_stamp.write_text(security_stamp(scram))
    check_security(layout, scram)
    with pytest.raises(BrokerError, match="another SCRAM user or password"):
        check_security(layout, ScramListener("alice", Secret("other")))
    with pytest.raises(BrokerError, match="SCRAM listener"):
        check_security(layout, None)


@pytest.mark.parametrize(
    ("scram", "words"),
    [
        (ScramListener("alice", Secret("has space")), "password"),
        (ScramListener("al ice", Secret(PASSWORD)), "USERNAME"),
        (ScramListener("alice", Secret(PASSWORD), "PLAIN"), "MECHANISM"),
    ],
)
def test_embedded_broker_refuses_credentials_it_cannot_write(scram, words):
    with pytest.raises(BrokerError, match=words) as raised:
        scram.check()
    assert "has space" not in str(raised.value)


@pytest.fixture
def tls_server(certs):
    """A TLS listener (not Kafka) presenting ``client.pem`` (signed by the test CA, named
    "client", so not 127.0.0.1): enough to see which certificate checks the clients make."""
    import socket
    import threading

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["cert"], certs["key"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    tls.recv(1024)  # the client's first request; then hang up
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def _tls_settings(ca: Path, **extra: str):
    return load_settings(
        {"CROSSINGS_KAFKA_SECURITY_PROTOCOL": "SSL", "CROSSINGS_KAFKA_SSL_CAFILE": str(ca), **extra}
    ).security


def test_a_broker_certificate_from_another_ca_is_refused_naming_the_ca_setting(certs, tls_server, tmp_path):
    from streams.ops.security import check_access

    other = tmp_path / "other-ca.pem"
    new_ca = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=other-ca",
        "-days",
        "2",
    ]
    subprocess.run(
        [*new_ca, "-keyout", str(tmp_path / "other.key"), "-out", str(other)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with pytest.raises(ConfigError, match="CROSSINGS_KAFKA_SSL_CAFILE") as raised:
        check_access(tls_server, _tls_settings(other), external=True, timeout=10)
    assert "certificate was not accepted" in str(raised.value)


def test_hostname_checking_is_on_unless_turned_off(certs, tls_server):
    from streams.ops.security import check_access

    with pytest.raises(ConfigError, match="CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME=false") as raised:
        check_access(tls_server, _tls_settings(certs["ca"]), external=True, timeout=10)
    assert "certificate was not accepted" in str(raised.value)
    # Without the name check the handshake succeeds; this server is not Kafka, so no answer.
    security = _tls_settings(certs["ca"], CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME="false")
    with pytest.raises(ConfigError, match="did not answer over SSL"):
        check_access(tls_server, security, external=True, timeout=10)
