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
from collections.abc import Sequence
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from streams.domain import rows

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

#: The Arrow type of each column type of ``streams.domain.rows``.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "binary": pa.binary(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "timestamp[us]": pa.timestamp("us", tz="UTC"),
    "timestamp[ms]": pa.timestamp("ms", tz="UTC"),
    "date": pa.date32(),
    "list<float64>": pa.list_(pa.float64()),
    "list<string>": pa.list_(pa.string()),
}


def arrow_schema(row: Sequence[rows.Column], version: int | None = None) -> pa.Schema:
    """The Parquet schema of a row's lake columns (as of ``version``; default: the newest)."""
    return pa.schema(
        [pa.field(c.lake_name, ARROW_TYPES[c.type], c.nullable) for c in rows.lake_columns(row, version)]
    )


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` (a file of this or an older version) with ``schema``'s columns: one it
    lacks is null, which only a nullable (later) column may be."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(len(table), field.type))
        else:
            raise ValueError(f"a file without the required column {field.name!r} is not of this dataset")
    return pa.Table.from_arrays(columns, schema=schema)


EVENTS_SCHEMA = arrow_schema(rows.EVENT)
DAILY_COUNTS_SCHEMA = arrow_schema(rows.DAILY_COUNT)
ALERTS_SCHEMA = arrow_schema(rows.ALERT)
DEAD_LETTERS_SCHEMA = arrow_schema(rows.DEAD_LETTER)
SCHEMAS = {
    EVENTS: EVENTS_SCHEMA,
    ALERTS: ALERTS_SCHEMA,
    DAILY_COUNTS: DAILY_COUNTS_SCHEMA,
    DEAD_LETTERS: DEAD_LETTERS_SCHEMA,
}


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
