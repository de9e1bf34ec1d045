"""Create the pipeline's topics, and check the ones that exist.

The worker's tables are partitioned like the events topic (a checkpoint's counts live
in the partition its events arrive on), so a partition count that differs from the
setting is a configuration error to stop on, not something to work around.

The state's changelog topic is created here too (compacted, one partition per events
partition), and only returned once the cluster's metadata lists its partitions.
"""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from streams.settings import ConfigError, Settings

#: Compacted; records of id chunks can be a few hundred KiB.
_CHANGELOG_CONFIG = {"cleanup.policy": "compact", "max.message.bytes": str(8 * 2**20)}


def changelog_topic(settings: Settings) -> str:
    """The core's state changelog: ``<app id>-state-changelog``, partitioned like the events."""
    return f"{settings.app_id}-state-changelog"


def topic_specs(settings: Settings) -> dict[str, int]:
    t = settings.topics
    return {
        t.events: settings.partitions,
        t.dead_letter: settings.partitions,
        t.alerts: 1,
        changelog_topic(settings): settings.partitions,
    }


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
        changelog = changelog_topic(settings)
        missing = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replication_factor,
                topic_configs=_CHANGELOG_CONFIG if name == changelog else {},
            )
            for name, parts in specs.items()
            if name not in existing
        ]
        if missing:
            # Another process may win the race; the partition check below still applies.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        found = _wait_for_metadata(admin, specs)
    finally:
        admin.close()
    events = settings.topics.events
    if found.get(events) != settings.partitions:
        raise ConfigError(
            f"topic {events} has {found.get(events)} partitions but CROSSINGS_PARTITIONS="
            f"{settings.partitions}; set CROSSINGS_PARTITIONS to match the topic"
        )
    for name in (changelog_topic(settings),):
        if found.get(name) != settings.partitions:
            raise ConfigError(
                f"changelog topic {name} has {found.get(name)} partitions but CROSSINGS_PARTITIONS="
                f"{settings.partitions}; the state cannot be re-partitioned in place: "
                "use a new CROSSINGS_APP_ID (and replay) or restore the old partition count"
            )
    return found


def _wait_for_metadata(
    admin: KafkaAdminClient, specs: dict[str, int], timeout: float = 30.0
) -> dict[str, int]:
    """name -> partitions once every topic shows partitions (a new topic can take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {meta["name"]: len(meta["partitions"] or ()) for meta in admin.describe_topics(list(specs))}
        if all(found.get(name) for name in specs) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
