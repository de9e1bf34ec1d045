"""Textbook detectors to hold ours against (issue 17, item 5): EARS C1, C2, C3 and a
same-weekday median/MAD rule. Reference only, not in the product.

All four read a *daily* series (an hourly series is summed per local day) and say, for
each day, surge (+1), drop (-1) or nothing (0). Consecutive days with the same verdict
are one episode, so their episodes compare with ours (:class:`EpisodeRow`).

Definitions (Hutwagner et al. 2003, "The bioterrorism preparedness and response Early
Aberration Reporting System (EARS)"; Fricker, Hegler and Dunfee 2008, Stat. Med.
27:3407, as the R package ``surveillance``'s ``earsC`` implements them):

- **C1** (EARS "mild"): mean and sample sd (n - 1) of days t-7 .. t-1;
  C1(t) = (y_t - mean) / sd; alarm when C1(t) > 3.
- **C2** ("medium"): the same over days t-9 .. t-3 (a two-day guard band, so the first
  days of an outbreak do not raise their own baseline); alarm when C2(t) > 3.
- **C3** ("ultra"): C3(t) = sum over i = t-2 .. t of max(0, C2(i) - 1); alarm when
  C3(t) > 2.
- **Weekday median/MAD** (the rule of issue 17): the same weekday of the last four weeks
  (t-7, t-14, t-21, t-28); median m and MAD scaled to an sd (x 1.4826); alarm when
  |y_t - m| / sd > 4 *and* y_t is at least 50 % off m (y >= 1.5 m or y <= 0.5 m).

EARS is one-sided (an outbreak is a surge). A border also needs drops, so each rule here
is run two-sided and symmetrically: a drop is C < -3 (C1, C2), the sum of
max(0, -C2(i) - 1) > 2 (C3), z < -4 (median/MAD). Minimum-sd guard: every sd is at least
``sqrt(max(mean, 1))``, the Poisson sd of the expected count (a count cannot be less
variable than that, and a baseline of seven equal days would otherwise give sd 0 and
an alarm on any change; ``surveillance``'s ``minSigma`` plays this part, default 0).
A day needs its whole baseline inside the series (no alarm before it is complete).

Checked against R: ``python -m load_tests.peers_vs_r`` (needs ``r-cran-surveillance``):
C1 and C2 agree with ``earsC`` on every day where the guard is not in force. ``earsC``'s
C3 (surveillance 1.20.3) in effect sums days t-2 and t-1 only (its bound is written around
the day's own observation); this module follows the published definition, t-2 .. t.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from streams.backtest import EpisodeRow, SeriesSet
from streams.backtest.series import Series, day_range, local_midnight

EARS_THRESHOLD = 3.0
C3_THRESHOLD = 2.0
C3_OFFSET = 1.0
MAD_Z = 4.0
MAD_OFF = 0.5
MAD_SCALE = 1.4826


def min_sd(mean: float) -> float:
    """The guard: the Poisson sd of the expected count, and never below 1."""
    return math.sqrt(max(mean, 1.0))


def _mean_sd(window: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(window)
    return mean, max(statistics.stdev(window), min_sd(mean))


def ears_statistic(values: Sequence[float], t: int, lag: int) -> float | None:
    """(y_t - mean) / sd over the 7 days ending ``lag`` days before t (C1: lag 1, C2: lag 3)."""
    first = t - lag - 6
    if first < 0:
        return None
    mean, sd = _mean_sd(values[first : t - lag + 1])
    return (values[t] - mean) / sd


def _sign(statistic: float | None, threshold: float) -> int:
    if statistic is None:
        return 0
    return 1 if statistic > threshold else -1 if statistic < -threshold else 0


def c1(values: Sequence[float]) -> list[int]:
    return [_sign(ears_statistic(values, t, 1), EARS_THRESHOLD) for t in range(len(values))]


def c2(values: Sequence[float]) -> list[int]:
    return [_sign(ears_statistic(values, t, 3), EARS_THRESHOLD) for t in range(len(values))]


def c3(values: Sequence[float]) -> list[int]:
    stats = [ears_statistic(values, t, 3) for t in range(len(values))]
    out = []
    for t in range(len(values)):
        window = stats[t - 2 : t + 1] if t >= 2 else []
        if len(window) < 3 or any(s is None for s in window):
            out.append(0)
            continue
        up = sum(max(0.0, s - C3_OFFSET) for s in window if s is not None)
        down = sum(max(0.0, -s - C3_OFFSET) for s in window if s is not None)
        out.append(1 if up > C3_THRESHOLD else -1 if down > C3_THRESHOLD else 0)
    return out


def weekday_mad(values: Sequence[float]) -> list[int]:
    out = []
    for t in range(len(values)):
        if t < 28:
            out.append(0)
            continue
        same = [values[t - 7 * k] for k in range(1, 5)]
        m = statistics.median(same)
        sd = max(MAD_SCALE * statistics.median(abs(x - m) for x in same), min_sd(m))
        z = (values[t] - m) / sd
        off = abs(values[t] - m) >= MAD_OFF * m
        out.append((1 if z > 0 else -1) if abs(z) > MAD_Z and off else 0)
    return out


PEERS: dict[str, Callable[[Sequence[float]], list[int]]] = {
    "EARS C1": c1,
    "EARS C2": c2,
    "EARS C3": c3,
    "weekday median/MAD": weekday_mad,
}


def runs(signs: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first index, last index, sign) of each run of equal non-zero verdicts."""
    found: list[tuple[int, int, int]] = []
    for i, sign in enumerate(signs):
        if sign and found and found[-1][2] == sign and found[-1][1] == i - 1:
            found[-1] = (found[-1][0], i, sign)
        elif sign:
            found.append((i, i, sign))
    return found


