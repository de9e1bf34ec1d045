"""Issue 19's spike: DuckLake, Delta Lake and today's Parquet lake, measured alike.

Every format gets the same events batches (the lake's ``events`` columns plus the folder's
``local_day`` and ``checkpoint_id``) and is asked the questions the decision needs:

- ``latency``: commit latency of a worker-sized commit (``rows`` rows of one partition,
  spread over its checkpoints, as one commit of the worker at ``CROSSINGS_COMMIT_INTERVAL``);
- ``replay``: rows per second of a replay-sized bulk write (commits of 100,000 rows);
- ``day``: files after a simulated day of live traffic (one partition committing every
  interval, ``--day-hours`` of it), then after the format's compaction;
- ``exactly_once``: a commit repeated with the same (partition, sequence) adds nothing,
  and a zombie (an older owner of the partition) is refused;
- ``query``: the line a DuckDB user types to read the table, run in a fresh connection.

The formats: ``parquet`` (today's ``LakeSink``, local only: it cannot write to S3),
``ducklake`` (catalog in SQLite locally, in PostgreSQL with ``--catalog postgres``; small
commits inlined in the catalog up to ``--inline-rows``), ``delta`` (delta-rs, the commit
sequence as the transaction version of app id ``p<partition>``).
``--store s3`` starts SeaweedFS (``streams.ops.lakestore``) and writes the table formats there.

    python -m load_tests.lake_spike --store local
    python -m load_tests.lake_spike --store s3 --catalog postgres --day-hours 1
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs

from streams.core.effects import CommitBatch, EventColumns, MetricDeltas
from streams.sinks.parquet.layout import EVENTS_SCHEMA
from streams.sinks.parquet.sink import LakeSink

CHECKPOINTS = ["zhibek-zholy", "dostyk", "khorgos", "torugart"]  # a partition's share of 14
DAY = date(2026, 3, 4)
SPIKE_SCHEMA = EVENTS_SCHEMA.append(pa.field("local_day", pa.date32(), nullable=False)).append(
    pa.field("checkpoint_id", pa.string(), nullable=False)
)
COMMIT_ATTEMPTS = 5
DUCKDB_EXTENSIONS = ("ducklake", "sqlite", "postgres", "httpfs", "delta")


class Fenced(RuntimeError):
    """A writer that no longer owns the partition tried to commit."""


# -- batches ----------------------------------------------------------------------------


def batch(partition: int, first_offset: int, rows: int, day: date = DAY) -> pa.Table:
    """``rows`` events of one partition, offsets from ``first_offset``, over its checkpoints."""
    offsets = pa.array(range(first_offset, first_offset + rows), pa.int64())
    base = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    occurred = [base + timedelta(seconds=(o * 7) % 86_400) for o in range(first_offset, first_offset + rows)]
    columns = {
        "event_id": [f"e-{partition}-{o}" for o in range(first_offset, first_offset + rows)],
        "direction": ["entry" if o % 2 else "exit" for o in range(rows)],
        "occurred_at": pa.array(occurred, EVENTS_SCHEMA.field("occurred_at").type),
        "local_hour": pa.array([t.hour for t in occurred], pa.int8()),
        "nationality": [("KAZ", "UZB", "KGZ", "CHN", "RUS")[o % 5] for o in range(rows)],
        "purpose": [("tourism", "business", "transit", "work")[o % 4] for o in range(rows)],
        "mode": [("car", "bus", "truck", "pedestrian")[o % 4] for o in range(rows)],
        "outcome": ["admitted"] * rows,
        "kafka_partition": pa.array([partition] * rows, pa.int32()),
        "kafka_offset": offsets,
        "kafka_timestamp": pa.array(occurred, pa.timestamp("ms", tz="UTC")),
        "local_day": pa.array([day] * rows, pa.date32()),
        "checkpoint_id": [
            CHECKPOINTS[o % len(CHECKPOINTS)] for o in range(first_offset, first_offset + rows)
        ],
    }
    return pa.table(columns, schema=SPIKE_SCHEMA)


def _event_columns(table: pa.Table) -> dict[tuple[date, str], EventColumns]:
    """The same rows as the worker's core hands them to today's sink."""
    out: dict[tuple[date, str], EventColumns] = {}
    data = table.to_pydict()
    for i in range(table.num_rows):
        key = (data["local_day"][i], data["checkpoint_id"][i])
        columns = out.setdefault(key, EventColumns())
        columns.event_id.append(data["event_id"][i])
        columns.direction.append(data["direction"][i])
        columns.occurred_at_us.append(int(data["occurred_at"][i].timestamp() * 1_000_000))
        columns.local_hour.append(data["local_hour"][i])
        columns.nationality.append(data["nationality"][i])
        columns.purpose.append(data["purpose"][i])
        columns.mode.append(data["mode"][i])
        columns.outcome.append(data["outcome"][i])
        columns.kafka_partition.append(data["kafka_partition"][i])
        columns.kafka_offset.append(data["kafka_offset"][i])
        columns.kafka_timestamp_ms.append(int(data["kafka_timestamp"][i].timestamp() * 1000))
    return out


# -- storage ------------------------------------------------------------------------------


@dataclass
class Store:
    """Where the table formats write: a local folder or a prefix of the S3 bucket."""

    kind: str  # "local" | "s3"
    root: str  # a folder, or bucket/prefix
    endpoint: str = ""
    key: str = ""
    secret: str = ""

    def uri(self, name: str) -> str:
        return f"{self.root}/{name}" if self.kind == "local" else f"s3://{self.root}/{name}"

    def filesystem(self) -> fs.FileSystem:
        if self.kind == "local":
            return fs.LocalFileSystem()
        return fs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            access_key=self.key,
            secret_key=self.secret,
            region="us-east-1",
        )

    def count_files(self, name: str, suffix: str = "") -> int:
        path = f"{self.root}/{name}"
        filesystem = self.filesystem()
        try:
            infos = filesystem.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return 0
        return sum(1 for info in infos if info.type == fs.FileType.File and info.path.endswith(suffix))

    def duckdb_secret(self) -> str:
        """What a DuckDB user types once to reach this store (empty for a local folder)."""
        if self.kind == "local":
            return ""
        return (
            f"CREATE SECRET lake_s3 (TYPE s3, KEY_ID '{self.key}', SECRET '<secret>', "
            f"ENDPOINT '{self.endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1');"
        )

    def delta_options(self) -> dict[str, str]:
        if self.kind == "local":
            return {}
        return {
            "AWS_ENDPOINT_URL": f"http://{self.endpoint}",
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            # Concurrent writers without a lock table: the commit file is put with If-None-Match.
            "AWS_CONDITIONAL_PUT": "etag",
        }


def duckdb_connection(store: Store):
    """A DuckDB 1.5.5 connection with the extensions from their PyPI packages, offline."""
    import duckdb

    con = duckdb.connect()
    for name in DUCKDB_EXTENSIONS:
        module = importlib.import_module(f"duckdb_extension_{name}")
        (path,) = glob.glob(
            os.path.join(os.path.dirname(module.__file__), "extensions", "*", "*.duckdb_extension")
        )
        con.execute(f"INSTALL '{path}'")
        con.execute(f"LOAD {name}")
    if store.kind == "s3":
        con.execute(store.duckdb_secret().replace("<secret>", store.secret))
    return con


# -- the formats ----------------------------------------------------------------------------


class ParquetPeer:
    """Today's lake: ``LakeSink`` with the worker's roll policy (local filesystem only)."""

    name = "parquet (today)"

    def __init__(self, store: Store, roll_seconds: float = 3600.0, clock: Callable[[], float] = time.time):
        self.store = store
        self.root = Path(store.root) / "parquet"
        self.sink = LakeSink(self.root, roll_seconds=roll_seconds, clock=clock)
        self.committed: dict[int, int] = {}

    def open(self, partition: int) -> int:
        self.sink.open_partition(partition, self.committed.get(partition, 0))
        return 0

    def commit(self, partition: int, seq: int, epoch: int, table: pa.Table, prepared=None) -> str:
        events = prepared if prepared is not None else _event_columns(table)
        offsets = table.column("kafka_offset")
        rows = table.num_rows
        publish = self.sink.publish_due(partition, rows)
        self.sink.flush(
            CommitBatch(
                partition=partition,
                commit_seq=seq,
                first_offset=pc.min(offsets).as_py(),
                last_offset=pc.max(offsets).as_py(),
                events=events,
                alerts=[],
                snapshots=[],
                dead_letters=[],
                changes=[],
                metrics=MetricDeltas(),
                expired_buckets=[],
                expired_profiles=[],
                publish=publish,
            )
        )
        self.committed[partition] = seq  # the Kafka transaction's part, in the worker
        self.sink.committed(partition, seq)
        return "committed"

    def prepare(self, table: pa.Table):
        return _event_columns(table)

    def compact(self) -> None:
        """None: rewriting published files would let a reader count rows twice."""

    def files(self) -> dict[str, int]:
        visible = len(list((self.root / "events").glob("*/*/*.parquet")))
        staged = len(list((self.root / "_staging").rglob("*.parquet")))
        other = sum(1 for p in (self.root / "_staging").rglob("*") if p.is_file()) - staged
        return {"data": visible, "staged": staged, "metadata": other}

    def query_line(self) -> str:
        files = f"{self.root}/events/*/*/*.parquet"
        return f"SELECT count(*) FROM read_parquet('{files}', hive_partitioning = true);"

    def count(self) -> int:
        import duckdb

        if not any((self.root / "events").glob("*/*/*.parquet")):
            return 0  # staged rows are hidden from readers until published
        return duckdb.connect().execute(self.query_line().rstrip(";")).fetchone()[0]

    def close(self) -> None:
        pass


class DuckLake:
    """A DuckLake table ``events`` partitioned by day and checkpoint, and ``commits``:
    per Kafka partition the last commit sequence, its last offset and the owner's epoch,
    changed in the same catalog transaction as the rows."""

    def __init__(self, store: Store, catalog: str, inline_rows: int, pg=None):
        self.store = store
        self.catalog_kind = catalog
        self.name = f"ducklake ({catalog} catalog)"
        self.data_path = store.uri("ducklake") + "/"
        if catalog == "sqlite":
            self.meta = tempfile.mkdtemp(prefix="spike-ducklake-") + "/catalog.sqlite"
            self.attach_target = f"ducklake:sqlite:{self.meta}"
        elif catalog == "duckdb":
            self.meta = tempfile.mkdtemp(prefix="spike-ducklake-") + "/catalog.ducklake"
            self.attach_target = f"ducklake:{self.meta}"
        else:  # one PostgreSQL database: each lake of the spike in a schema of its own
            self.meta = ""
            self.attach_target = f"ducklake:postgres:{pg.libpq}"
        self.schema = "lake_" + "".join(c if c.isalnum() else "_" for c in store.root.rsplit("/", 1)[-1])
        self.inline_rows = inline_rows
        self.retries = 0
        self.con = self._connect()
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS lake.events ("
            "event_id VARCHAR NOT NULL, direction VARCHAR NOT NULL, occurred_at TIMESTAMPTZ NOT NULL, "
            "local_hour TINYINT NOT NULL, nationality VARCHAR NOT NULL, purpose VARCHAR NOT NULL, "
            "mode VARCHAR NOT NULL, outcome VARCHAR NOT NULL, kafka_partition INTEGER NOT NULL, "
            "kafka_offset BIGINT NOT NULL, kafka_timestamp TIMESTAMPTZ NOT NULL, "
            "local_day DATE NOT NULL, checkpoint_id VARCHAR NOT NULL)"
        )
        self.con.execute("ALTER TABLE lake.events SET PARTITIONED BY (local_day, checkpoint_id)")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS lake.commits (kafka_partition INTEGER NOT NULL, "
            "commit_seq BIGINT NOT NULL, last_offset BIGINT NOT NULL, epoch BIGINT NOT NULL)"
        )

    def _connect(self):
        con = duckdb_connection(self.store)
        con.execute(
            f"ATTACH '{self.attach_target}' AS lake (DATA_PATH '{self.data_path}', "
            f"DATA_INLINING_ROW_LIMIT {self.inline_rows}{self._schema_option()})"
        )
        return con

    def _schema_option(self) -> str:
        return f", METADATA_SCHEMA '{self.schema}'" if self.catalog_kind == "postgres" else ""

    def writer(self) -> DuckLake:
        """A second, independent writer of the same lake (another process or host)."""
        other = object.__new__(DuckLake)
        other.__dict__.update(self.__dict__)
        other.con = self._connect()
        return other

    def open(self, partition: int) -> int:
        """Take the partition: its epoch goes up by one, which fences every older owner."""
        con = self.con
        con.execute("BEGIN")
        row = con.execute("SELECT epoch FROM lake.commits WHERE kafka_partition = ?", [partition]).fetchone()
        if row is None:
            epoch = 1
            con.execute("INSERT INTO lake.commits VALUES (?, 0, -1, 1)", [partition])
        else:
            epoch = row[0] + 1
            con.execute("UPDATE lake.commits SET epoch = ? WHERE kafka_partition = ?", [epoch, partition])
        con.execute("COMMIT")
        return epoch

    def prepare(self, table: pa.Table):
        return None

    def commit(
        self, partition: int, seq: int, epoch: int, table: pa.Table, prepared=None, before_commit=None
    ) -> str:
        """Rows and the partition's commit sequence in one catalog transaction; a sequence
        already committed adds nothing; an older epoch is refused (also when the new
        owner's open lands between our read and our commit: the catalog's conflict check)."""
        import duckdb

        for attempt in range(COMMIT_ATTEMPTS):
            try:
                return self._commit_once(
                    partition, seq, epoch, table, before_commit if attempt == 0 else None
                )
            except duckdb.TransactionException:
                # Another partition's commit changed the catalog first: read it again. A
                # takeover shows as a newer epoch (Fenced), a commit already made as a duplicate.
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")

    def _commit_once(self, partition: int, seq: int, epoch: int, table: pa.Table, before_commit) -> str:
        con = self.con
        con.execute("BEGIN")
        try:
            committed_seq, owner = con.execute(
                "SELECT commit_seq, epoch FROM lake.commits WHERE kafka_partition = ?", [partition]
            ).fetchone()
            if owner != epoch:
                raise Fenced(f"partition {partition} is owned by epoch {owner}, not {epoch}")
            if seq <= committed_seq:
                con.execute("ROLLBACK")
                return "duplicate"
            con.register("spike_batch", table)
            con.execute("INSERT INTO lake.events SELECT * FROM spike_batch")
            con.unregister("spike_batch")
            last = pc.max(table.column("kafka_offset")).as_py()
            con.execute(
                "UPDATE lake.commits SET commit_seq = ?, last_offset = ? WHERE kafka_partition = ?",
                [seq, last, partition],
            )
            if before_commit is not None:
                before_commit()
            con.execute("COMMIT")
        except Exception:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            raise
        return "committed"

    def compact(self) -> None:
        self.con.execute("CALL ducklake_flush_inlined_data('lake')")
        self.con.execute("CALL ducklake_merge_adjacent_files('lake')")
        self.con.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")
        self.con.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")

    def files(self) -> dict[str, int]:
        data = self.store.count_files("ducklake", ".parquet")
        snapshots = self.con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()[0]
        return {"data": data, "snapshots": snapshots}

    def query_line(self) -> str:
        secret = self.store.duckdb_secret()
        target = self.attach_target
        attach = f"ATTACH '{target}' AS lake (READ_ONLY{self._schema_option()});"
        return (secret + " " if secret else "") + attach + " SELECT count(*) FROM lake.events;"

    def count(self) -> int:
        if self.catalog_kind == "duckdb":  # one process attaches a DuckDB file once
            return self.con.execute("SELECT count(*) FROM lake.events").fetchone()[0]
        con = duckdb_connection(self.store)
        con.execute(f"ATTACH '{self.attach_target}' AS reader (READ_ONLY{self._schema_option()})")
        return con.execute("SELECT count(*) FROM reader.events").fetchone()[0]

    def close(self) -> None:
        self.con.close()


class Delta:
    """A Delta table ``events`` partitioned by day and checkpoint, written by delta-rs; each
    commit carries the transaction (app id ``p<partition>``, version = commit sequence)."""

    name = "delta (delta-rs)"

    def __init__(self, store: Store):
        self.store = store
        self.uri = store.uri("delta/events")
        self.options = store.delta_options()
        self.table = None
        self.views: dict[int, object] = {}

    def writer(self) -> Delta:
        return Delta(self.store)

    def _table(self):
        from deltalake import DeltaTable

        if self.table is None:
            if DeltaTable.is_deltatable(self.uri, storage_options=self.options):
                self.table = DeltaTable(self.uri, storage_options=self.options)
        else:
            self.table.update_incremental()
        return self.table

    def open(self, partition: int) -> int:
        """Take the partition: an empty commit raises the version of app id
        ``p<partition>-epoch`` by one. Every data commit carries the owner's epoch too, so
        a commit racing an open conflicts, and a later one reads the newer epoch."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        table = self._table()
        if table is None:
            write_deltalake(
                self.uri,
                batch(partition, 0, 0),
                partition_by=["local_day", "checkpoint_id"],
                storage_options=self.options,
            )
            table = self._table()
        epoch = (table.transaction_version(f"p{partition}-epoch") or 0) + 1
        table.create_write_transaction(
            [],
            mode="append",
            schema=SPIKE_SCHEMA,
            partition_by=["local_day", "checkpoint_id"],
            commit_properties=CommitProperties(app_transactions=[Transaction(f"p{partition}-epoch", epoch)]),
        )
        return epoch

    def prepare(self, table: pa.Table):
        return None

    def commit(
        self, partition: int, seq: int, epoch: int, table: pa.Table, prepared=None, before_commit=None
    ) -> str:
        from deltalake import CommitProperties, Transaction, write_deltalake

        current = self._table()
        owner = current.transaction_version(f"p{partition}-epoch") or 0
        if owner != epoch:
            raise Fenced(f"partition {partition} is owned by epoch {owner}, not {epoch}")
        if seq <= (current.transaction_version(f"p{partition}") or 0):
            return "duplicate"
        if before_commit is not None:
            before_commit()
        write_deltalake(
            current,
            table,
            mode="append",
            partition_by=["local_day", "checkpoint_id"],
            commit_properties=CommitProperties(
                app_transactions=[
                    Transaction(f"p{partition}", seq),
                    Transaction(f"p{partition}-epoch", epoch),
                ]
            ),
        )
        return "committed"

    def compact(self) -> None:
        table = self._table()
        table.optimize.compact()
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        table.create_checkpoint()
        table.cleanup_metadata()

    def files(self) -> dict[str, int]:
        data = self.store.count_files("delta/events", ".parquet") - self.store.count_files(
            "delta/events/_delta_log", ".parquet"
        )
        log = self.store.count_files("delta/events/_delta_log")
        return {"data": data, "metadata": log}

    def query_line(self) -> str:
        secret = self.store.duckdb_secret()
        return (secret + " " if secret else "") + f"SELECT count(*) FROM delta_scan('{self.uri}');"

    def count(self) -> int:
        con = duckdb_connection(self.store)
        return con.execute(f"SELECT count(*) FROM delta_scan('{self.uri}')").fetchone()[0]

    def close(self) -> None:
        pass


