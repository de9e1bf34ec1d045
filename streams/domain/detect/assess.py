"""The assessments: is a count outside its normal range, judged three ways.

- running_day: the day so far against the share of a normal day expected by this
  local time, with a spread learned from how regular the recent days' shapes were
  (a surge is seen within hours, a closure at the first hour where silence is unlikely);
- last_hour: the last complete local hour against its normal (catches sudden jumps);
- full_day: a completed local day against the whole expected day (the figures an
  operator quotes: "4,000 a day where 1,500 is usual").

A verdict needs all of: a tail probability under a negative binomial (countmodel.py)
below 10^-min_score, a minimum ratio and a minimum count of crossings more (or fewer)
than expected (not asked of a silence: nothing at all only needs the tail probability),
and a warm-up of history. The cheap conditions are checked first; the tail probability
is worked out only where it decides, or when an alert reads it (``Assessment.score``).
One nationality is judged against the other nationalities of the same day (a binomial
tail with the mix's learned wobble), so the day's level and shape cancel; its alarm also
needs a change that matters (``group_min_excess`` crossings and ``group_min_share_change``
of the day's share), not only an unlikely one. Pure functions of a profile and a baseline:
the episodes they open and close live in ``detector.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from streams.domain.counts import DayProfile, split_group
from streams.domain.detect.baseline import Baseline
from streams.domain.detect.config import DetectorConfig
from streams.domain.detect.countmodel import band, share_tail_score, tail_score

Kind = Literal["surge", "drop"]
Window = Literal["running_day", "last_hour", "full_day"]
Cause = Literal["level", "no_data", "closed", "reopened", "new_traffic", "group"]


@dataclass(frozen=True)
class Driver:
    nationality: str
    purpose: str
    observed: int
    expected: float

    @property
    def delta(self) -> float:
        return self.observed - self.expected


@dataclass(frozen=True)
class Assessment:
    window: Window
    local_day: date
    observed: int
    expected: float
    ratio: float
    kind: Kind | None
    drivers: tuple[Driver, ...] = ()
    cause: Cause = "level"
    #: The normal range (about 2 standard deviations) of the count judged.
    band: tuple[float, float] = (0.0, 0.0)
    #: The nationality judged, for a group verdict; None for the whole post.
    scope: str | None = None
    notes: tuple[str, ...] = ()
    #: The count model's coefficient of variation the count was judged with.
    cv: float = 0.0
    #: The score when it is not the count model's (a closure or a reopening), or when the
    #: verdict already needed it; otherwise it is worked out the first time it is read.
    known_score: float | None = field(default=None, repr=False)
    #: Judged for the whole post, both directions summed (``assess_post_silence``).
    post: bool = False

    @property
    def score(self) -> float:
        """Signed -log10 tail probability of ``observed`` under NB(``expected``, ``cv``)
        (countmodel.tail_score). Most evaluations are plainly normal and never need it, so
        it is computed when read (an alert, a resolve) and kept."""
        if self.known_score is None:
            object.__setattr__(self, "known_score", tail_score(self.observed, self.expected, self.cv))
        assert self.known_score is not None
        return self.known_score


def departure_score(observed: float, expected: float, dispersion: float) -> float:
    """Standardised departure under an overdispersed Poisson: variance = mu + (cv*mu)^2.

    Counts of people are Poisson-like at low volume, but day-to-day swings at a busy
    post are proportional to its level, so the variance carries both terms.
    """
    variance = expected + (dispersion * expected) ** 2
    return (observed - expected) / math.sqrt(max(variance, 1.0))


def _classify(
    observed: int,
    expected: float,
    ratio: float,
    cv: float,
    surge_ratio: float,
    drop_ratio: float,
    min_score: float,
    min_excess: float,
) -> tuple[Kind | None, float | None]:
    """The verdict and, if it had to be computed, the score. The cheap conditions (ratio,
    excess) come first: the tail probability is only worked out where it can decide."""
    if ratio >= surge_ratio and observed - expected >= min_excess:
        score = tail_score(observed, expected, cv)
        return ("surge" if score >= min_score else None), score
    # Silence needs no minimum excess: no crossings at all where the count model makes that
    # unlikely is a closed post or a broken feed, whatever the post's size.
    if ratio <= drop_ratio and (expected - observed >= min_excess or observed == 0):
        score = tail_score(observed, expected, cv)
        return ("drop" if score <= -min_score else None), score
    return None, None


def full_day_band(
    baseline: Baseline, config: DetectorConfig = DetectorConfig()
) -> tuple[float, float] | None:
    """The range of whole-day totals ``assess_full_day`` calls normal for this baseline:
    (highest total that is a drop, lowest total that is a surge), found by asking
    ``assess_full_day`` itself (its verdict only moves one way as the total grows), so a
    chart's band is the detector's own rule whatever its count model; None where the
    detector makes no full-day verdict (fewer than ``min_expected``). A low end of 0 means
    no total is low enough to be a drop (or only 0 is)."""
    if baseline.expected_day < config.min_expected:
        return None

    def kind(total: int) -> Kind | None:
        assessment = assess_full_day({"total": total, "hourly": [0] * 24, "groups": {}}, baseline, config)
        return assessment.kind if assessment is not None else None

    bounds = verdict_bounds(kind, max(int(baseline.expected_day), 0))
    return None if bounds is None else (float(bounds[0]), float(bounds[1]))


def verdict_bounds(kind: Callable[[int], Kind | None], expected: int) -> tuple[int, int] | None:
    """(highest total ``kind`` calls a drop, lowest it calls a surge), by bisection: a
    verdict that only moves one way as the total grows (drop, nothing, surge). The low end
    is 0 where no total, or only 0, is a drop; None where no total up to 10^12 is a surge."""
    # Lowest surge: double past the expected total until one is, then bisect.
    below, above = expected, max(expected * 2, 1)
    while kind(above) != "surge":
        below, above = above, above * 2
        if above > 10**12:
            return None
    while above - below > 1:
        middle = (below + above) // 2
        below, above = (below, middle) if kind(middle) == "surge" else (middle, above)
    # Highest drop: bisect over [0, expected].
    low, not_drop = 0, expected
    if kind(0) == "drop":
        while not_drop - low > 1:
            middle = (low + not_drop) // 2
            low, not_drop = (middle, not_drop) if kind(middle) == "drop" else (low, middle)
    return low, above


def top_drivers(
    profile: DayProfile | None, baseline: Baseline, expected_total: float, kind: Kind | None, n: int
) -> tuple[Driver, ...]:
    """The (nationality, purpose) groups that moved most in the anomaly's direction."""
    observed = profile["groups"] if profile else {}
    groups = set(observed) | set(baseline.group_share)
    drivers = [
        Driver(*split_group(g), observed.get(g, 0), expected_total * baseline.group_share.get(g, 0.0))
        for g in groups
    ]
    sign = -1.0 if kind == "drop" else 1.0
    drivers.sort(key=lambda d: (-sign * d.delta, d.nationality, d.purpose))
    return tuple(d for d in drivers[:n] if sign * d.delta > 0)