def daily_totals(series: Series) -> tuple[list[date], list[float]]:
    """Each local day's total from the series' first to last day; a day without rows is 0
    (a gap inside the span: the series carried nothing that day)."""
    assert series.first is not None and series.last is not None
    zone = series.checkpoint.tz
    days = list(day_range(series.first.astimezone(zone).date(), series.last.astimezone(zone).date()))
    totals = []
    for day in days:
        hours = series.cells.get(day)
        totals.append(float(sum(sum(b.values()) for b in hours)) if hours else 0.0)
    return days, totals


def peer_episodes(data: SeriesSet, rule: Callable[[Sequence[float]], list[int]]) -> list[EpisodeRow]:
    """A rule's episodes over every series, as :class:`EpisodeRow` so ``score`` reads them.

    When it opens: a daily file's alarm is dated at its day's start, as ours are
    (``crossings backtest`` on a daily file); on an hourly file the day's total is known
    only at its end, so the alarm is dated at the next local midnight."""
    found = []
    for series in data.series.values():
        days, totals = daily_totals(series)
        zone = series.checkpoint.tz
        shift = timedelta(days=0 if data.granularity == "day" else 1)
        for first, last, sign in runs(rule(totals)):
            opened = local_midnight(days[first] + shift, zone).astimezone(UTC)
            ended = local_midnight(days[last] + timedelta(days=1) + shift, zone).astimezone(UTC)
            found.append(_row(series, days[first], days[last], sign, totals[first], opened, ended))
    found.sort(key=lambda r: (r.opened_at, r.checkpoint, r.direction, r.kind))
    return found


def _row(
    series: Series, first: date, last: date, sign: int, observed: float, opened: datetime, ended: datetime
) -> EpisodeRow:
    kind = "surge" if sign > 0 else "drop"
    return EpisodeRow(
        checkpoint=series.checkpoint.checkpoint_id,
        direction=series.direction,
        kind=kind,
        start=first.isoformat(),
        end=last.isoformat(),
        observed=int(observed),
        expected=0.0,
        ratio=0.0,
        score=0.0,
        window="day",
        cause="level",
        drivers="",
        summary=f"{kind} {first}..{last}",
        episode=f"{series.checkpoint.checkpoint_id}:{series.direction}:{kind}:{first.isoformat()}",
        opened_at=opened,
        resolved_at=ended,
    )
