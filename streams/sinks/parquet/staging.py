"""Staged rows and their publication: few, whole files for readers, inside the commit protocol.

Why: a commit writes one file per folder it touched. Replaying history, a commit holds
thousands of rows; live, it holds a few seconds of them, so a post that sends a crossing
every 20 s gets a file per crossing (~4,000 a day), and an analyst's query opens millions
of tiny files. So appended rows (events, alerts, dead letters) are staged, hidden from
readers, and published in larger files, as Kafka Connect's and Flink's file sinks roll
theirs, without giving up what the commit protocol promises:

- A commit either **stages** or **publishes**, decided before it writes (and kept for its
  retries, so a retry writes the same files). Staging writes the commit's files under
  ``_staging/p<PPP>/`` at the same relative paths. Publishing writes, for every folder with
  staged files or rows of this commit, ONE visible file named by this commit's sequence
  and the source offsets of all its rows: the staged rows in commit order, then this
  commit's. Before any of those, an *intent* ``_staging/p<PPP>/publish-<seq>.json`` lists
  them and the staged files they replace, made durable.
- After the commit point, :meth:`Staging.committed` removes the replaced staged files,
  then the intent.
- Opening the partition (:meth:`Staging.recover`) undoes an intent past the committed
  sequence (its visible files go: that commit never happened and its records are
  processed again) and finishes one at or below it (its staged files go); then staged
  files past the committed sequence and temporary files go. What is left is exactly the
  committed, unpublished rows.

Visible files are only ever written by a commit and never rewritten, so readers keep
"append-only, every file whole, nothing counted twice". Opening a partition lists only its
own staging folder, not the lake (a lake written before staging existed is scanned once).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streams.sinks.parquet.files import fsync_dir, make_dirs, remove_uncommitted, write_bytes
from streams.sinks.parquet.layout import (
    COMMIT_FILE,
    TEMP_PREFIX,
    commit_file_name,
    conform,
    staging_dir,
)

INTENT_PREFIX = "publish-"


@dataclass(frozen=True)
class StagedFile:
    """A committed, unpublished file: its path under the staging folder and its span."""

    relative: str
    seq: int
    first: int | None
    last: int | None
    rows: int

    @property
    def folder(self) -> str:
        return self.relative.rpartition("/")[0]


@dataclass
class Publication:
    """What one publishing commit writes: per visible folder, its file name and the staged
    files whose rows come first in it."""

    seq: int
    names: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, list[StagedFile]] = field(default_factory=dict)

    def intent(self) -> bytes:
        return json.dumps(
            {
                "seq": self.seq,
                "visible": sorted(f"{folder}/{name}" for folder, name in self.names.items()),
                "staged": sorted(s.relative for files in self.replaced.values() for s in files),
            },
            indent=1,
        ).encode()


@dataclass
class _Pending:
    seq: int
    publication: Publication | None
    staged: list[StagedFile]


class Staging:
    """One lake's staging folders and the roll policy, per partition."""

    def __init__(
        self,
        root: Path,
        *,
        roll_seconds: float = 0.0,
        roll_rows: int = 1_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.roll_seconds = roll_seconds
        self.roll_rows = roll_rows
        self.clock = clock
        self._files: dict[int, list[StagedFile]] = {}
        #: Wall-clock time the oldest staged file of a partition was committed.
        self._since: dict[int, float] = {}
        self._pending: dict[int, _Pending] = {}

    def folder(self, partition: int) -> Path:
        return staging_dir(self.root, partition)

    # -- the roll policy -------------------------------------------------------------------

    def has_staged(self, partition: int) -> bool:
        return bool(self._files.get(partition))

    def due(self, partition: int, rows: int) -> bool:
        """Publish with the next commit (of ``rows`` appended rows)? Always with a roll
        time of 0; else once the oldest staged file is that old, or the rows staged and
        to come reach the row limit."""
        if self.roll_seconds <= 0:
            return True
        files = self._files.get(partition, ())
        if rows + sum(f.rows for f in files) >= self.roll_rows:
            return True
        since = self._since.get(partition)
        return since is not None and self.clock() - since >= self.roll_seconds

    # -- a commit --------------------------------------------------------------------------

    def plan(self, partition: int, seq: int, folders: list[str], span: tuple[int | None, int]) -> Publication:
        """The publication of commit ``seq``, whose own rows go to ``folders`` and came from
        source offsets ``span`` (first None: alerts of the idle timer alone)."""
        publication = Publication(seq)
        staged = self._files.get(partition, [])
        for folder in sorted({*folders, *(f.folder for f in staged)}):
            replaced = sorted((f for f in staged if f.folder == folder), key=lambda f: f.seq)
            firsts = [f.first for f in replaced if f.first is not None]
            lasts = [f.last for f in replaced if f.last is not None]
            if folder in folders and span[0] is not None:
                firsts.append(span[0])
                lasts.append(span[1])
            name = commit_file_name(partition, seq, min(firsts) if firsts else None, max(lasts, default=0))
            publication.names[folder] = name
            publication.replaced[folder] = replaced
        return publication

    def write_intent(self, partition: int, publication: Publication) -> None:
        """Made durable before any visible file of the publication is written."""
        folder = self.folder(partition)
        make_dirs(folder)
        write_bytes(folder / f"{INTENT_PREFIX}{publication.seq:010d}.json", publication.intent(), partition)

    def read(self, partition: int, staged: StagedFile, schema: pa.Schema) -> pa.Table:
        """A staged file as ``schema`` (a file staged before an upgrade lacks newer columns)."""
        return conform(pq.read_table(self.folder(partition) / staged.relative), schema)

    def prepared(
        self, partition: int, seq: int, publication: Publication | None, staged: list[StagedFile]
    ) -> None:
        """Commit ``seq`` wrote its files (``staged``, or ``publication``); it is not
        committed until :meth:`committed`."""
        self._pending[partition] = _Pending(seq, publication, staged)

    def committed(self, partition: int, committed_seq: int) -> None:
        """Commits up to ``committed_seq`` are past their commit point: forget what the last
        one published, or remember what it staged. A prepared commit past it failed: its
        files are written again by the retry, or removed by :meth:`recover`."""
        pending = self._pending.pop(partition, None)
        if pending is None or pending.seq > committed_seq:
            return
        if pending.publication is None:
            if pending.staged and not self._files.get(partition):
                self._since[partition] = self.clock()
            self._files.setdefault(partition, []).extend(pending.staged)
            return
        replaced = [s.relative for files in pending.publication.replaced.values() for s in files]
        self._finish(partition, pending.publication.seq, replaced)
        self._files[partition] = []
        self._since.pop(partition, None)

    def _finish(self, partition: int, seq: int, replaced: list[str]) -> int:
        """The staged files a committed publication replaced go, durably, then its intent."""
        folder = self.folder(partition)
        removed = _unlink_durably([folder / relative for relative in replaced])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / f"{INTENT_PREFIX}{seq:010d}.json")
        return removed

    # -- opening a partition ---------------------------------------------------------------

    def recover(self, partition: int, committed_seq: int) -> int:
        """Leave only what was committed (see the module docstring); returns files removed."""
        folder = self.folder(partition)
        self._files[partition] = []
        self._since.pop(partition, None)
        self._pending.pop(partition, None)
        if not folder.is_dir():
            # A lake from before staging: its uncommitted files are in the visible folders.
            removed = len(remove_uncommitted(self.root, partition, committed_seq))
            make_dirs(folder)
            return removed
        removed = 0
        for intent in sorted(folder.glob(f"{INTENT_PREFIX}*.json")):
            content = json.loads(intent.read_bytes())
            if content["seq"] > committed_seq:  # never committed: its visible files go
                removed += _unlink_durably([self.root / relative for relative in content["visible"]])
                intent.unlink()
            else:  # committed: what it published is staged no more
                removed += self._finish(partition, content["seq"], content["staged"])
        kept: list[StagedFile] = []
        stale: list[Path] = []
        for directory, _, names in os.walk(folder):
            for name in names:
                path = Path(directory) / name
                match = COMMIT_FILE.match(name)
                if name.startswith(TEMP_PREFIX) or (match is not None and int(match["seq"]) > committed_seq):
                    stale.append(path)
                elif match is not None:
                    kept.append(
                        StagedFile(
                            path.relative_to(folder).as_posix(),
                            int(match["seq"]),
                            int(match["first"]) if match["first"] else None,
                            int(match["last"]) if match["last"] else None,
                            pq.read_metadata(path).num_rows,
                        )
                    )
                    mtime = path.stat().st_mtime
                    self._since[partition] = min(self._since.get(partition, mtime), mtime)
        self._files[partition] = sorted(kept, key=lambda f: (f.seq, f.relative))
        return removed + _unlink_durably(stale)


def _unlink_durably(paths: list[Path]) -> int:
    """Remove files and make their folders' removals durable (a removal lost in a crash
    could bring back a file whose sequence a later commit has made look committed)."""
    gone = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            gone.append(path.parent)
    for directory in dict.fromkeys(gone):
        fsync_dir(directory)
    return len(gone)
