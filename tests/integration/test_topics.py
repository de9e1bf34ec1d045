"""Topics, including the tables' changelogs, exist with the right shape before a worker starts."""

from __future__ import annotations

import dataclasses

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streams.ops.topics import changelog_topic, ensure_topics, topic_specs
from streams.settings import ConfigError, load_settings

pytestmark = pytest.mark.integration


def test_every_topic_and_changelog_is_created_with_the_configured_partitions(kafka_bootstrap, namespace):
    settings = load_settings(
        {
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CROSSINGS_APP_ID": namespace,
            "CROSSINGS_TOPIC_NAMESPACE": namespace,
            "CROSSINGS_PARTITIONS": "3",
        }
    )
    found = ensure_topics(settings)
    assert found == topic_specs(settings)
    assert found[changelog_topic(settings)] == 3
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        name = changelog_topic(settings)
        response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        # The broker's default policy is "delete"; only our topic config can say "compact".
        assert "compact" in str(response)
    finally:
        admin.close()
    assert ensure_topics(settings) == found  # idempotent

    other = dataclasses.replace(settings, partitions=4)
    with pytest.raises(ConfigError, match="CROSSINGS_PARTITIONS"):
        ensure_topics(other)


def _settings(kafka_bootstrap: str, namespace: str, **env: str):
    return load_settings(
        {
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CROSSINGS_APP_ID": namespace,
            "CROSSINGS_TOPIC_NAMESPACE": namespace,
        }
        | env
    )


def test_new_topics_get_min_insync_replicas_and_a_replication_factor_the_cluster_can_hold(
    kafka_bootstrap, namespace
):
    settings = _settings(kafka_bootstrap, namespace)
    assert settings.replication_factor is None  # default: min(3, brokers), here 1
    ensure_topics(settings)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        [meta] = admin.describe_topics([settings.topics.events])
        assert {len(p["replica_nodes"]) for p in meta["partitions"]} == {1}
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topics.events)
        described = admin.describe_configs([resource], config_filter="all")
        assert described["topic"][settings.topics.events]["min.insync.replicas"]["value"] == "1"
    finally:
        admin.close()
    too_many = _settings(kafka_bootstrap, f"{namespace}-rf", CROSSINGS_REPLICATION_FACTOR="3")
    with pytest.raises(ConfigError, match=r"CROSSINGS_REPLICATION_FACTOR=3 .* 1 broker"):
        ensure_topics(too_many)


def test_a_changelog_that_is_not_compacted_stops_the_start(kafka_bootstrap, namespace):
    """Someone created the changelog by hand with the default policy: old segments would be
    deleted, and the state with them."""
    from kafka.admin import NewTopic

    settings = _settings(kafka_bootstrap, namespace)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(changelog_topic(settings), settings.partitions, 1)])
    finally:
        admin.close()
    with pytest.raises(ConfigError, match=r"cleanup\.policy"):
        ensure_topics(settings)


def test_a_malformed_replication_factor_names_the_setting():
    with pytest.raises(ConfigError, match="CROSSINGS_REPLICATION_FACTOR"):
        load_settings({"CROSSINGS_REPLICATION_FACTOR": "three"})


def test_the_dead_letter_topic_takes_the_largest_events_message_with_its_headers(kafka_bootstrap, namespace):
    """An invalid message as large as the events topic takes is dead-lettered with its
    original bytes plus headers: a dead-letter topic with the same limit refused it, and
    that partition's commit failed forever (found by the fuzz run)."""
    from kafka.admin import NewTopic

    from streams.ops.topics import DEAD_LETTER_HEADROOM, _max_message_bytes

    settings = _settings(kafka_bootstrap, namespace)
    ensure_topics(settings)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        largest = _max_message_bytes(admin, settings.topics.events)
        assert largest is not None
        assert _max_message_bytes(admin, settings.topics.dead_letter) >= largest + DEAD_LETTER_HEADROOM
        # One created by hand with the broker's default limit stops the start.
        other = _settings(kafka_bootstrap, f"{namespace}-dl")
        admin.create_topics([NewTopic(other.topics.dead_letter, other.partitions, 1)])
    finally:
        admin.close()
    with pytest.raises(ConfigError, match=r"max\.message\.bytes"):
        ensure_topics(other)


