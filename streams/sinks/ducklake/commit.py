"""A DuckLake commit that keeps the worker's exactly-once promises (issue 19, first step).

The chosen table format (docs/decisions/0001-lake-table-format.md) on trial, not yet the
worker's lake. A commit's rows and its partition's ``(commit sequence, last offset)`` change
in one catalog transaction, in the table ``commits``:

- **Idempotent by (partition, sequence).** The commit reads the partition's sequence in its
  transaction; a sequence already committed adds nothing (a retry of a commit whose outcome
  was not known).
- **Zombies are fenced.** Taking a partition (:meth:`PartitionWriter.open`) raises its
  ``epoch``; a commit whose writer holds an older epoch is refused (:class:`Fenced`). A
  commit that read the old epoch just before the new owner's open landed is refused by the
  catalog (both change the partition's row), then read again, and fenced.
- Another partition's commit landing first is a conflict to the catalog too (one table
  holds every partition's row); the commit is run again from a fresh read, up to
  ``attempts`` times.

The catalog is a DuckDB or SQLite file for one host, PostgreSQL for several; the data path
is a folder or ``s3://bucket/prefix``. Small commits are inlined in the catalog
(``DATA_INLINING_ROW_LIMIT``) until compaction writes them out.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

EXTENSIONS = ("ducklake", "sqlite", "postgres", "httpfs")
ALIAS = "lake"
ATTEMPTS = 5


class Fenced(RuntimeError):
    """A writer that no longer owns the partition tried to commit: a zombie."""


@dataclass(frozen=True)
class S3Access:
    endpoint: str  # host:port
    key_id: str
    secret: str = field(repr=False)
    use_ssl: bool = False
    region: str = "us-east-1"
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LakeLocation:
    """``catalog``: what follows ``ducklake:`` in an ATTACH (``/path/lake.ducklake``,
    ``sqlite:/path/lake.sqlite``, ``postgres:host=… dbname=…``); ``data_path``: a folder or
    ``s3://bucket/prefix/``."""

    catalog: str
    data_path: str
    s3: S3Access | None = None
    inline_rows: int = 1000
    #: The catalog's schema for this lake (several lakes can share one PostgreSQL database).
    metadata_schema: str | None = None


