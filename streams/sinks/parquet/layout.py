"""Where the lake's files live and what their columns are.

Layout under the data root (``date`` is the checkpoint's *local* day; ``date`` and
``checkpoint`` live only in the folder names, as Spark writes them)::

    events/date=D/checkpoint=C/p<PPP>-<seq>-o<first>-<last>.parquet   append-only
    alerts/date=D/checkpoint=C/p<PPP>-<seq>-o<first>-<last>.parquet   append-only
    daily_counts/date=D/checkpoint=C/p<PPP>.parquet                    replaced snapshot
    dead_letters/p<PPP>-<seq>-o<first>-<last>.parquet                 append-only, replays only
    _staging/p<PPP>/...                                               hidden: not yet published

``PPP`` is the source partition, ``seq`` the commit sequence of the commit that published
the file and ``first``-``last`` the source offsets its rows came from (``-timer`` for
alerts raised by the idle-partition timer alone). A name follows from what was committed,
so writing a commit again writes the same file, and no two writers anywhere can pick the
same name for different rows.

Appended rows (events, alerts, dead letters) are *staged* first: each commit writes its
files under ``_staging/p<PPP>/`` with the same relative paths, hidden from readers (Hive,
Spark and Arrow skip ``_`` folders, and nobody globs them), and a later commit *publishes*
a partition's staged rows, one file per folder, when the oldest of them is
``CROSSINGS_LAKE_ROLL_SECONDS`` old (or enough rows are staged, or the partition is let
go). A live post that sends one crossing every 20 s would otherwise get a file per commit
and folder, ~4,000 files a day; published, it gets one an hour. See ``staging.py``.

A daily-counts snapshot is per partition, so the sum over a folder's files is the
checkpoint-day's count even if a checkpoint's events were spread over partitions. A replay
(which has no dead-letter topic) writes each commit's invalid messages to
``dead_letters/`` in the same commit, so a replay killed and run again writes each exactly
once.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

EVENTS = "events"
DAILY_COUNTS = "daily_counts"
ALERTS = "alerts"
DEAD_LETTERS = "dead_letters"
#: Low-cardinality columns: dictionary- and run-length-encoded, not compressed. Everything
#: else (ids, times, free text): plain and zstd. A zstd context per column chunk, and a
#: dictionary attempt on unique ids, cost more than they save in the small files a commit
#: writes (measured on a 200-row events file: 0.84 ms and 6.3 KB with the defaults plus
#: zstd; 0.43 ms and 6.8 KB like this).
_CATEGORICAL = frozenset(
    {
        "direction",
        "local_hour",
        "nationality",
        "purpose",
        "mode",
        "outcome",
        "kafka_partition",
        "count",
        "reason",
    }
)
#: Staged files and the publish intents, per partition: ``_staging/p<PPP>/``.
STAGING = "_staging"
#: Temporary files are ``.tmp-p<PPP>-<uuid>.tmp``: never matched by ``*.parquet`` globs.
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".tmp"

CHECKPOINT_ID = re.compile(r"^[a-z0-9-]{2,64}$")
COMMIT_FILE = re.compile(
    r"^p(?P<partition>\d{3})-(?P<seq>\d{10})-(?:o(?P<first>\d+)-(?P<last>\d+)|timer)\.parquet$"
)

_UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("occurred_at", _UTC_MICROS, nullable=False),
        pa.field("local_hour", pa.int8(), nullable=False),
        pa.field("nationality", pa.string(), nullable=False),
        pa.field("purpose", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        #: When the record reached Kafka (its broker timestamp): deterministic on replay.
        pa.field("kafka_timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)

DAILY_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("direction", pa.string(), nullable=False),
        pa.field("nationality", pa.string(), nullable=False),
        pa.field("purpose", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("as_of", _UTC_MICROS, nullable=False),
    ]
)

ALERTS_SCHEMA = pa.schema(
    [
        pa.field("version", pa.int16(), nullable=False),
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("checkpoint_name", pa.string(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("window", pa.string(), nullable=False),
        pa.field("as_of", _UTC_MICROS, nullable=False),
        pa.field("raised_at", _UTC_MICROS, nullable=False),
        pa.field("observed", pa.int64(), nullable=False),
        pa.field("expected", pa.float64(), nullable=False),
        pa.field("ratio", pa.float64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("drivers_json", pa.string(), nullable=False),
        pa.field("summary", pa.string(), nullable=False),
    ]
)

#: A replay's invalid messages: the original bytes (key and value) and why.
DEAD_LETTERS_SCHEMA = pa.schema(
    [
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        # Set when key and value were cut to CROSSINGS_DEAD_LETTER_MAX_BYTES: the whole
        # message's size and its value's SHA-256 (hex).
        pa.field("original_size", pa.int64()),
        pa.field("original_sha256", pa.string()),
    ]
)


@cache
def _write_options(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "compression": {name: "none" if name in _CATEGORICAL else "zstd" for name in names},
        "use_dictionary": [name for name in names if name in _CATEGORICAL],
        # Min/max of random ids prune nothing; of times, offsets and categories they do.
        "write_statistics": [name for name in names if not name.endswith("_id")],
    }


def write_options(schema: pa.Schema) -> dict[str, Any]:
    """``pyarrow.parquet.write_table`` options for a file with ``schema``."""
    return _write_options(tuple(schema.names))


def partition_dir(root: Path, dataset: str, local_day: date, checkpoint_id: str) -> Path:
    """The hive folder of one checkpoint-day; refuses ids that could escape the root."""
    check_partition(local_day, checkpoint_id)
    return Path(root) / dataset / f"date={local_day.isoformat()}" / f"checkpoint={checkpoint_id}"


def check_partition(local_day: Any, checkpoint_id: Any) -> None:
    """Raise ValueError unless this is a calendar day and a path-safe checkpoint id."""
    if not isinstance(checkpoint_id, str) or not CHECKPOINT_ID.fullmatch(checkpoint_id):
        raise ValueError(f"checkpoint_id {checkpoint_id!r} does not match {CHECKPOINT_ID.pattern}")
    if not isinstance(local_day, date) or isinstance(local_day, datetime):
        raise ValueError(f"local_day must be a datetime.date, got {local_day!r}")


def commit_file_name(partition: int, seq: int, first_offset: int | None, last_offset: int) -> str:
    span = f"o{first_offset}-{last_offset}" if first_offset is not None else "timer"
    return f"p{partition:03d}-{seq:010d}-{span}.parquet"


def staging_dir(root: Path, partition: int) -> Path:
    return Path(root) / STAGING / f"p{partition:03d}"


def snapshot_file_name(partition: int) -> str:
    return f"p{partition:03d}.parquet"


def temp_prefix(partition: int) -> str:
    return f"{TEMP_PREFIX}p{partition:03d}-"
