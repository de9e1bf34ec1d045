"""Restart cost with millions of remembered event ids (``python -m load_tests.restart_state``).

Writes N ids as the changelog would carry them (chunks of 5,000 per hour bucket) into a
local store, then measures: rebuilding the store from those records (what a worker on a
new machine does while reading the changelog), and reopening it (a restart on the same
machine: RocksDB is opened, only chunk keys and profiles are read, ids stay on disk),
with the process's max RSS after each step.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from streams.core.state import SEEN_CHUNK_IDS, PartitionState
from streams.core.store import SEEN_CHUNK, LocalStore


def rss_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=3_000_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    try:
        store = LocalStore(root / "p000")
        started = time.perf_counter()
        for chunk, start in enumerate(range(0, args.ids, SEEN_CHUNK_IDS)):
            bucket = 480_000 + chunk // 20  # ~100k ids an hour
            numbers = range(start, min(start + SEEN_CHUNK_IDS, args.ids))
            ids = "\n".join(f"ev-{n:012d}-abcdef {n:08x}" for n in numbers)
            key = SEEN_CHUNK + f"{bucket:010d}|{chunk:010d}|00000".encode()
            store.apply([(key, ids.encode())], chunk + 1)
        rebuild = time.perf_counter() - started
        store.close()
        rss_after_rebuild = rss_mib()
        started = time.perf_counter()
        store = LocalStore(root / "p000")
        state = PartitionState.load(0, store)
        found = store.remembered(["ev-000000000007-abcdef", "ev-999999999999-abcdef"])
        reopen = time.perf_counter() - started
        assert found == [f"{7:08x}", None], found
        summary = {
            "remembered_ids": args.ids,
            "chunks": sum(len(keys) for keys in state.seen_chunks.values()),
            "rebuild_from_changelog_records_s": round(rebuild, 1),
            "reopen_local_store_s": round(reopen, 2),
            "max_rss_mib_after_rebuild": rss_after_rebuild,
            "max_rss_mib_after_reopen": rss_mib(),
            "store_mib_on_disk": round(sum(p.stat().st_size for p in (root / "p000").rglob("*")) / 2**20),
        }
        store.close()
        print(json.dumps(summary, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
