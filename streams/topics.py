"""Create the pipeline's input and output topics, and check the ones that exist.

The worker's tables are partitioned like the events topic (a checkpoint's counts live
in the partition its events arrive on), so a partition count that differs from the
setting is a configuration error to stop on, not something to work around.
"""

from __future__ import annotations

import contextlib

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from streams.settings import ConfigError, Settings


def topic_specs(settings: Settings) -> dict[str, int]:
    t = settings.topics
    return {t.events: settings.partitions, t.dead_letter: settings.partitions, t.alerts: 1}


def ensure_topics(settings: Settings, *, replication_factor: int = 1) -> dict[str, int]:
    """Create missing topics; returns name -> partitions as found on the cluster."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap, client_id="crossings-admin", request_timeout_ms=15000
        )
    except KafkaTimeoutError:
        hint = "check KAFKA_BOOTSTRAP" if settings.external_broker else "start it with `crossings kafka up`"
        raise ConfigError(f"no Kafka broker answers at {settings.bootstrap}; {hint}") from None
    try:
        specs = topic_specs(settings)
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=replication_factor)
            for name, parts in specs.items()
            if name not in existing
        ]
        if missing:
            # Another process may win the race; the partition check below still applies.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        found = {meta["name"]: len(meta["partitions"]) for meta in admin.describe_topics(list(specs))}
    finally:
        admin.close()
    events = settings.topics.events
    if found.get(events) != settings.partitions:
        raise ConfigError(
            f"topic {events} has {found.get(events)} partitions but CROSSINGS_PARTITIONS="
            f"{settings.partitions}; set CROSSINGS_PARTITIONS to match the topic"
        )
    return found