def test_a_dead_letter_topic_with_fewer_partitions_stops_the_start(kafka_bootstrap, namespace):
    """A partition's dead letters go to the dead-letter partition of the same number: one
    made by hand with fewer partitions would stop the partitions it lacks at their first
    invalid message."""
    from kafka.admin import NewTopic

    settings = _settings(kafka_bootstrap, namespace, CROSSINGS_PARTITIONS="4")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [NewTopic(settings.topics.dead_letter, 2, 1, topic_configs={"max.message.bytes": str(2 * 2**20)})]
        )
    finally:
        admin.close()
    with pytest.raises(ConfigError, match=rf"{settings.topics.dead_letter} has 2 partitions.*--partitions"):
        ensure_topics(settings)


def test_min_insync_replicas_above_the_replicas_stops_the_start(kafka_bootstrap, namespace):
    """Made by hand with min.insync.replicas=2 on a one-broker cluster: every commit would
    be refused with NotEnoughReplicas; said at start, with the fix."""
    from kafka.admin import NewTopic

    settings = _settings(kafka_bootstrap, namespace)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    settings.topics.events, settings.partitions, 1, topic_configs={"min.insync.replicas": "2"}
                )
            ]
        )
    finally:
        admin.close()
    with pytest.raises(ConfigError, match=rf"{settings.topics.events} has min\.insync\.replicas=2 but 1"):
        ensure_topics(settings)


def test_topics_refuse_records_stamped_further_ahead_than_the_setting(kafka_bootstrap, namespace):
    """A producer whose clock runs ahead cannot stamp events into the future: the broker
    refuses a record stamped more than CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS ahead of its
    clock. (600 s here, not Kafka 4's one-hour default, so the topic's own setting shows.)"""
    import time

    from kafka import KafkaProducer
    from kafka.errors import InvalidTimestampError

    settings = _settings(kafka_bootstrap, namespace, CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS="600")
    ensure_topics(settings)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        names = list(topic_specs(settings))
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names], config_filter="all"
        )["topic"]
        assert {name: described[name]["message.timestamp.after.max.ms"]["value"] for name in names} == {
            name: "600000" for name in names
        }
        # Left as the broker has it: forwards keep their original (possibly old) timestamps.
        assert described[settings.topics.events]["message.timestamp.before.max.ms"]["value"] == str(2**63 - 1)
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", retries=0)
    try:
        now_ms = int(time.time() * 1000)
        events = settings.topics.events
        producer.send(events, b"five minutes ahead", timestamp_ms=now_ms + 300_000).get(30)
        with pytest.raises(InvalidTimestampError):  # accepted under Kafka 4's one-hour default
            producer.send(events, b"half an hour ahead", timestamp_ms=now_ms + 1_800_000).get(30)
    finally:
        producer.close()


def test_an_events_topic_without_a_future_bound_is_reported_with_the_fix(kafka_bootstrap, namespace, caplog):
    """Made by hand (or on Kafka 3, whose default is any future time): the start goes on and
    says how to bound it; one with a bound at or below the setting says nothing."""
    from kafka.admin import NewTopic

    unbounded = _settings(kafka_bootstrap, namespace)
    bounded = _settings(kafka_bootstrap, f"{namespace}-b")
    bound = "message.timestamp.after.max.ms"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(unbounded.topics.events, 4, 1, topic_configs={bound: str(2**63 - 1)}),
                NewTopic(bounded.topics.events, 4, 1, topic_configs={bound: "60000"}),
            ]
        )
    finally:
        admin.close()
    with caplog.at_level("WARNING", logger="streams.ops.topics"):
        ensure_topics(unbounded)
    [warning] = [r.getMessage() for r in caplog.records if "timestamp" in r.getMessage()]
    assert unbounded.topics.events in warning and "CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS=3600" in warning
    assert (
        f"kafka-configs --alter --entity-type topics --entity-name {unbounded.topics.events} "
        "--add-config message.timestamp.after.max.ms=3600000" in warning
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="streams.ops.topics"):
        ensure_topics(bounded)
    assert not [r for r in caplog.records if "timestamp" in r.getMessage()]


def test_a_malformed_timestamp_bound_names_the_setting():
    with pytest.raises(ConfigError, match="CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS"):
        load_settings({"CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS": "an hour"})
