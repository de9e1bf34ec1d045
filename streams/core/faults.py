"""What a failed commit was caused by, so one partition's fault is handled as its kind needs.

A commit fails for one of four kinds of reasons, and the worker treats each differently
(``worker/guard.py``): the partition is always held back alone while the others go on.

- ``broker``: the cluster is away or busy (a connection, a timeout, a leader moving).
  Retrying cures it; the partition is retried with backoff and never quarantined.
- ``storage``: the lake or the state volume refused a write (full, read-only, no
  permission), or the lake's object store or catalog cannot be reached (DuckDB's
  ``IOException``/``HTTPException``, or any DuckDB error saying the catalog's server
  connection is gone: :data:`_CATALOG_UNREACHABLE`). The partition keeps its place and is retried with
  backoff until the space, the permission or the service comes back, reported as
  quarantined meanwhile.
- ``record``: the broker refused an output one record produced (its dead letter or its
  forwarded copy was too large, say). Retrying cannot cure it: quarantined at once, and
  an operator may move the record aside (``crossings quarantine skip``).
- ``unknown``: anything else; retried, and quarantined after a few failures.

No Kafka client is imported here: errors are recognised by their class names and their
``retriable`` flag (aiokafka's and kafka-python's errors carry one), walking the chain of
causes, so the core stays free of client libraries.
"""

from __future__ import annotations

import asyncio
import errno
from typing import Literal

FaultKind = Literal["broker", "storage", "record", "unknown"]

#: Client errors that a retry cannot cure and that one record's output causes.
_RECORD_ERRORS = frozenset(
    {
        "MessageSizeTooLargeError",
        "RecordTooLargeError",
        "InvalidTimestampError",
        "CorruptRecordError",
        "InvalidRecord",
        "RecordListTooLargeError",
    }
)
#: Client errors that say the broker is away, slow or moving, though not flagged retriable.
_BROKER_ERRORS = frozenset(
    {
        "KafkaTimeoutError",
        "KafkaConnectionError",
        "NoBrokersAvailable",
        "NodeNotReadyError",
        "RequestTimedOutError",
        "NotEnoughReplicasError",
        "NotEnoughReplicasAfterAppendError",
        "CoordinatorNotAvailableError",
        "NotCoordinatorError",
        "ConcurrentTransactions",
        "IllegalStateError",  # a producer left unusable by a broker outage: reopened and retried
    }
)
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
#: DuckDB's errors for a lake it cannot read or write: a file, the object store (S3 over
#: HTTP) or the catalog's server (PostgreSQL) refused or unreachable. Not retriable in
#: itself, but the partition's place is kept and it is retried until the service is back:
#: no record of its is at fault, so an operator must not be told to move one aside.
_LAKE_ERRORS = frozenset({"IOException", "HTTPException"})
#: What libpq and PostgreSQL say when the catalog's server is gone, going or coming back,
#: whatever class DuckDB wraps it in: a server crashed mid-query surfaces as a "Binder
#: Error: Failed to get extended data file list from DuckLake: ... server closed the
#: connection unexpectedly" (``test_lake_outage.py``, PostgreSQL's immediate shutdown).
_CATALOG_UNREACHABLE = (
    "server closed the connection unexpectedly",
    "no connection to the server",
    "could not connect to server",
    "could not receive data from server",
    "could not send data to server",
    "unable to connect to postgres",
    "connection refused",
    "connection reset by peer",
    "ssl syscall error",
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
)


class OutputRefused(Exception):
    """The broker refused an output of one record (its dead letter, its forwarded copy):
    a retry would be refused again. Names the record, so an operator can move it aside."""

    def __init__(self, partition: int, offset: int, what: str, size: int, cause: BaseException) -> None:
        super().__init__(
            f"the {what} of the record at partition {partition} offset {offset} ({size:,} bytes) "
            f"was refused by the broker: {type(cause).__name__}: {cause}"
        )
        self.partition = partition
        self.offset = offset
        self.what = what
        self.size = size


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 10 and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(error: BaseException) -> FaultKind:
    """The kind of ``error`` (see the module docstring); the first cause that says wins."""
    for cause in _chain(error):
        if isinstance(cause, OutputRefused):
            return "record"
        name = type(cause).__name__
        if name in _RECORD_ERRORS:
            return "record"
        if (
            isinstance(cause, OSError)
            and not isinstance(cause, ConnectionError)
            and (cause.errno in _STORAGE_ERRNOS or type(cause).__module__.startswith(("rocks", "pyarrow")))
        ):
            return "storage"
        if type(cause).__module__.startswith(("duckdb", "_duckdb")) and (
            name in _LAKE_ERRORS or any(said in str(cause).lower() for said in _CATALOG_UNREACHABLE)
        ):
            return "storage"
        if name in _BROKER_ERRORS or isinstance(cause, ConnectionError | asyncio.TimeoutError | TimeoutError):
            return "broker"
        if getattr(cause, "retriable", False) is True:
            return "broker"
        if isinstance(cause, OSError) or "IO error" in str(cause):  # RocksDB says "IO error: ..."
            return "storage"
    return "unknown"


def refused_offset(error: BaseException) -> int | None:
    """The offset of the record whose output was refused, if ``error`` says which."""
    for cause in _chain(error):
        if isinstance(cause, OutputRefused):
            return cause.offset
    return None
