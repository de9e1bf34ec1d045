"""Intermittent series: traffic on some days, none on the others, with no weekly rhythm.

A cruise terminal carries thousands on a ship day and nothing between ships; the ships
keep no weekday. Judged by the weekly level, every ship day is a surge over a median of
zeros (or of other ship days, with a wide band), every day without one a silence, and
three days without a ship close the post, so that the next ship "reopens" it: an alarm
every few days for a post doing what it always does.

So such a series is judged by a hurdle model (the chance of a day with traffic, and the
size of a day when it has some, apart), read from the detector's own year of daily
totals (``history.py``), and only a change of that pattern is an alarm:

- the ship days stop: a run of days without traffic that the chance of a ship day makes
  unlikely (``(1 - p)^k``) and that is longer than any gap of the months before;
- the ship days multiply: more days with traffic in the last ``intermittent_window`` days
  than a binomial of ``p`` allows (at least ``surge_ratio`` times as many);
- one day far beyond the usual size of a day with traffic (the negative binomial of the
  other views, with the sizes' own robust spread).

A series is intermittent when, over the last ``intermittent_days`` recorded days, at least
``intermittent_min_zero_share`` of them carried no traffic, traffic came back after a
silent day at least ``intermittent_min_visits`` times, and at least
``intermittent_min_mixed`` of the days disagree with their weekday's usual (traffic on a
weekday that is usually silent, or none on one that usually has it): a post closed every
Sunday keeps its weekly rhythm and its weekly model; a post that reopened after a long
closure came back once, not many times.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from datetime import date, timedelta

from streams.domain.detect.assess import Assessment, Kind
from streams.domain.detect.config import DetectorConfig
from streams.domain.detect.countmodel import band, share_tail_score, tail_score
from streams.domain.detect.history import ALARM, DayHistory


@dataclass(frozen=True)
class Pattern:
    """What an intermittent series normally does, read off its recorded days before ``day``."""

    day: date
    #: The share of days that carry traffic (before the current run of silent days).
    chance: float
    #: The median total of a day with traffic, and the robust spread of those totals (log).
    size: float
    size_cv: float
    #: The longest run of days without traffic in the window that ended (not the current one).
    longest_gap: int
    days: int


def _silent(total: int, config: DetectorConfig) -> bool:
    return total <= config.silent_max


def intermittent_pattern(history: DayHistory, day: date, config: DetectorConfig) -> Pattern | None:
    """The hurdle model of the days before ``day``, if the series is intermittent (see the
    module docstring); None if it is not (the weekly model judges it)."""
    # Most series are busy and fail the first tests: those read counts alone, off one slice
    # of the history (asked every day of every series); the days' dates only past them.
    kept = history.recorded_before(day, config.intermittent_days)
    if len(kept) < config.intermittent_days // 2:
        return None
    # _silent; a busy series has none (its smallest day says so without a pass in Python).
    zeros = 0 if kept and min(kept) > config.silent_max else len([t for t in kept if t <= config.silent_max])
    busy = len(kept) - zeros
    if zeros < config.intermittent_min_zero_share * len(kept) or busy < config.intermittent_min_visits:
        return None
    window = history.before(day, config.intermittent_days)[0]
    recorded = [
        (day - timedelta(days=config.intermittent_days - i), total)
        for i, total in enumerate(window)
        if total is not None
    ]
    silent = [_silent(total, config) for _, total in recorded]
    visits = sum(1 for before, now in itertools.pairwise(silent) if before and not now)
    if visits < config.intermittent_min_visits:
        return None
    by_weekday: dict[int, list[bool]] = {}
    for (when, _), off in zip(recorded, silent, strict=True):
        by_weekday.setdefault(when.weekday(), []).append(off)
    mixed = sum(min(sum(offs), len(offs) - sum(offs)) for offs in by_weekday.values())
    if mixed < config.intermittent_min_mixed * len(recorded):
        return None
    longest = run = 0
    for off in silent:  # gaps that ended: the current one is what is judged
        if not off:
            longest = max(longest, run)
        run = run + 1 if off else 0
    trailing = 0  # the current run of silent days: the chance is of the days before it
    while trailing < len(silent) and silent[-1 - trailing]:
        trailing += 1
    sizes = [total for (_, total), off in zip(recorded, silent, strict=True) if not off]
    logs = [math.log(s) for s in sizes]
    centre = statistics.median(logs)
    spread = 1.4826 * statistics.median(abs(x - centre) for x in logs)
    return Pattern(
        day,
        busy / (len(recorded) - trailing),
        float(statistics.median(sizes)),
        max(spread, config.intermittent_min_size_cv),
        longest,
        len(recorded),
    )


def assess_intermittent(
    history: DayHistory,
    day: date,
    total: int,
    pattern: Pattern,
    config: DetectorConfig,
    holding: Kind | None = None,
) -> Assessment:
    """A completed ``day`` (``total``, already recorded) of an intermittent series against its
    ``pattern``: a drop when the days without traffic have run on far longer than its
    chance of a ship day and its longest gap allow; a surge when the days with traffic
    multiplied, or this day's size is far beyond a usual one; otherwise no verdict.
    ``holding``: the kind of the episode open, if any: a drop holds until traffic comes
    back, a surge of more days with traffic until their count is back within
    ``clear_surge_ratio`` (hysteresis, as the other views' narrower band)."""
    gap = 0
    while gap < config.intermittent_days:
        got = history.get(day - timedelta(days=gap))
        if got is None or not _silent(got[0], config):
            break
        gap += 1
    kind: Kind | None = None
    score = 0.0
    notes = [
        f"intermittent: traffic on {pattern.chance:.0%} of days, about {pattern.size:,.0f} on such a day",
    ]
    observed, expected, cv = total, pattern.size, pattern.size_cv
    if gap > 0:
        # ``gap`` silent days in a row, each silent with chance 1 - p.
        score = -min(gap * -math.log10(max(1.0 - pattern.chance, 1e-12)), 50.0)
        unusual = score <= -config.min_score and gap > config.intermittent_gap_factor * pattern.longest_gap
        if unusual or holding == "drop":
            kind = "drop"
            notes.append(f"no traffic for {gap} days (longest gap before: {pattern.longest_gap})")
        observed, expected = 0, pattern.size
    frequency = None if kind == "drop" else _more_days(history, day, config, holding == "surge")
    if frequency is not None:
        kind, score = "surge", frequency[0]
        notes.append(frequency[1])
        observed, expected = total, pattern.size
    elif gap == 0:
        ratio = total / pattern.size
        if ratio >= config.surge_ratio and total - pattern.size >= config.min_excess:
            size_score = tail_score(total, pattern.size, pattern.size_cv)
            if size_score >= config.min_score:
                kind, score = "surge", size_score
    return Assessment(
        "full_day",
        day,
        observed,
        expected,
        observed / expected if expected else 0.0,
        kind,
        (),
        "level",
        band(expected, cv),
        None,
        tuple(notes),
        cv,
        score,
    )


def _more_days(
    history: DayHistory, day: date, config: DetectorConfig, holding: bool = False
) -> tuple[float, str] | None:
    """The days with traffic multiplied: over the last 14, 28 or ``intermittent_window``
    days, against their share in the days before the last ``intermittent_window`` (of
    ``intermittent_days``), at least
    ``surge_ratio`` times as many and a binomial tail beyond ``min_score`` (``holding`` an
    episode of it: ``clear_surge_ratio`` times as many, as the other views' narrower band,
    until the days before the window hold too few ordinary days to judge by: the change is
    then the pattern). (Score, words)."""
    ratio = config.clear_surge_ratio if holding else config.surge_ratio
    least = 0.0 if holding else config.min_score
    busy: list[bool | None] = []
    ordinary: list[bool] = []
    for back in range(config.intermittent_days):
        got = history.get(day - timedelta(days=back))
        busy.append(None if got is None else not _silent(got[0], config))
        ordinary.append(got is not None and got[1] != ALARM)
    # One reference for every window (the days before the longest), so the windows do not
    # each learn the new pattern at their own pace and take turns to flag it; days of an
    # episode left out (Farrington), so a change is one episode, not one per window it fills.
    start = config.intermittent_window
    before = [b for b, o in zip(busy[start:], ordinary[start:], strict=True) if b is not None and o]
    if len(before) < config.intermittent_days // 3:
        return None
    chance = sum(before) / len(before)
    if not 0.0 < chance < 1.0:
        return None
    best: tuple[float, str] | None = None
    for window in sorted({14, 28, config.intermittent_window}):
        recent = [b for b in busy[:window] if b is not None]
        if not recent:
            continue
        found, expected = sum(recent), chance * len(recent)
        if found < ratio * expected:
            continue
        score = share_tail_score(found, len(recent), chance)
        if score >= least and (best is None or score > best[0]):
            words = f"traffic on {found} of the last {len(recent)} days where {expected:.1f} are usual"
            best = (score, words)
    return best