def _assessment(
    window: Window,
    day: date,
    observed: int,
    expected: float,
    cv: float,
    baseline: Baseline,
    profile: DayProfile | None,
    thresholds: tuple[float, float, float],
    config: DetectorConfig,
    with_drivers: bool,
) -> Assessment:
    ratio = observed / expected
    kind, score = _classify(observed, expected, ratio, cv, *thresholds, config.min_excess)
    # Drivers explain an anomaly; computing them for every normal event would be waste.
    explain = with_drivers and kind is not None
    drivers = top_drivers(profile, baseline, expected, kind, config.max_drivers) if explain else ()
    cause: Cause = "no_data" if observed == 0 and kind == "drop" else "level"
    return Assessment(
        window,
        day,
        observed,
        expected,
        ratio,
        kind,
        drivers,
        cause,
        band(expected, cv),
        None,
        baseline.notes,
        cv,
        score,
    )


def assess_running_day(
    profile: DayProfile | None, baseline: Baseline, local_time: datetime, config: DetectorConfig
) -> Assessment | None:
    fraction = (local_time.minute * 60 + local_time.second) / 3600
    expected = baseline.expected_through(local_time.hour, fraction)
    if expected < config.min_expected:
        return None
    cv = baseline.running_dispersion(local_time.hour, fraction, config.running_extra_dispersion)
    observed = profile["total"] if profile else 0
    thresholds = (config.surge_ratio, config.drop_ratio, config.min_score)
    return _assessment(
        "running_day", local_time.date(), observed, expected, cv, baseline, profile, thresholds, config, True
    )


def assess_full_day(
    profile: DayProfile | None, baseline: Baseline, config: DetectorConfig, explain_as: Kind | None = None
) -> Assessment | None:
    """``explain_as``: an open episode's kind, so its daily update names drivers even on a
    day that alone would not cross the threshold."""
    if baseline.expected_day < config.min_expected:
        return None
    observed = profile["total"] if profile else 0
    thresholds = (config.surge_ratio, config.drop_ratio, config.min_score)
    assessment = _assessment(
        "full_day",
        baseline.day,
        observed,
        baseline.expected_day,
        baseline.dispersion,
        baseline,
        profile,
        thresholds,
        config,
        True,
    )
    if explain_as is not None and not assessment.drivers:
        drivers = top_drivers(profile, baseline, baseline.expected_day, explain_as, config.max_drivers)
        assessment = replace(assessment, drivers=drivers)
    return assessment


