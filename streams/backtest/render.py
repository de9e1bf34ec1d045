"""Episodes as text: a table for people, CSV for spreadsheets, JSON lines for programs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from streams.backtest.run import EpisodeRow

TABLE_COLUMNS = ("start", "checkpoint", "direction", "kind", "cause", "observed", "expected", "score", "end")
CSV_COLUMNS = (
    "checkpoint",
    "direction",
    "kind",
    "cause",
    "start",
    "end",
    "observed",
    "expected",
    "ratio",
    "score",
    "window",
    "drivers",
    "summary",
    "episode",
)


def render(rows: Sequence[EpisodeRow], fmt: str) -> str:
    if fmt == "json":
        return "".join(json.dumps(row.public(), ensure_ascii=False) + "\n" for row in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            data = row.public()
            writer.writerow([data[c] if data[c] is not None else "" for c in CSV_COLUMNS])
        return out.getvalue()
    return _table(rows)


def _table(rows: Sequence[EpisodeRow]) -> str:
    cells = [list(TABLE_COLUMNS)] + [
        [
            row.start,
            row.checkpoint,
            row.direction,
            row.kind,
            row.cause,
            f"{row.observed:,}",
            f"{row.expected:,.0f}",
            f"{row.score:+.1f}",
            row.end or "open",
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(rows)} episode(s)")
    return "\n".join(lines) + "\n"