# -- the measurements -----------------------------------------------------------------------


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


def measure_latency(lakes: dict[str, object], partition: int, rows: int, commits: int) -> dict[str, dict]:
    """Commits of ``rows`` rows, the formats taking turns commit by commit, so a machine
    whose load changes during the run weighs on all of them alike."""
    epochs = {name: lake.open(partition) for name, lake in lakes.items()}
    times: dict[str, list[float]] = {name: [] for name in lakes}
    for seq in range(1, commits + 1):
        table = batch(partition, (seq - 1) * rows, rows)
        for name, lake in lakes.items():
            prepared = lake.prepare(table)
            started = time.perf_counter()
            lake.commit(partition, seq, epochs[name], table, prepared)
            times[name].append(time.perf_counter() - started)
    return {name: {"rows_per_commit": rows, "commits": commits, **_ms(times[name])} for name in lakes}


def measure_replay(fmt, partition: int, total: int, per_commit: int) -> dict:
    epoch = fmt.open(partition)
    tables = [batch(partition, i, min(per_commit, total - i)) for i in range(0, total, per_commit)]
    prepared = [fmt.prepare(t) for t in tables]
    started = time.perf_counter()
    for seq, (table, ready) in enumerate(zip(tables, prepared, strict=True), start=1):
        fmt.commit(partition, seq, epoch, table, ready)
    seconds = time.perf_counter() - started
    return {
        "rows": total,
        "rows_per_commit": per_commit,
        "seconds": round(seconds, 2),
        "rows_per_s": round(total / seconds),
    }


