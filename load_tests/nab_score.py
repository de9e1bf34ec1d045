"""NAB's standard-profile score for one file, from the rules in ../shared/data/nab/SCORING.md.

NAB's own scorer (``nab/sweeper.py``) is not shipped; this follows SCORING.md: windows
from ``labels/combined_windows.json``, the probationary prefix unscored, the earliest
detection in a window scores ``tpWeight * S(y) / S(-1)``, a missed window ``-fnWeight``,
each detection outside every window ``fpWeight * S(y)`` by its distance after the last
window (``-fpWeight`` before the first), normalised to 100 (perfect) / 0 (never alerts).
Our detections are episode openings, each placed at the last row the detector had seen.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PROFILES = {
    "standard": (1.0, 1.0, 0.11),
    "reward_low_FP_rate": (1.0, 1.0, 0.22),
    "reward_low_FN_rate": (1.0, 2.0, 0.11),
}


def _sigmoid(y: float) -> float:
    if y > 3:
        return -1.0
    return 2 / (1 + math.exp(5 * y)) - 1


@dataclass
class NabResult:
    windows: int
    detected: int
    false_positives: int
    raw: float
    normalised: float
    delays_h: list[float]


def load_windows(nab_root: Path, name: str) -> list[tuple[datetime, datetime]]:
    data = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    return [(_ts(a), _ts(b)) for a, b in data[name]]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.split(".")[0])


def score_file(
    timestamps: list[datetime],
    detections: list[datetime],
    windows: list[tuple[datetime, datetime]],
    profile: str = "standard",
) -> NabResult:
    """``timestamps``: the file's rows; ``detections``: row timestamps flagged."""
    tp_w, fn_w, fp_w = PROFILES[profile]
    index = {t: i for i, t in enumerate(timestamps)}
    probation = min(math.floor(0.15 * len(timestamps)), 750)
    spans = [(index[a], index[b]) for a, b in windows]
    rows = sorted({index[d] for d in detections if d in index and index[d] >= probation})
    raw = 0.0
    detected = 0
    delays = []
    false_positives = 0
    for start, end in spans:
        inside = [r for r in rows if start <= r <= end]
        if inside:
            width = end - start + 1
            y = -(end - inside[0] + 1) / width
            raw += tp_w * _sigmoid(y) / _sigmoid(-1)
            detected += 1
            delays.append((inside[0] - start) * (timestamps[1] - timestamps[0]).total_seconds() / 3600)
        else:
            raw -= fn_w
    for r in rows:
        if any(start <= r <= end for start, end in spans):
            continue
        false_positives += 1
        before = [(s, e) for s, e in spans if e < r]
        if not before:
            raw -= fp_w
            continue
        s, e = before[-1]
        y = (r - e) / (e - s + 1 - 1)
        raw += fp_w * _sigmoid(y)
    perfect, null = tp_w * len(spans), -fn_w * len(spans)
    return NabResult(
        len(spans), detected, false_positives, raw, 100 * (raw - null) / (perfect - null), delays
    )
