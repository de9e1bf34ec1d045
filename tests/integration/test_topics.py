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