def measure_day(fmt, partition: int, hours: float, interval: float, rows: int, clock: list[float]) -> dict:
    """Commits every ``interval`` s of simulated time (the clock is advanced, not waited for)."""
    epoch = fmt.open(partition)
    commits = int(hours * 3600 / interval)
    started = time.perf_counter()
    for seq in range(1, commits + 1):
        clock[0] += interval
        table = batch(partition, (seq - 1) * rows, rows)
        fmt.commit(partition, seq, epoch, table, fmt.prepare(table))
    write_seconds = time.perf_counter() - started
    before = fmt.files()
    started = time.perf_counter()
    fmt.compact()
    compact_seconds = time.perf_counter() - started
    return {
        "hours": hours,
        "commits": commits,
        "rows_per_commit": rows,
        "write_s": round(write_seconds, 1),
        "files_before": before,
        "files_after_compaction": fmt.files(),
        "compact_s": round(compact_seconds, 2),
        "rows_read_back": fmt.count(),
    }


def _attempt(step: Callable[[], str]) -> str:
    try:
        return step()
    except Exception as exc:  # Fenced, or the format's own conflict error
        return f"refused: {type(exc).__name__}: {str(exc).splitlines()[0][:140]}"


def check_exactly_once(fmt, partition: int) -> dict:
    """Idempotent by (partition, sequence); a zombie is refused, before and during a takeover;
    another partition's concurrent commit is not refused."""
    owner = fmt.writer()
    epoch = owner.open(partition)
    seq = _committed_seq(owner, partition) + 1
    before = fmt.count()
    rows = batch(partition, 10_000_000, 50)
    results = {"commit": _attempt(lambda: owner.commit(partition, seq, epoch, rows))}
    results["same_commit_again"] = _attempt(lambda: owner.commit(partition, seq, epoch, rows))
    successor = fmt.writer()

    def takeover() -> None:  # between the zombie's read and its commit
        new_epoch = successor.open(partition)
        results["successor_commit"] = successor.commit(
            partition, seq + 1, new_epoch, batch(partition, 10_000_050, 50)
        )

    results["zombie_racing_takeover"] = _attempt(
        lambda: owner.commit(
            partition, seq + 1, epoch, batch(partition, 10_000_900, 50), before_commit=takeover
        )
    )
    results["zombie_after_takeover"] = _attempt(
        lambda: owner.commit(partition, seq + 2, epoch, batch(partition, 10_000_950, 50))
    )
    other = fmt.writer()
    other_epoch = other.open(partition + 1)
    other_seq = _committed_seq(other, partition + 1) + 1

    def concurrent() -> None:
        results["partition_commit_meanwhile"] = successor.commit(
            partition, seq + 2, successor_epoch(successor, partition), batch(partition, 10_000_100, 50)
        )

    results["other_partition_concurrent"] = _attempt(
        lambda: other.commit(
            partition + 1, other_seq, other_epoch, batch(partition + 1, 0, 50), before_commit=concurrent
        )
    )
    results["other_partition_retries"] = getattr(other, "retries", "n/a (delta-rs retries inside)")
    results["rows_added"] = fmt.count() - before
    results["rows_expected"] = 200
    return results


