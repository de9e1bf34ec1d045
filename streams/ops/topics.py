"""Create the pipeline's topics, and check the ones that exist.

The worker's tables are partitioned like the events topic (a checkpoint's counts live
in the partition its events arrive on), so a partition count that differs from the
setting is a configuration error to stop on, not something to work around.

The state's changelog topic is created here too (compacted, one partition per events
partition), and only returned once the cluster's metadata lists its partitions.

Topics are created with ``CROSSINGS_REPLICATION_FACTOR`` replicas (by default min(3,
brokers)) and ``min.insync.replicas`` one less (at least 1), so a committed transaction
survives the loss of a broker wherever the cluster has one to lose. Existing topics are
checked, not altered: a partition count that differs, a changelog that is not
compacted (the state would be deleted with old segments), or a dead-letter topic that
cannot take the largest message of the events topic plus its headers (the partition of
such a message would stop), stops the command; fewer replicas than asked for is logged.

Every topic is created with ``message.timestamp.after.max.ms`` from
``CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS`` (one hour by default, Kafka 4's own default;
Kafka 3 allows any future time): the broker refuses a record stamped further ahead of its
clock, so a producer whose clock runs far ahead cannot stamp events into the future (the
worker bounds an event's time by its record's timestamp plus
``CROSSINGS_MAX_CLOCK_SKEW_SECONDS``). An events topic that allows more is logged with the
fix. ``message.timestamp.before.max.ms`` is left as the broker has it (any past time):
the worker forwards a mis-keyed event with its original timestamp, and a worker catching
up a backlog older than the bound would have those forwards refused and its partition
stopped; replays of history and the fuzz run send old timestamps on purpose.
"""

from __future__ import annotations

import contextlib
import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import InvalidConfigurationError, KafkaTimeoutError, TopicAlreadyExistsError

from streams.ops.security import check_access, client_kwargs, explain
from streams.settings import ConfigError, Settings

log = logging.getLogger(__name__)

#: Compacted; records of id chunks can be a few hundred KiB.
_CHANGELOG_CONFIG = {"cleanup.policy": "compact", "max.message.bytes": str(8 * 2**20)}
#: A dead letter is a message of the events topic with its key and bytes unchanged, plus
#: headers (reason, a detail of at most 1,000 bytes, source topic, partition, offset).
#: The dead-letter topic must take a message this much larger than the events topic
#: takes, or a message at the events topic's size limit could never be dead-lettered:
#: its partition's commit would fail, and be retried, forever.
DEAD_LETTER_HEADROOM = 64 * 2**10
#: Room for an events message of up to 8 MiB - 64 KiB (the workers' producers send at
#: most 8 MiB per request); the broker default for a topic is 1 MiB.
_DEAD_LETTER_CONFIG = {"max.message.bytes": str(8 * 2**20)}
TIMESTAMP_AFTER_MAX = "message.timestamp.after.max.ms"


def changelog_topic(settings: Settings) -> str:
    """The core's state changelog: ``<app id>-state-changelog``, partitioned like the events."""
    return f"{settings.app_id}-state-changelog"


