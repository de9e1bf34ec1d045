"""Where ``crossings replay`` reads records from: a topic's offset range, NDJSON files, or
the events of a Parquet lake.

All yield batches of ``SourceRecord`` in each partition's offset order, so the core sees
exactly what the worker would: file lines and Parquet rows are routed with Kafka's
default partitioner on their ``checkpoint_id`` and numbered per partition like offsets.

Each takes ``keep``, the partitions one replay job owns (``None``: all). File records are
numbered over the whole stream before the filter, so a kept partition's records have the
offsets of a single-job replay; with the replay's commit points fixed by record counts
(``streams.replay.run``), its lake is then byte for byte the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.core.partitioning import partition_for
from streams.core.records import SourceRecord, is_rekeyed
from streams.domain import rows
from streams.domain.event import SCHEMA_VERSION
from streams.ops.bounded_batches import DEFAULT_LIMIT as DEFAULT_MAX_BATCH_BYTES
from streams.ops.bounded_batches import bound_topic
from streams.settings.lake import CATALOG_FILE, folder_lake, holds_parquet_lake

BATCH = 5000


async def kafka_records(
    bootstrap: str,
    topic: str,
    *,
    start: int = 0,
    end: int | None = None,
    keep: Collection[int] | None = None,
    client: Mapping[str, Any] | None = None,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> AsyncIterator[list[SourceRecord]]:
    """Every partition of ``topic`` (or those in ``keep``: only they are assigned, so a job
    fetches nothing it drops) from offset ``start`` to ``end`` (exclusive; default: its end
    when the replay starts), read committed, without joining any group.
    ``client``: aiokafka security keyword arguments (``streams.ops.security.client_kwargs``).
    A record batch that decompresses past ``max_batch_bytes`` is not read: one record with a
    ``RefusedBatch`` value stands for it, dead-lettered ``oversize`` as the worker does."""
    client = dict(client or {})
    bound_topic(topic, max_batch_bytes)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 2**20,
        **client,
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, topic, client)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        if keep is not None:
            partitions = [p for p in partitions if p in keep]
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        stop = {tp: ends[tp] if end is None else min(end, ends[tp]) for tp in tps}
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start)
        remaining = {tp for tp in tps if stop[tp] > start}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH)
            batch = []
            for tp, messages in fetched.items():
                batch += [
                    SourceRecord(tp.partition, m.offset, m.timestamp, m.key, m.value, is_rekeyed(m.headers))
                    for m in messages
                    if m.offset < stop[tp]
                ]
                if await consumer.position(tp) >= stop[tp]:
                    remaining.discard(tp)
            if batch:
                yield batch
    finally:
        await consumer.stop()


async def partition_sizes(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int],
    start: int = 0,
    end: int | None = None,
    client: Mapping[str, Any] | None = None,
) -> dict[int, int]:
    """Offsets in ``[start, end)`` of each partition that hold data: what a replay of it reads."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **dict(client or {}))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        first, last = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {
        tp.partition: max(0, (last[tp] if end is None else min(end, last[tp])) - max(start, first[tp]))
        for tp in tps
    }


