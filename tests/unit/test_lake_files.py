"""A commit's files land whole under their final names, or not at all, on both sync paths."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streams.sinks.parquet import files
from streams.sinks.parquet.files import SYNCFS_FROM_FILES, write_all

#: A few files take the fsync-per-file path, many the syncfs path (where the kernel has it).
SIZES = [1, 3, SYNCFS_FROM_FILES, SYNCFS_FROM_FILES * 3]


def _jobs(root: Path, n: int, fail_at: int | None = None) -> list[files.FileJob]:
    def build(i: int) -> pa.Table:
        if i == fail_at:
            raise OSError(28, "No space left on device (injected)")
        return pa.table({"direction": ["entry"] * (i + 1), "kafka_offset": list(range(i + 1))})

    return [
        (root / f"date=2024-03-0{i % 3 + 1}" / f"checkpoint=c{i}", "p000.parquet", lambda i=i: build(i))
        for i in range(n)
    ]


def _left_behind(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("n", SIZES)
def test_every_file_lands_whole(tmp_path, n):
    size = write_all(_jobs(tmp_path, n), partition=0)
    landed = sorted(tmp_path.rglob("*.parquet"))
    assert len(landed) == n
    assert size == sum(p.stat().st_size for p in landed)
    for i in range(n):
        table = pq.read_table(tmp_path / f"date=2024-03-0{i % 3 + 1}" / f"checkpoint=c{i}" / "p000.parquet")
        assert table.column("kafka_offset").to_pylist() == list(range(i + 1))
    assert all(name.endswith(".parquet") for name in _left_behind(tmp_path))  # no temporary files


@pytest.mark.parametrize("n", SIZES)
def test_a_failed_write_raises_and_leaves_no_temporary_file(tmp_path, n):
    with pytest.raises(OSError, match="injected"):
        write_all(_jobs(tmp_path, n, fail_at=n - 1), partition=0)
    left = _left_behind(tmp_path)
    assert not [name for name in left if not name.endswith(".parquet")]
    if n >= SYNCFS_FROM_FILES and files._SYNCFS is not None:
        assert left == []  # the renames come after every file is written and synced


def test_rewriting_a_commit_replaces_it_with_the_same_bytes(tmp_path):
    jobs = _jobs(tmp_path, SYNCFS_FROM_FILES)
    write_all(jobs, partition=0)
    first = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    write_all(jobs, partition=0)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")} == first