def topic_specs(settings: Settings) -> dict[str, int]:
    t = settings.topics
    return {
        t.events: settings.partitions,
        t.dead_letter: settings.partitions,
        t.alerts: 1,
        t.alerts_undelivered: 1,
        changelog_topic(settings): settings.partitions,
    }


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create missing topics, check existing ones; returns name -> partitions as found."""
    # Says "refused authentication" (or which TLS or protocol setting to check) at once,
    # where the admin client would only time out.
    check_access(settings.bootstrap, settings.security, settings.external_broker)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap,
            client_id="crossings-admin",
            request_timeout_ms=15000,
            **client_kwargs(settings.security, "kafka-python"),
        )
    except KafkaTimeoutError as error:
        raise explain(error, settings.bootstrap, settings.security, settings.external_broker) from None
    try:
        specs = topic_specs(settings)
        existing = set(admin.list_topics())
        changelog = changelog_topic(settings)
        replicas = _replication_factor(admin, settings)
        common = {
            "min.insync.replicas": str(max(1, replicas - 1)),
            TIMESTAMP_AFTER_MAX: str(settings.timestamp_after_max_seconds * 1000),
        }
        missing = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replicas,
                topic_configs={**common, **_EXTRA_CONFIG.get(_role(settings, name), {})},
            )
            for name, parts in specs.items()
            if name not in existing
        ]
        if missing:
            _create(admin, missing)
        found = _wait_for_metadata(admin, specs)
        _check_existing(admin, specs, changelog, replicas)
        _check_dead_letter_room(admin, settings)
        _check_timestamp_bound(admin, settings)
    finally:
        admin.close()
    events = settings.topics.events
    if found.get(events) != settings.partitions:
        raise ConfigError(
            f"topic {events} has {found.get(events)} partitions but CROSSINGS_PARTITIONS="
            f"{settings.partitions}; set CROSSINGS_PARTITIONS to match the topic"
        )
    dead_letter = settings.topics.dead_letter
    if (found.get(dead_letter) or 0) < settings.partitions:
        # A partition's dead letters go to the partition of the same number.
        raise ConfigError(
            f"topic {dead_letter} has {found.get(dead_letter)} partitions, fewer than the "
            f"{settings.partitions} of {events}: the dead letters of the others could not be "
            f"written and their partitions would stop. Raise it to {settings.partitions} "
            "(kafka-topics --alter --partitions)"
        )
    for name in (changelog_topic(settings),):
        if found.get(name) != settings.partitions:
            raise ConfigError(
                f"changelog topic {name} has {found.get(name)} partitions but CROSSINGS_PARTITIONS="
                f"{settings.partitions}; the state cannot be re-partitioned in place: "
                "use a new CROSSINGS_APP_ID (and replay) or restore the old partition count"
            )
    return found


_EXTRA_CONFIG = {"changelog": _CHANGELOG_CONFIG, "dead_letter": _DEAD_LETTER_CONFIG}


def _create(admin: KafkaAdminClient, missing: list[NewTopic]) -> None:
    # Another process may win the race; the partition check after it still applies.
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(missing)
    except InvalidConfigurationError:
        # A broker older than Kafka 3.6 knows no message.timestamp.after.max.ms.
        log.warning(
            "the broker refused %s (Kafka before 3.6): topics created without it; a producer "
            "may stamp records any time ahead. Upgrade the brokers to bound it",
            TIMESTAMP_AFTER_MAX,
        )
        for topic in missing:
            topic.topic_configs.pop(TIMESTAMP_AFTER_MAX, None)
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(missing)


def _role(settings: Settings, name: str) -> str:
    if name == changelog_topic(settings):
        return "changelog"
    return "dead_letter" if name == settings.topics.dead_letter else ""


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


def _replication_factor(admin: KafkaAdminClient, settings: Settings) -> int:
    brokers = len(admin.describe_cluster().get("brokers") or ()) or 1
    wanted = settings.replication_factor
    if wanted is None:
        return min(3, brokers)
    if wanted > brokers:
        raise ConfigError(
            f"CROSSINGS_REPLICATION_FACTOR={wanted} but the cluster at {settings.bootstrap} has "
            f"{brokers} broker(s); set it to at most {brokers}"
        )
    return wanted


def _check_existing(admin: KafkaAdminClient, specs: dict[str, int], changelog: str, replicas: int) -> None:
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in specs], config_filter="all"
    )
    for meta in admin.describe_topics(list(specs)):
        name = meta["name"]
        have = min((len(p["replica_nodes"]) for p in meta["partitions"] or ()), default=0)
        if have < replicas:
            log.warning(
                "topic %s has %d replica(s), fewer than the %d asked for: "
                "raise it with kafka-reassign-partitions if this cluster should survive a broker loss",
                name,
                have,
                replicas,
            )
        insync = (described.get("topic", {}).get(name, {}).get("min.insync.replicas") or {}).get("value")
        if insync is not None and have and int(insync) > have:
            raise ConfigError(
                f"topic {name} has min.insync.replicas={insync} but {have} replica(s): every "
                "transaction writing to it would be refused (NotEnoughReplicas). Set "
                f"min.insync.replicas to at most {have} on it (kafka-configs --alter), or add replicas"
            )
        if insync is not None and have >= 3 and int(insync) < 2:
            log.warning(
                "topic %s has %s replicas but min.insync.replicas=%s: a committed transaction may "
                "live on one broker only; set min.insync.replicas=%d on it (kafka-configs --alter)",
                name,
                have,
                insync,
                have - 1,
            )
    policy = (described.get("topic", {}).get(changelog, {}).get("cleanup.policy") or {}).get("value")
    if "compact" not in (policy or ""):
        raise ConfigError(
            f"changelog topic {changelog} has cleanup.policy={policy!r}, not "
            "compact: the worker's state would be deleted with old segments. Set cleanup.policy=compact "
            "on it (kafka-configs --alter) or use a new CROSSINGS_APP_ID"
        )


def _max_message_bytes(admin: KafkaAdminClient, topic: str) -> int | None:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    described = admin.describe_configs([resource], config_filter="all")
    value = (described.get("topic", {}).get(topic, {}).get("max.message.bytes") or {}).get("value")
    return int(value) if value else None


def _check_dead_letter_room(admin: KafkaAdminClient, settings: Settings) -> None:
    """The dead-letter topic takes any message of the events topic plus its headers."""
    events, dead_letter = settings.topics.events, settings.topics.dead_letter
    largest, room = _max_message_bytes(admin, events), _max_message_bytes(admin, dead_letter)
    if largest is None or room is None:
        return
    if room < largest + DEAD_LETTER_HEADROOM:
        raise ConfigError(
            f"topic {dead_letter} takes messages of up to {room} bytes but {events} takes "
            f"{largest}: an invalid message near that size could not be dead-lettered and its "
            "partition would stop. Set max.message.bytes on it to at least "
            f"{largest + DEAD_LETTER_HEADROOM} (kafka-configs --alter)"
        )


def _check_timestamp_bound(admin: KafkaAdminClient, settings: Settings) -> None:
    """Warn when the events topic lets producers stamp records further ahead than the setting."""
    events = settings.topics.events
    resource = ConfigResource(ConfigResourceType.TOPIC, events)
    described = admin.describe_configs([resource], config_filter="all").get("topic", {}).get(events, {})
    if (described.get("message.timestamp.type") or {}).get("value") == "LogAppendTime":
        return  # the broker stamps each record with its own clock
    wanted = settings.timestamp_after_max_seconds * 1000
    fix = (
        f"kafka-configs --alter --entity-type topics --entity-name {events} "
        f"--add-config {TIMESTAMP_AFTER_MAX}={wanted}"
    )
    value = (described.get(TIMESTAMP_AFTER_MAX) or {}).get("value")
    if value is None:
        log.warning(
            "topic %s: the broker has no %s (Kafka before 3.6), so a producer whose clock runs "
            "ahead may stamp records any time in the future; upgrade the brokers, then: %s",
            events,
            TIMESTAMP_AFTER_MAX,
            fix,
        )
    elif int(value) > wanted:
        log.warning(
            "topic %s takes records stamped up to %s ms ahead of the broker's clock, more than "
            "CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS=%d: a producer whose clock runs ahead can stamp "
            "events into the future. Bound it: %s",
            events,
            value,
            settings.timestamp_after_max_seconds,
            fix,
        )
