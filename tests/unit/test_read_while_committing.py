"""Reports read the lake while a worker commits: each commit renames a new daily-count
snapshot over the old one, and a query that meets a file replaced under it is run again
from a fresh listing, never failing and never mixing two versions of one file."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

from test_report import write_commit

from streams.core.effects import DailySnapshot
from streams.query.reports import daily_totals

CHECKPOINT = "zhibek-zholy"
DAY = date(2024, 3, 1)


def snapshot(version: int) -> DailySnapshot:
    """Version ``version`` of the day: as many rows as the version, each counting 1, so a
    reader of one whole version sums to its number of rows (and files differ in layout)."""
    rows = [("entry", f"N{n:03d}"[:3] if n < 1000 else "UZB", f"p{n}", 1) for n in range(version)]
    return DailySnapshot(CHECKPOINT, DAY, rows, datetime(2024, 3, 2, tzinfo=UTC).timestamp())


def test_daily_reports_never_fail_while_the_snapshot_is_replaced(tmp_path):
    write_commit(tmp_path, 1, [], [snapshot(50)], [])
    stop = threading.Event()
    written = {50}

    def committing() -> None:
        seq, version = 2, 50
        while not stop.is_set():
            version = 50 + (seq * 37) % 400  # another size, so another layout
            write_commit(tmp_path, seq, [], [snapshot(version)], [])
            written.add(version)
            seq += 1
            stop.wait(0.01)  # a commit every 10 ms: far more often than any worker commits

    writer = threading.Thread(target=committing, daemon=True)
    writer.start()
    try:
        totals = []
        for _ in range(300):
            rows = daily_totals(tmp_path, checkpoint=CHECKPOINT)
            totals.append(sum(row["total"] for row in rows))
    finally:
        stop.set()
        writer.join()
    assert len(written) > 20  # the snapshot really was replaced, many times, while reading
    assert set(totals) <= written  # each read saw one whole version
