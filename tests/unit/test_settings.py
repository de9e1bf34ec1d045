"""Configuration fails fast, naming the variable and how to fix it."""

from __future__ import annotations

import pytest

from streams.settings import ConfigError, is_loopback, load_settings


def test_defaults_are_local_and_embedded():
    settings = load_settings({})
    assert settings.bootstrap == "127.0.0.1:9092"
    assert not settings.external_broker
    assert settings.web_host == "127.0.0.1"
    assert settings.topics.events == "crossings.events.v1"


def test_one_setting_points_at_an_external_cluster():
    settings = load_settings({"KAFKA_BOOTSTRAP": "kafka-1:9092, kafka-2:9092"})
    assert settings.external_broker
    assert settings.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.broker_url == "kafka://kafka-1:9092;kafka://kafka-2:9092"
    assert load_settings({}, broker="b:9093").bootstrap == "b:9093"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"KAFKA_BOOTSTRAP": "kafka-1"}, "KAFKA_BOOTSTRAP"),
        ({"KAFKA_BOOTSTRAP": "kafka-1:99999"}, "KAFKA_BOOTSTRAP"),
        ({"CROSSINGS_PARTITIONS": "four"}, "CROSSINGS_PARTITIONS"),
        ({"CROSSINGS_PARTITIONS": "0"}, "CROSSINGS_PARTITIONS"),
        ({"CROSSINGS_COMMIT_INTERVAL": "soon"}, "CROSSINGS_COMMIT_INTERVAL"),
        ({"CROSSINGS_WEB_PORT": "80"}, "CROSSINGS_WEB_PORT"),
        ({"CROSSINGS_TOPIC_NAMESPACE": "a/b"}, "CROSSINGS_TOPIC_NAMESPACE"),
        ({"CROSSINGS_APP_ID": "has space"}, "CROSSINGS_APP_ID"),
    ],
)
def test_bad_values_name_the_variable(env, names):
    with pytest.raises(ConfigError, match=names):
        load_settings(env)


@pytest.mark.parametrize("host", ["metrics.example.com", "127.0.0.1:6066", "", " 127.0.0.1"])
def test_a_web_host_that_is_not_an_address_names_the_setting(host):
    if not host:
        assert load_settings({"CROSSINGS_WEB_HOST": host}).web_host == "127.0.0.1"  # unset: default
        return
    with pytest.raises(ConfigError, match="CROSSINGS_WEB_HOST"):
        load_settings({"CROSSINGS_WEB_HOST": host})


@pytest.mark.parametrize(
    ("host", "local"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False)]
)
def test_web_hosts_are_told_apart_as_local_or_not(host, local):
    assert is_loopback(load_settings({"CROSSINGS_WEB_HOST": host}).web_host) is local