def successor_epoch(fmt, partition: int) -> int:
    if isinstance(fmt, DuckLake):
        return fmt.con.execute(
            "SELECT epoch FROM lake.commits WHERE kafka_partition = ?", [partition]
        ).fetchone()[0]
    return fmt._table().transaction_version(f"p{partition}-epoch")


def _committed_seq(fmt, partition: int) -> int:
    if isinstance(fmt, DuckLake):
        row = fmt.con.execute(
            "SELECT commit_seq FROM lake.commits WHERE kafka_partition = ?", [partition]
        ).fetchone()
        return row[0] if row else 0
    table = fmt._table()
    return (table.transaction_version(f"p{partition}") if table is not None else None) or 0


# -- the run ----------------------------------------------------------------------------------


@contextlib.contextmanager
def services(args) -> Iterator[tuple[Store, object | None]]:
    home = Path(tempfile.mkdtemp(prefix="crossings-lake-spike-"))
    os.chmod(home, 0o755)
    stopped: list[Callable[[], None]] = []
    try:
        if args.store == "s3":
            from streams.ops.lakestore import seaweedfs

            s3 = seaweedfs.up(home / "s3", args.s3_port)
            stopped.append(lambda: seaweedfs.down(home / "s3"))
            store = Store("s3", f"{s3.bucket}/spike", s3.endpoint, s3.access_key, s3.secret_key)
        else:
            store = Store("local", str(home / "lake"))
        pg = None
        if args.catalog == "postgres":
            from streams.ops.lakestore import postgres

            pg = postgres.up(home / "pg", args.pg_port)
            stopped.append(lambda: postgres.down(home / "pg"))
        yield store, pg
    finally:
        for stop in reversed(stopped):
            with contextlib.suppress(Exception):
                stop()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["local", "s3"], default="local")
    parser.add_argument("--catalog", choices=["duckdb", "sqlite", "postgres"], default="duckdb")
    parser.add_argument("--formats", default="parquet,ducklake,delta")
    parser.add_argument("--tests", default="latency,replay,day,exactly_once")
    parser.add_argument("--interval", type=float, default=10.0, help="CROSSINGS_COMMIT_INTERVAL")
    parser.add_argument("--live-rows", type=int, default=500, help="rows of one live commit of a partition")
    parser.add_argument(
        "--busy-rows", type=int, default=7_500, help="rows of a commit at the worker's full rate"
    )
    parser.add_argument("--commits", type=int, default=40, help="commits timed per latency figure")
    parser.add_argument("--replay-rows", type=int, default=1_000_000)
    parser.add_argument("--replay-commit", type=int, default=100_000)
    parser.add_argument("--day-hours", type=float, default=24.0)
    parser.add_argument("--day-rows", type=int, default=20, help="rows per live commit in the day run")
    parser.add_argument("--inline-rows", type=int, default=1000, help="DuckLake DATA_INLINING_ROW_LIMIT")
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("CROSSINGS_TEST_S3_PORT", "18333")))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("CROSSINGS_TEST_PG_PORT", "15432")))
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    tests = set(args.tests.split(","))
    results: dict[str, dict] = {}
    with services(args) as (store, pg):

        def make(name: str, sub: str, clock: Callable[[], float] | None = None):
            sub_store = Store(store.kind, f"{store.root}/{sub}", store.endpoint, store.key, store.secret)
            if name == "parquet":
                return ParquetPeer(sub_store, clock=clock or time.time)
            if name == "ducklake":
                return DuckLake(sub_store, args.catalog, args.inline_rows, pg)
            return Delta(sub_store)

        names = [n for n in args.formats.split(",") if not (n == "parquet" and store.kind != "local")]
        if len(names) < len(args.formats.split(",")):
            results["parquet (today)"] = {"skipped": "today's lake writes a local filesystem only"}
        partition = 0
        for name in names:
            results[
                make(name, "name").name if name != "ducklake" else f"ducklake ({args.catalog} catalog)"
            ] = {}
        keys = dict(zip(names, [k for k in results if not results[k]], strict=True))
        if "latency" in tests:
            for label, rows in (("live", args.live_rows), ("busy", args.busy_rows)):
                lakes = {name: make(name, f"latency-{label}") for name in names}
                for name, figures in measure_latency(lakes, partition, rows, args.commits).items():
                    results[keys[name]][f"latency_{label}"] = figures
                    print(keys[name], label, figures, flush=True)
                for lake in lakes.values():
                    lake.close()
        for name in names:
            figures = results[keys[name]]
            fmt = None
            if "replay" in tests:
                fmt = make(name, "replay")
                figures["replay"] = measure_replay(fmt, partition, args.replay_rows, args.replay_commit)
                print(fmt.name, "replay", figures["replay"], flush=True)
            if "day" in tests:
                clock = [time.time()]
                fmt = make(name, "day", clock=lambda clock=clock: clock[0])
                figures["day"] = measure_day(
                    fmt, partition, args.day_hours, args.interval, args.day_rows, clock
                )
                print(fmt.name, "day", figures["day"], flush=True)
            if "exactly_once" in tests and name == "ducklake" and args.catalog != "postgres":
                figures["exactly_once"] = {"skipped": "a second writer needs the PostgreSQL catalog"}
            elif "exactly_once" in tests and name != "parquet":
                fmt = make(name, "exactly-once")
                figures["exactly_once"] = check_exactly_once(fmt, partition)
                print(fmt.name, "exactly once", figures["exactly_once"], flush=True)
            if fmt is not None:
                figures["query"] = fmt.query_line()
    print(
        json.dumps({"store": args.store, "catalog": args.catalog, "results": results}, indent=2, default=str)
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
