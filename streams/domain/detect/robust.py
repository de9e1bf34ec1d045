"""``median``: ``statistics.median`` without its overhead, the same value to the last bit.

The baseline takes some thirty medians of a few dozen numbers per day and series; in
``statistics`` each pays for a generic iterable, type checks and an exception path. This
one sorts and picks exactly as ``statistics.median`` does (the middle value, or the mean
of the two middle ones as ``(a + b) / 2``), so every expectation stays the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

N = TypeVar("N", int, float)


def median(values: Iterable[N]) -> N | float:
    """The median of ``values`` (not empty), as ``statistics.median`` computes it."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    half = n // 2
    if n % 2:
        return ordered[half]
    return (ordered[half - 1] + ordered[half]) / 2