def assess_hour(
    profile: DayProfile | None, baseline: Baseline, hour: int, config: DetectorConfig
) -> Assessment | None:
    expected = baseline.expected_hour(hour)
    if expected < config.hour_min_expected:
        return None
    observed = profile["hourly"][hour] if profile else 0
    cv = max(baseline.dispersion, config.hour_min_dispersion)
    thresholds = (config.hour_surge_ratio, config.hour_drop_ratio, config.hour_min_score)
    return _assessment(
        "last_hour", baseline.day, observed, expected, cv, baseline, profile, thresholds, config, False
    )


def assess_post_silence(
    parts: Sequence[tuple[str, Baseline | None, int]],
    local_time: datetime | None,
    config: DetectorConfig,
) -> Assessment | None:
    """Both directions of a post summed (``parts``: direction, its baseline or None, its count): the
    day so far at ``local_time``, or the whole day with None. A post that stops reporting
    goes silent in both directions at once; early in a quiet night neither direction alone
    expects enough for silence to mean anything, their sum can (a drop only when nothing at
    all was counted: this view speaks of silence, not of a low level). The directions'
    day-level and shape errors are taken as fully correlated (the summed count's
    coefficient of variation is the expectation-weighted mean of theirs), the cautious
    choice: a day that starts late starts late both ways. The score is never weaker than a
    direction's own, so a silence each direction would have flagged alone is still flagged."""
    observed = expected = weighted = 0.0
    own_scores: list[float] = []
    details: list[str] = []
    day: date | None = None
    for direction, baseline, count in parts:
        if baseline is None:  # no expectation (still learning, or closed): its count only
            observed += count
            details.append(f"{direction} {count:,}")
            continue
        if local_time is None:
            mu, cv, day = baseline.expected_day, baseline.dispersion, baseline.day
        else:
            fraction = (local_time.minute * 60 + local_time.second) / 3600
            mu = baseline.expected_through(local_time.hour, fraction)
            cv = baseline.running_dispersion(local_time.hour, fraction, config.running_extra_dispersion)
            day = local_time.date()
        observed += count
        expected += mu
        weighted += mu * cv
        if count == 0 and mu > 0:
            own_scores.append(tail_score(0, mu, cv))
        details.append(f"{direction} {count:,} vs {mu:,.0f}")
    if day is None or expected < config.min_expected:
        return None
    cv = weighted / expected
    total = int(observed)
    score: float | None = None
    kind: Kind | None = None
    if total == 0:
        score = min([tail_score(0, expected, cv), *own_scores])
        kind = "drop" if score <= -config.min_score else None
    return Assessment(
        "running_day" if local_time is not None else "full_day",
        day,
        total,
        expected,
        total / expected,
        kind,
        (),
        "no_data" if kind == "drop" else "level",
        band(expected, cv),
        None,
        ("both directions: " + ", ".join(details),),
        cv,
        score,
        post=True,
    )


