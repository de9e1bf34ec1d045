"""Durable, atomic file writes, and removing what a crash left behind.

Every file is written under a temporary name in its final folder, fsync'ed, renamed to
its final name and the folder fsync'ed, so a reader sees a whole file or none. The
temporary name does not end in ``.parquet``: DuckDB's globs match dot-files, so a dot
prefix alone would not hide a half-written file from an analyst's query.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streams.sinks.parquet.layout import ALERTS, COMMIT_FILE, COMPRESSION, EVENTS, TEMP_SUFFIX, temp_prefix


def write_atomically(table: pa.Table, directory: Path, name: str, partition: int) -> int:
    """Write ``table`` as ``directory/name``; returns its size in bytes."""
    make_dirs(directory)
    temp = directory / f"{temp_prefix(partition)}{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        with open(temp, "wb") as handle:
            pq.write_table(table, handle, compression=COMPRESSION)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        os.replace(temp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(directory)
    return size


def remove_uncommitted(root: Path, partition: int, committed_seq: int) -> list[Path]:
    """Delete ``partition``'s commit files past ``committed_seq`` and its temporary files.

    Such files were written by a commit whose Kafka transaction never completed (a crash
    or a failed step between the Parquet write and the offset commit); the records they
    hold are processed again, so keeping them would count those rows twice.
    """
    removed: list[Path] = []
    prefix = temp_prefix(partition)
    for dataset in (EVENTS, ALERTS):
        base = Path(root) / dataset
        if not base.is_dir():
            continue
        for day_dir in base.iterdir():
            if not day_dir.is_dir():
                continue
            for folder in day_dir.iterdir():
                if not folder.is_dir():
                    continue
                for entry in os.scandir(folder):
                    match = COMMIT_FILE.match(entry.name)
                    stale = (
                        match is not None
                        and int(match["partition"]) == partition
                        and int(match["seq"]) > committed_seq
                    )
                    if stale or entry.name.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                        removed.append(Path(entry.path))
    for folder in {path.parent for path in removed}:
        fsync_dir(folder)
    return removed


def make_dirs(directory: Path) -> None:
    """mkdir -p, fsync'ing each parent that gained an entry so the folder survives a crash."""
    missing = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        fsync_dir(folder.parent)


def fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
