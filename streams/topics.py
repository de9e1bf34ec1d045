"""Create the pipeline's topics, and check the ones that exist.

The worker's tables are partitioned like the events topic (a checkpoint's counts live
in the partition its events arrive on), so a partition count that differs from the
setting is a configuration error to stop on, not something to work around.

The tables' changelog topics are created here too, before Faust starts, and only
returned once the cluster's metadata lists their partitions. Left to Faust, a changelog
created on a fresh broker could still be missing from the metadata when the agent
started, and the agent crashed in a loop on "changelog topic has 0 partitions".
"""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from streams.settings import ConfigError, Settings

#: The worker's Faust tables (each has a compacted changelog topic named after it).
TABLES = ("day_profiles", "seen_event_ids", "detector_state")

_COMPACTED = {"cleanup.policy": "compact"}


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust's name for a table's changelog: ``<app id>-<table>-changelog``."""
    return f"{settings.app_id}-{table}-changelog"


def topic_specs(settings: Settings) -> dict[str, int]:
    t = settings.topics
    specs = {t.events: settings.partitions, t.dead_letter: settings.partitions, t.alerts: 1}
    for table in TABLES:
        specs[changelog_topic(settings, table)] = settings.partitions
    return specs


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
        changelogs = {changelog_topic(settings, table) for table in TABLES}
        missing = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replication_factor,
                topic_configs=_COMPACTED if name in changelogs else {},
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
    for table in TABLES:
        name = changelog_topic(settings, table)
        if found.get(name) != settings.partitions:
            raise ConfigError(
                f"changelog topic {name} has {found.get(name)} partitions but CROSSINGS_PARTITIONS="
                f"{settings.partitions}; the table's state cannot be re-partitioned in place: "
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