async def topic_partitions(bootstrap: str, topic: str, client: Mapping[str, Any] | None = None) -> list[int]:
    """The partition numbers of ``topic`` (empty if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client or {}))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in described if t["topic"] == topic for p in t["partitions"] or ())


def ndjson_records(
    paths: Iterable[Path], partitions: int, keep: Collection[int] | None = None
) -> Iterable[list[SourceRecord]]:
    """One event per line; a line that is not an object with a checkpoint_id still goes
    through (to partition 0), so the core dead-letters it with its reason."""
    return _kept(_ndjson_batches(paths, partitions), keep)


def _ndjson_batches(paths: Iterable[Path], partitions: int) -> Iterator[list[SourceRecord]]:
    offsets: Counter[int] = Counter()
    batch: list[SourceRecord] = []
    for path in paths:
        with open(path, "rb") as lines:
            for line in lines:
                raw = line.rstrip(b"\r\n")
                if not raw:
                    continue
                key = _checkpoint_key(raw)
                partition = partition_for(key, partitions) if key else 0
                batch.append(SourceRecord(partition, offsets[partition], 0, key, raw))
                offsets[partition] += 1
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _kept(
    batches: Iterator[list[SourceRecord]], keep: Collection[int] | None
) -> Iterator[list[SourceRecord]]:
    """Each batch less the records of partitions not in ``keep`` (empty batches dropped)."""
    if keep is None:
        yield from batches
        return
    keep = frozenset(keep)
    for batch in batches:
        kept = [record for record in batch if record.partition in keep]
        if kept:
            yield kept


def _checkpoint_key(raw: bytes) -> bytes | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    checkpoint_id = value.get("checkpoint_id") if isinstance(value, dict) else None
    return checkpoint_id.encode() if isinstance(checkpoint_id, str) else None


def parquet_records(
    paths: Iterable[Path], partitions: int, keep: Collection[int] | None = None
) -> Iterator[list[SourceRecord]]:
    """The events of a lake (its ``events/`` files, or folders holding them), as records.

    Rows are replayed in the order they reached Kafka (``kafka_timestamp``, then source
    partition and offset), with their broker timestamps, so alerts come out as the
    worker raised them. The lake holds only counted events: a replay of it rebuilds the
    daily counts and alerts (after a change to detection, say) without dead letters or
    duplicates. ``occurred_at`` is written back in UTC: the same instant.

    With ``keep``, files in a ``checkpoint=ID`` folder of a checkpoint routed elsewhere are
    not read at all: a partition's records are exactly its checkpoints' rows, so its
    offsets do not change.
    """
    paths = list(paths)
    lakes = [Path(p) for p in paths if is_ducklake_folder(Path(p))]
    if lakes:
        if len(paths) != 1:
            raise ValueError(
                f"{lakes[0]} holds a DuckLake lake (its catalog {CATALOG_FILE}): replay it alone, "
                "not with other --parquet paths"
            )
        with sorting_connection() as connection:
            ducklake_events(connection, lakes[0])  # no events: said now, not at the first batch
        return _lake_batches(lakes[0], partitions, None if keep is None else frozenset(keep))
    # A Parquet lake's data folder: its events, not its counts, alerts or staged rows.
    paths = [Path(p) / "events" if holds_parquet_lake(Path(p)) else p for p in paths]
    files = _parquet_files(paths)
    inside = next((f for f in files if f.name.startswith("ducklake-")), None)
    if inside is not None:
        raise ValueError(
            f"{inside} is a file of a DuckLake lake, whose rows are not all in files (small commits "
            "stay in its catalog): give the lake's data folder, the one holding its lake.sqlite"
        )
    if not files:  # said now, not at the first batch
        raise ValueError("no .parquet files under " + ", ".join(str(p) for p in paths))
    if keep is not None:
        keep = frozenset(keep)
        files = [f for f in files if _file_may_hold(f, partitions, keep)]
        if not files:
            return iter(())
    return _parquet_batches(files, partitions, keep)


def _file_may_hold(path: Path, partitions: int, keep: frozenset[int]) -> bool:
    folder = next((part for part in path.parts if part.startswith("checkpoint=")), None)
    if folder is None:
        return True
    return partition_for(folder.removeprefix("checkpoint=").encode(), partitions) in keep


#: DuckDB's memory for a lake replay's sort; the rest spills to a temporary folder.
SORT_MEMORY = "512MB"


@contextlib.contextmanager
def sorting_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection for sorting a whole lake before its first row comes out. DuckDB's
    default memory limit (80% of the machine) let a year of 100 M events grow a replay's
    reader to 17 GB; held to ``SORT_MEMORY``, the sort spills to a folder under TMPDIR
    (removed after) and took about as long (66 s for the 100 M)."""
    with tempfile.TemporaryDirectory(prefix="crossings-sort-") as spill, duckdb.connect() as connection:
        connection.execute(f"SET memory_limit = '{SORT_MEMORY}'")
        connection.execute(f"SET temp_directory = '{spill}'")
        yield connection


def is_ducklake_folder(path: Path) -> bool:
    """A data folder of the default DuckLake lake: its catalog file is there. Its files
    alone are not its rows (small commits are kept in the catalog until compaction)."""
    return Path(path).is_dir() and (Path(path) / CATALOG_FILE).is_file()


