"""The ``CROSSINGS_*`` variables the project reads, so that a misspelt one is not ignored
in silence: a variable set with the prefix but unknown is warned about, with the closest
known name (``CROSSINGS_COMIT_INTERVAL``: did you mean ``CROSSINGS_COMMIT_INTERVAL``?).

A new setting is added here too; ``tests/unit/test_settings_names.py`` fails on any
``CROSSINGS_*`` name in the code that this list does not know.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping

log = logging.getLogger("streams.settings")

PREFIX = "CROSSINGS_"

SETTINGS = frozenset(
    {
        "CROSSINGS_HOME",
        "CROSSINGS_DATA_DIR",
        "CROSSINGS_KAFKA_PORT",
        "CROSSINGS_PARTITIONS",
        "CROSSINGS_TOPIC_NAMESPACE",
        "CROSSINGS_CHECKPOINTS",
        "CROSSINGS_REPLICATION_FACTOR",
        "CROSSINGS_APP_ID",
        "CROSSINGS_WEB_HOST",
        "CROSSINGS_WEB_PORT",
        "CROSSINGS_WEB_CONFIG_FILE",
        "CROSSINGS_TRANSACTION_TIMEOUT_SECONDS",
        "CROSSINGS_TIMESTAMP_AFTER_MAX_SECONDS",
        "CROSSINGS_COMMIT_INTERVAL",
        "CROSSINGS_LAKE_ROLL_SECONDS",
        "CROSSINGS_LAKE_ROLL_ROWS",
        "CROSSINGS_LAKE",
        "CROSSINGS_LAKE_DATA_PATH",
        "CROSSINGS_LAKE_INLINE_ROWS",
        "CROSSINGS_LAKE_RETENTION_DAYS",
        "CROSSINGS_LAKE_UPKEEP_SECONDS",
        "CROSSINGS_DEDUP_HORIZON_HOURS",
        "CROSSINGS_MAX_CLOCK_SKEW_SECONDS",
        "CROSSINGS_IDLE_AFTER_SECONDS",
        "CROSSINGS_MAX_EVENT_BYTES",
        "CROSSINGS_DEAD_LETTER_MAX_BYTES",
        "CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES",
        "CROSSINGS_KAFKA_SECURITY_PROTOCOL",
        "CROSSINGS_KAFKA_SASL_MECHANISM",
        "CROSSINGS_KAFKA_SASL_USERNAME",
        "CROSSINGS_KAFKA_SASL_PASSWORD",
        "CROSSINGS_KAFKA_SASL_PASSWORD_FILE",
        "CROSSINGS_KAFKA_SSL_CAFILE",
        "CROSSINGS_KAFKA_SSL_CERTFILE",
        "CROSSINGS_KAFKA_SSL_KEYFILE",
        "CROSSINGS_KAFKA_SSL_CHECK_HOSTNAME",
        "CROSSINGS_ALERTMANAGER_URLS",
        "CROSSINGS_WEBHOOK_URLS",
        "CROSSINGS_WEBHOOK_SECRET",
        "CROSSINGS_WEBHOOK_SECRET_FILE",
        "CROSSINGS_NOTIFY_GIVE_UP_SECONDS",
        "CROSSINGS_NOTIFY_RETRY_MAX_SECONDS",
        "CROSSINGS_NOTIFY_RESEND_SECONDS",
        "CROSSINGS_NOTIFY_TIMEOUT_SECONDS",
        "CROSSINGS_NOTIFY_START",
        "CROSSINGS_NOTIFY_GENERATOR_URL",
        "CROSSINGS_NOTIFY_WEB_PORT",
        "CROSSINGS_LOG_FORMAT",
        "CROSSINGS_LOG_LEVEL",
        # Where the lake's S3 store (SeaweedFS) is built and kept (streams/ops/lakestore).
        "CROSSINGS_SEAWEEDFS_CACHE",
        # Set by crossings replay for its jobs (writer_lock.shared_with_children), not by users.
        "CROSSINGS_LAKE_WRITER_PARENT",
        # Read by the tests and load tests, not by the commands.
        "CROSSINGS_REQUIRE_SYSTEM_PACKAGES",
        "CROSSINGS_SHARED_DATA",
    }
)
#: Families of variables of the tests, the demo and the load tests (ports of their brokers).
DEVELOPMENT_PREFIXES = ("CROSSINGS_TEST_", "CROSSINGS_DEMO_", "CROSSINGS_PERF_")

_warned: set[str] = set()


def unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``CROSSINGS_*`` variable of ``env`` that is no setting, with the closest known
    name (None if none is close)."""
    unknown = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name in SETTINGS or name.startswith(DEVELOPMENT_PREFIXES):
            continue
        # Compared without the prefix, which every name shares.
        suffixes = sorted(known.removeprefix(PREFIX) for known in SETTINGS)
        closest = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1, cutoff=0.7)
        unknown.append((name, PREFIX + closest[0] if closest else None))
    return unknown


def warn_unknown_variables(env: Mapping[str, str]) -> None:
    """Log a warning for each unknown ``CROSSINGS_*`` variable (once per process)."""
    for name, closest in unknown_variables(env):
        if name in _warned:
            continue
        _warned.add(name)
        hint = f": did you mean {closest}?" if closest else " (the settings are listed in the README)"
        log.warning("%s is set but is not a crossings setting, so it is ignored%s", name, hint)