def assess_groups(
    profile: DayProfile | None,
    baseline: Baseline,
    expected_total: float,
    window: Window,
    config: DetectorConfig,
    only: str | None = None,
    shape_cv: float = 0.0,
) -> Assessment | None:
    """The nationality furthest from its usual ratio to the rest of the post today, if any
    is anomalous (or, with ``only``, that nationality's assessment whatever it says).

    A nationality is judged against the *other* nationalities of the same day so far: its
    expected count is the rest's observed count times its usual ratio to the rest. The
    day's level, and how much of the day is done, cancel, so a crackdown on one group is
    seen as soon as its counts allow, whatever the post as a whole does. The spread is the
    ratio's learned day-to-day spread (``Baseline.group_dispersion``, or
    ``group_min_dispersion`` without it), the rest's own Poisson noise and, early in the
    day, ``shape_cv`` (the day so far need not have the whole day's mix). ``expected_total``
    (the post's expected count) says whether the group itself moved, and is the scale its
    drivers are quoted against."""
    if profile is None or profile["total"] == 0:
        return None  # nothing at all is the post's silence, not one group's collapse
    observed_by: dict[str, int] = {}
    for group, count in profile["groups"].items():
        nationality = split_group(group)[0]
        observed_by[nationality] = observed_by.get(nationality, 0) + count
    total = profile["total"]
    best: Assessment | None = None
    for nationality, share in sorted(baseline.nationality_share().items()):
        if only is not None and nationality != only:
            continue
        if share >= config.group_max_share or share <= 0.0:
            continue
        observed = observed_by.get(nationality, 0)
        rest = total - observed
        expected = rest * share / (1.0 - share)
        if expected < config.group_min_expected:
            continue
        spread = baseline.group_dispersion.get(nationality, config.group_min_dispersion)
        extra_cv = math.sqrt(spread * spread + shape_cv * shape_cv)
        ratio = observed / expected
        kind: Kind | None = None
        score: float | None = None
        # Large in crossings and in share of the day, not only unlikely.
        matters = (
            abs(observed - expected) >= config.group_min_excess
            and abs(observed / total - share) >= config.group_min_share_change
        )
        surge = matters and ratio >= config.group_surge_ratio and observed - expected >= config.min_excess
        drop = matters and ratio <= config.group_drop_ratio and expected - observed >= config.min_excess
        # The group itself must have moved, not only the rest: against its usual share of
        # the post's expected count it is at least halfway (in log terms) to the threshold.
        # (Pedestrians falling to nothing must not read as a surge of vehicle passengers.)
        usual = expected_total * share
        if surge and observed < usual * math.sqrt(config.group_surge_ratio):
            surge = False
        if drop and observed > usual * math.sqrt(config.group_drop_ratio):
            drop = False
        if surge or drop or only is not None:
            score = share_tail_score(observed, total, share, extra_cv)
            if surge and score >= config.min_score:
                kind = "surge"
            elif drop and score <= -config.min_score:
                kind = "drop"
        if only is None and kind is None:
            continue
        # The band's spread, as a coefficient of variation of ``expected``: the binomial
        # part and the mix's wobble.
        cv = math.sqrt((1.0 - share) / max(total * share, 1.0) + extra_cv * extra_cv)
        implied_total = rest / (1.0 - share)
        drivers = tuple(
            d for d in top_drivers(profile, baseline, implied_total, kind, 10) if d.nationality == nationality
        )[: config.max_drivers]
        found = Assessment(
            window,
            baseline.day,
            observed,
            expected,
            ratio,
            kind,
            drivers,
            "group",
            band(expected, cv),
            nationality,
            baseline.notes,
            cv,
            score,
        )
        if best is None or abs(found.score) > abs(best.score):
            best = found
    return best


@dataclass(frozen=True)
class Band:
    """A running day at one evaluation: crossings so far and the range the detector calls
    normal by then (outside it, the running-day view declares a surge or a drop, once at
    least ``min_expected`` are expected). Kept for dashboards: plotting the verdict's own
    thresholds shows an operator why an alert fired, or why it did not."""

    #: The evaluation's time (unix seconds): a whole hour of stream time.
    as_of: float
    observed: int
    expected: float
    lower: float
    upper: float

    def as_list(self) -> list[float]:
        return [self.as_of, self.observed, self.expected, self.lower, self.upper]

    @classmethod
    def from_list(cls, values: list[float]) -> Band:
        as_of, observed, expected, lower, upper = values
        return cls(as_of, int(observed), expected, lower, upper)


def running_day_band(
    profile: DayProfile | None, baseline: Baseline, local_time: datetime, config: DetectorConfig
) -> Band | None:
    """The running day's observed count and the bounds of ``assess_running_day``'s own
    verdicts (highest total that is a drop, lowest that is a surge), found by asking it: its
    verdict only moves one way as the total grows, whatever its count model (below
    ``min_expected`` it holds its verdict; the band says where it would fall). ~40 assessments:
    taken once per commit for the gauges (``CheckpointDetector.band``), not per evaluation."""
    fraction = (local_time.minute * 60 + local_time.second) / 3600
    expected = baseline.expected_through(local_time.hour, fraction)
    # Where fewer than min_expected are expected the detector holds its verdict; the band
    # still shows where the verdict would fall, so a quiet post's panel is not empty.
    if expected <= 0:
        return None  # nothing expected yet today: no ratio to judge by
    config = replace(config, min_expected=0.0)

    def kind(total: int) -> Kind | None:
        verdict = assess_running_day(
            {"total": total, "hourly": [0] * 24, "groups": {}}, baseline, local_time, config
        )
        return verdict.kind if verdict is not None else None

    bounds = verdict_bounds(kind, int(expected))
    if bounds is None:
        return None
    observed = profile["total"] if profile else 0
    return Band(local_time.timestamp(), observed, expected, float(bounds[0]), float(bounds[1]))