def _install_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Each extension from its PyPI package (``duckdb-extension-<name>``), never the network."""
    for name in EXTENSIONS:
        module = importlib.import_module(f"duckdb_extension_{name}")
        pattern = os.path.join(os.path.dirname(module.__file__), "extensions", "*", "*.duckdb_extension")
        found = glob.glob(pattern)
        if len(found) != 1:
            raise RuntimeError(f"duckdb-extension-{name}: expected one extension file, found {found}")
        con.execute(f"INSTALL '{found[0]}'")
        con.execute(f"LOAD {name}")


def _secret(con: duckdb.DuckDBPyConnection, s3: S3Access) -> None:
    """The store's credentials, as parameters: never in a statement's text (or a log)."""
    options = {"key": s3.key_id, "secret": s3.secret, "ssl": s3.use_ssl, "region": s3.region}
    extra = ""
    if s3.endpoint:  # a store other than AWS: path-style URLs
        extra += ", ENDPOINT $endpoint, URL_STYLE 'path'"
        options["endpoint"] = s3.endpoint
    if s3.session_token:
        extra += ", SESSION_TOKEN $token"
        options["token"] = s3.session_token
    con.execute(
        "CREATE SECRET lake_s3 (TYPE s3, KEY_ID $key, SECRET $secret, USE_SSL $ssl, REGION $region"
        + extra
        + ")",
        options,
    )


def connect(location: LakeLocation) -> duckdb.DuckDBPyConnection:
    """A connection with the lake attached as ``lake``."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    _install_extensions(con)
    if location.s3 is not None:
        _secret(con, location.s3)
    con.execute(
        f"ATTACH 'ducklake:{location.catalog}' AS {ALIAS} "
        f"(DATA_PATH '{location.data_path}', DATA_INLINING_ROW_LIMIT {int(location.inline_rows)}"
        + (f", METADATA_SCHEMA '{location.metadata_schema}'" if location.metadata_schema else "")
        + ")"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {ALIAS}.commits (kafka_partition INTEGER NOT NULL, "
        "commit_seq BIGINT NOT NULL, last_offset BIGINT NOT NULL, epoch BIGINT NOT NULL, "
        # The snapshot the partition's last commit read: its rows as they were before it.
        "base_snapshot BIGINT)"
    )
    return con


def ensure_table(
    con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema, partition_by: list[str]
) -> None:
    """Create ``lake.<name>`` with the Arrow schema's columns (if it is missing)."""
    empty = schema.empty_table()
    con.register("lake_schema", empty)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {ALIAS}.{name} AS SELECT * FROM lake_schema")
    finally:
        con.unregister("lake_schema")
    if partition_by:
        con.execute(f"ALTER TABLE {ALIAS}.{name} SET PARTITIONED BY ({', '.join(partition_by)})")


class PartitionWriter:
    """Commits of one Kafka partition, by the writer that opened it last."""

    def __init__(self, con: duckdb.DuckDBPyConnection, partition: int, *, attempts: int = ATTEMPTS):
        self.con = con
        self.partition = partition
        self.attempts = attempts
        self.epoch: int | None = None
        #: Commits run again after the catalog refused them (another commit landed first).
        self.retries = 0

    def open(self) -> tuple[int, int]:
        """Take the partition: raise its epoch (fencing every older owner); returns the
        committed sequence and last offset to resume from."""
        for attempt in range(self.attempts):
            try:
                return self._open_once()
            except duckdb.TransactionException:
                if attempt == self.attempts - 1:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")

    def _open_once(self) -> tuple[int, int]:
        with transaction(self.con) as con:
            row = con.execute(
                f"SELECT commit_seq, last_offset, epoch FROM {ALIAS}.commits WHERE kafka_partition = ?",
                [self.partition],
            ).fetchone()
            if row is None:
                seq, last, epoch = 0, -1, 1
                con.execute(
                    f"INSERT INTO {ALIAS}.commits (kafka_partition, commit_seq, last_offset, epoch) "
                    "VALUES (?, 0, -1, 1)",
                    [self.partition],
                )
            else:
                seq, last, epoch = row[0], row[1], row[2] + 1
                con.execute(
                    f"UPDATE {ALIAS}.commits SET epoch = ? WHERE kafka_partition = ?", [epoch, self.partition]
                )
        self.epoch = epoch
        return seq, last

    def commit(
        self,
        seq: int,
        last_offset: int,
        tables: dict[str, pa.Table],
        *,
        before_commit: Callable[[], None] | None = None,
    ) -> str:
        """Append ``tables`` (name -> rows) and move the partition to ``seq``/``last_offset``
        in one transaction. Returns ``"committed"`` or ``"duplicate"`` (``seq`` was committed
        before: nothing added); raises :class:`Fenced` if another writer took the partition.
        ``before_commit`` runs right before the catalog commit (tests interleave a writer there)."""
        if self.epoch is None:
            raise RuntimeError(f"partition {self.partition}: open() it before committing")
        for attempt in range(self.attempts):
            try:
                return self._commit_once(seq, last_offset, tables, before_commit if attempt == 0 else None)
            except _Duplicate:
                return "duplicate"
            except duckdb.TransactionException:
                if attempt == self.attempts - 1:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")

    def _commit_once(self, seq, last_offset, tables, before_commit) -> str:
        with transaction(self.con) as con:
            row = con.execute(
                f"SELECT commit_seq, epoch FROM {ALIAS}.commits WHERE kafka_partition = ?", [self.partition]
            ).fetchone()
            committed, owner = row if row is not None else (0, None)
            if owner != self.epoch:
                raise Fenced(
                    f"partition {self.partition} is owned by epoch {owner}; this writer holds {self.epoch}"
                )
            if seq <= committed:
                raise _Duplicate
            for name, rows in tables.items():
                con.register("lake_rows", rows)
                try:
                    con.execute(f"INSERT INTO {ALIAS}.{name} SELECT * FROM lake_rows")
                finally:
                    con.unregister("lake_rows")
            con.execute(
                f"UPDATE {ALIAS}.commits SET commit_seq = ?, last_offset = ? WHERE kafka_partition = ?",
                [seq, last_offset, self.partition],
            )
            if before_commit is not None:
                before_commit()
        return "committed"


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One catalog transaction: committed when the block ends, rolled back if it raises
    (a refused rollback is ignored: the error that got us there is the one to report)."""
    con.execute("BEGIN")
    try:
        yield con
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class _Duplicate(Exception):
    """The sequence was committed before: roll back, add nothing."""