def ducklake_events(connection: duckdb.DuckDBPyConnection, folder: Path) -> str:
    """Attach the DuckLake lake of ``folder`` to ``connection`` (read-only, at its newest
    commit, pinned) and return the FROM item of its events, their checkpoint in a
    ``checkpoint`` column as the Parquet lake's folder names give it."""
    from streams.sinks.ducklake.read import attach, has_table, pin, pinned

    attach(folder_lake(os.environ), Path(folder), connection)
    connection.execute("SET TimeZone = 'UTC'")
    pin(connection)
    events = f"(SELECT * EXCLUDE (checkpoint_id), checkpoint_id AS checkpoint FROM {pinned('events')})"
    if not has_table(connection, "events") or not connection.sql(f"FROM {events} LIMIT 1").fetchall():
        raise ValueError(f"{folder}: the DuckLake lake holds no events yet")
    return events


def _lake_batches(folder: Path, partitions: int, keep: frozenset[int] | None) -> Iterator[list[SourceRecord]]:
    with sorting_connection() as connection:
        yield from _ordered_batches(connection, ducklake_events(connection, folder), partitions, keep)


def _parquet_batches(
    files: list[Path], partitions: int, keep: frozenset[int] | None
) -> Iterator[list[SourceRecord]]:
    scan = f"read_parquet({[str(f) for f in files]!r}, hive_partitioning = true, union_by_name = true)"
    with sorting_connection() as connection:
        yield from _ordered_batches(connection, scan, partitions, keep)


def _ordered_batches(
    connection: duckdb.DuckDBPyConnection, events: str, partitions: int, keep: frozenset[int] | None
) -> Iterator[list[SourceRecord]]:
    """The lake's events in the order they reached Kafka, routed over ``partitions``."""
    query = f"""
        SELECT {LAKE_EVENT_COLUMNS}
        FROM {events}
        ORDER BY kafka_timestamp, kafka_partition, kafka_offset
    """
    offsets: Counter[int] = Counter()
    # A checkpoint's key and partition, worked out once: murmur2 in Python was a fifth of
    # the reader's time, for a handful of distinct checkpoints.
    routes: dict[str, tuple[bytes, int]] = {}
    reader = connection.sql(query).to_arrow_reader(BATCH)
    for chunk in reader:
        batch = []
        for row in chunk.to_pylist():
            route = routes.get(row["checkpoint"])
            if route is None:
                key = row["checkpoint"].encode()
                route = routes[row["checkpoint"]] = (key, partition_for(key, partitions))
            key, partition = route
            offset = offsets[partition]
            offsets[partition] += 1
            if keep is not None and partition not in keep:
                continue
            batch.append(SourceRecord(partition, offset, row["timestamp_ms"], key, lake_event_value(row)))
        if batch:
            yield batch


def _utc_text(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _lake_event_reader() -> tuple[str, Callable[[Mapping[str, Any]], bytes]]:
    """What a lake reader selects, and the function that makes a selected row the message
    it was counted from: the event's wire fields that are lake columns, its checkpoint from
    the folder name, its version the current one; times as integers (cheap to carry,
    exact), written in UTC. The function is one dict display compiled from the definition,
    as ``dataclasses`` does: a loop over the fields cost about 1 us more per row (of ~4.5),
    and a replay calls it for every row."""
    selected, items = ["checkpoint"], []
    for column in rows.wire_fields(rows.EVENT):
        name = column.name
        if name == "version":
            items.append(f"{name!r}: {SCHEMA_VERSION!r}")
        elif name == "checkpoint_id":
            items.append(f"{name!r}: row['checkpoint']")
        elif column.type == "timestamp[us]":
            selected.append(f"epoch_us({name}) AS {name}")
            items.append(f"{name!r}: _utc_text(row[{name!r}])")
        else:
            selected.append(name)
            items.append(f"{name!r}: row[{name!r}]")
    selected.append("epoch_ms(kafka_timestamp) AS timestamp_ms")
    namespace = {"dumps": orjson.dumps, "_utc_text": _utc_text}
    exec(f"def lake_event_value(row):\n    return dumps({{{', '.join(items)}}})", namespace)
    return ", ".join(selected), namespace["lake_event_value"]


#: The columns of a lake's ``events/`` rows that :func:`lake_event_value` reads, and the
#: function that makes such a row the event message it was counted from (times in UTC).
LAKE_EVENT_COLUMNS, lake_event_value = _lake_event_reader()


def _parquet_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found += sorted(Path(path).rglob("*.parquet")) if Path(path).is_dir() else [Path(path)]
    return found
