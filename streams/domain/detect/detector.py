"""Spike and drop detection for one checkpoint and direction.

Three views of the same question, "is this flow outside its normal range?":
- running_day: the day so far against the share of a normal day expected by this
  local time, with a spread learned from how regular the recent days' shapes were
  (a surge is seen within hours, a closure at the first hour where silence is unlikely);
- last_hour: the last complete local hour against its normal (catches sudden jumps);
- full_day: a completed local day against the whole expected day (the figures an
  operator quotes: "4,000 a day where 1,500 is usual").

An *episode* opens on the first anomalous view, is raised once, gets one update per
completed local day while it lasts, and resolves when the flow is back within a
narrower band (hysteresis, so a flow hovering at the threshold does not flap).

A verdict needs all of: a tail probability under a negative binomial (countmodel.py)
below 10^-min_score, a minimum ratio and a minimum count of crossings more (or fewer)
than expected (not asked of a silence: nothing at all only needs the tail probability),
and a warm-up of history. The cheap conditions are checked first; the tail probability
is worked out only where it decides, or when an alert reads it (``Assessment.score``).
One nationality is judged against the other nationalities of the same day (a binomial
tail with the mix's learned wobble), so the day's level and shape cancel; its alarm also
needs a change that matters (``group_min_excess`` crossings and ``group_min_share_change``
of the day's share), not only an unlikely one.

A post has states: *open* (judged against its weekly and yearly rhythm), *closed* (near
zero for ``closed_after_days`` completed days: its expectation is zero and the closure
stays one drop episode, with no daily updates) and back to open through a *reopened*
surge at the first hour it has traffic again, unless the closure lasted at most
``short_closure_days`` (a storm): then traffic again only ends its one episode, and a surge
no larger than the crossings it held back, in the days after it, is its rebound, not an
alarm. A series with no usable baseline (at zero for at least ``closed_after_days`` days
and nothing its baseline could learn a level from: never any traffic, or silent for longer
than the baseline reaches back) that carries traffic opens the same kind of surge at the
first hour that sees it. An alert says why
(``cause``): ``no_data`` (no events at all: closed or not reporting), ``closed``,
``reopened``, ``new_traffic`` (traffic on a series never seen carrying any), ``group`` (one
nationality collapsed or surged while the post as a whole did not) or ``level``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from streams.domain.counts import DayProfile, split_group
from streams.domain.detect.baseline import (
    Baseline,
    BaselineConfig,
    ProfileLookup,
    ShapeCache,
    build_baseline,
)
from streams.domain.detect.calendar import holiday_names
from streams.domain.detect.changepoint import ShiftConfig
from streams.domain.detect.countmodel import band, share_tail_score, tail_score
from streams.domain.detect.history import ALARM, CLOSED, KEEP_DAYS, NORMAL, DayHistory
from streams.domain.registry import Checkpoint

Kind = Literal["surge", "drop"]
Window = Literal["running_day", "last_hour", "full_day"]
Cause = Literal["level", "no_data", "closed", "reopened", "new_traffic", "group"]


@dataclass(frozen=True)
class DetectorConfig:
    surge_ratio: float = 1.4
    drop_ratio: float = 0.6
    #: -log10 of the tail probability a day-so-far or full-day verdict needs.
    min_score: float = 4.5
    #: Below this many expected crossings a day-so-far verdict is not attempted.
    min_expected: float = 8.0
    #: At least this many crossings more (surge) or fewer (drop) than expected; not asked
    #: of a silence (nothing at all), which only needs ``min_expected`` and the score.
    min_excess: float = 25.0
    hour_surge_ratio: float = 2.0
    hour_drop_ratio: float = 0.25
    hour_min_score: float = 6.0
    hour_min_expected: float = 15.0
    #: The hour's shape is less certain than the day's level: at least this spread.
    hour_min_dispersion: float = 0.3
    #: Early in the day the share of the day done so far is uncertain too: learned from the
    #: recent days' shapes (``Baseline.share_dispersion``); this, scaled by the share of the
    #: day still to come, only while there are too few days to learn it from.
    running_extra_dispersion: float = 0.1
    #: An episode ends only when the ratio is back inside this narrower band.
    clear_surge_ratio: float = 1.15
    clear_drop_ratio: float = 0.85
    max_drivers: int = 3
    #: Days of history before any verdict.
    warmup_days: int = 14
    #: Completed days at (near) zero that make a post "closed".
    closed_after_days: int = 3
    #: A day at or below this share of the level before it is "near zero".
    closed_share: float = 0.02
    #: A closure of at most this many days (a storm) is one episode: its reopening resolves
    #: it without a "reopened" surge, and the crossings it held back, coming through in the
    #: ``rebound_days`` after it, are not a surge (only an excess beyond them is).
    short_closure_days: int = 3
    rebound_days: int = 3
    #: A day at or below this share of the recent level is a day of a short closure.
    closure_day_share: float = 0.1
    #: Crossings in a day (so far) that say a closed post has reopened.
    reopen_min: int = 10
    #: A completed day with at most this many crossings carried no traffic (a stray record or
    #: a test event is not traffic): a series with at least ``closed_after_days`` such days
    #: in a row and no usable baseline that reaches ``reopen_min`` is traffic where there
    #: was none (``reopened``, or ``new_traffic`` for a series never seen carrying any).
    silent_max: int = 2
    #: One nationality against its usual share of the day so far.
    group_drop_ratio: float = 0.5
    group_surge_ratio: float = 2.0
    group_min_expected: float = 30.0
    #: A nationality's ratio to the rest of the post is learned (``Baseline.group_dispersion``);
    #: one without that history is judged with this spread.
    group_min_dispersion: float = 0.2
    #: A nationality that is nearly the whole post is the post: left to the post's own views.
    group_max_share: float = 0.9
    #: A group alarm must matter, not only be unlikely: the nationality at least this many
    #: crossings off what the rest of the day implies, and its share of the day (so far) at
    #: least this far (in share points) from its usual share. A nationality of 2% doubling at
    #: a post of 10,000 a day is certain but moves 2 points: the post's views speak for it.
    group_min_excess: float = 50.0
    group_min_share_change: float = 0.05
    #: Level shifts (``changepoint.py``): the CUSUM that re-anchors the baseline once a change
    #: has persisted. It opens no episode of its own: a shift no view flagged while it built
    #: up was within the bands (a monthly series steps every month), and becomes the level.
    level_shift: ShiftConfig = field(default_factory=ShiftConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.silent_max < self.reopen_min:
            raise ValueError(
                f"DetectorConfig: silent_max ({self.silent_max}) must be at least 0 and below "
                f"reopen_min ({self.reopen_min}): a day cannot both carry no traffic and reopen a post"
            )
        if not 0.0 <= self.closure_day_share < self.clear_drop_ratio:
            raise ValueError(
                f"DetectorConfig: closure_day_share ({self.closure_day_share}) must be at least 0 and "
                f"below clear_drop_ratio ({self.clear_drop_ratio})"
            )
        if not 0.0 <= self.group_min_share_change < 1.0:
            raise ValueError(
                f"DetectorConfig: group_min_share_change ({self.group_min_share_change}) is a share "
                "of the day: at least 0 and below 1"
            )


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


@dataclass
class Episode:
    episode_id: str
    kind: Kind
    opened_by: Window
    opened_as_of: str
    peak_observed: int = 0
    peak_expected: float = 0.0
    peak_day: str | None = None
    cause: Cause = "level"
    #: The nationality of a group episode; None for the whole post.
    scope: str | None = None

    def clears(self, assessment: Assessment, config: DetectorConfig) -> bool:
        """Back to normal, judged by a view as steady as the one that opened it."""
        allowed = {"last_hour", "full_day"} if self.opened_by == "last_hour" else {"running_day", "full_day"}
        if assessment.window not in allowed:
            return False
        if self.scope is not None:
            low, high = 1 / 1.3, 1.3
        else:
            low, high = config.clear_drop_ratio, config.clear_surge_ratio
        if self.kind == "surge":
            return assessment.ratio < high
        return assessment.ratio > low


@dataclass(frozen=True)
class Transition:
    """A message the detector wants published: an episode opened, updated or resolved."""

    status: Literal["firing", "resolved"]
    episode: Episode
    assessment: Assessment
    as_of: datetime
    opened: bool
    #: The direction it speaks for when that is not its detector's own: ``POST_DIRECTION``
    #: for the post-level episode, or the direction a post hands a closure over to.
    direction: str | None = None


#: The direction a post-level episode's alerts carry: it speaks for both directions summed
#: (a post that stopped reporting), so an operator gets one alert for the post, not two.
POST_DIRECTION = "both"


def _total(profile: DayProfile | None) -> int:
    return profile["total"] if profile else 0


def _episode(state: dict[str, Any] | None) -> Episode | None:
    """An episode from saved state; unknown keys (a newer version's) are ignored."""
    if not state:
        return None
    known = {f for f in Episode.__dataclass_fields__}
    return Episode(**{k: v for k, v in state.items() if k in known})


class CheckpointDetector:
    """Detection state for one checkpoint and direction (baseline cache, open episodes,
    open/closed state and a year of daily totals).

    ``lookup(day)`` returns that local day's profile; the detector never writes profiles.
    ``evaluate(as_of)`` is called with the stream time of the checkpoint's partition.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        direction: str,
        lookup: ProfileLookup,
        config: DetectorConfig = DetectorConfig(),
        baseline_config: BaselineConfig = BaselineConfig(),
        state: dict[str, Any] | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.direction = direction
        self.lookup = lookup
        self.config = config
        self.baseline_config = baseline_config
        self.countries = tuple(c for c in (checkpoint.country_a, checkpoint.country_b) if c)
        self._baselines: dict[date, Baseline | None] = {}
        #: Each completed day's shape, summed once (a cache: not part of the state).
        self._shapes: ShapeCache = {}
        state = state or {}
        self.episode: Episode | None = _episode(state.get("episode"))
        self.group_episode: Episode | None = _episode(state.get("group_episode"))
        self.last_day: date | None = date.fromisoformat(state["last_day"]) if state.get("last_day") else None
        self.last_hour: int | None = state.get("last_hour")
        self.closed_since: date | None = (
            date.fromisoformat(state["closed_since"]) if state.get("closed_since") else None
        )
        self.zero_run: int = int(state.get("zero_run", 0))
        #: An episode was open at some evaluation of the running day (``last_day``): the day
        #: is recorded as an alarm day even if the episode resolved before midnight, so a
        #: New Year's night does not become part of a month of ordinary Thursdays.
        self.alarm_today: bool = bool(state.get("alarm_today", False))
        self.history = DayHistory(state.get("history"))
        #: The running day's band at the last evaluation (None while the baseline is learning);
        #: kept in the state so a restarted worker's dashboards do not wait an hour for it.
        #: Computed when asked (``band``), from what the evaluation saw.
        self._band: Band | None = Band.from_list(state["band"]) if state.get("band") else None
        self._band_inputs: tuple[Baseline, datetime, int] | None = None
        #: The post's other direction (``pair``): a post that stops reporting falls silent in
        #: both directions at once, which is judged on both (``evaluate_post``). Not state:
        #: the worker and the backtest pair the two detectors again when they make them.
        self.partner: CheckpointDetector | None = None
        #: This detector holds the pair's post-level episode and runs ``evaluate_post``.
        self.post_owner = False
        #: The post-level episode (both directions silent: one episode for the post, kept by
        #: the pair's first detector) and the local day ``evaluate_post`` last saw.
        self.post_episode: Episode | None = _episode(state.get("post_episode"))
        self.post_day: date | None = date.fromisoformat(state["post_day"]) if state.get("post_day") else None

    def state(self) -> dict[str, Any]:
        """What must survive a restart (kept in a changelogged table by the worker): small,
        JSON; a state saved by an older version (no history, one episode) loads as is."""
        return {
            "episode": vars(self.episode).copy() if self.episode else None,
            "group_episode": vars(self.group_episode).copy() if self.group_episode else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "last_hour": self.last_hour,
            "closed_since": self.closed_since.isoformat() if self.closed_since else None,
            "zero_run": self.zero_run,
            "alarm_today": self.alarm_today,
            "history": self.history.state(),
            "band": self.band.as_list() if self.band else None,
            "post_episode": vars(self.post_episode).copy() if self.post_episode else None,
            "post_day": self.post_day.isoformat() if self.post_day else None,
        }

    @property
    def band(self) -> Band | None:
        """The running day's band at the last evaluation, worked out on first asking."""
        if self._band_inputs is not None:
            baseline, local, observed = self._band_inputs
            self._band_inputs = None
            band = running_day_band(
                {"total": observed, "hourly": [0] * 24, "groups": {}}, baseline, local, self.config
            )
            self._band = band
        return self._band

    @property
    def closed(self) -> bool:
        return self.closed_since is not None

    def pair(self, partner: CheckpointDetector) -> None:
        """Link the post's two directions; ``self`` holds the post-level episode, and its
        ``evaluate_post`` is called once both have been evaluated at a time."""
        self.partner, partner.partner = partner, self
        self.post_owner, partner.post_owner = True, False

    def _post_covers(self, day: date) -> bool:
        """A drop this direction would open belongs to the post: the post-level episode is
        open, or neither direction has counted anything on ``day`` (``evaluate_post``
        judges that silence, on both directions, at the same evaluation)."""
        partner = self.partner
        if partner is None:
            return False
        owner = self if self.post_owner else partner
        if owner.post_episode is not None:
            return True
        # Held back only where the post view could open one (``evaluate_post``): both
        # directions live, the other without a drop of its own (else no alert would come).
        if not (self._live(day) and partner._live(day)):
            return False  # a post half closed or one-way: this direction's own
        if partner.episode is not None and partner.episode.kind == "drop":
            return False
        return self._post_silent(day)

    def _live(self, day: date) -> bool:
        """This direction has traffic to fall silent: not closed, and a level in its recent
        days (a one-way post's empty direction never has one). Read from the saved history,
        never from a cached baseline, so a restarted worker answers the same."""
        if self.closed:
            return False
        level = self._recent_level(day)
        return level is not None and level > 0

    def baseline(self, day: date) -> Baseline | None:
        if day not in self._baselines:
            baseline = build_baseline(
                day, self.lookup, self.baseline_config, self.history, self.countries, self._shapes
            )
            for key in [
                k for k in self._shapes if k[0] < day - timedelta(days=7 * self.baseline_config.weeks + 7)
            ]:
                del self._shapes[key]
            if baseline is not None and baseline.history_days < self.config.warmup_days:
                baseline = None
            self._baselines[day] = baseline
            for old in [d for d in self._baselines if d < day - timedelta(days=2)]:
                del self._baselines[old]
        return self._baselines[day]

    def evaluate(self, as_of: datetime) -> list[Transition]:
        local = as_of.astimezone(self.checkpoint.tz)
        day, hour = local.date(), local.hour
        if self.last_day is not None and (day, hour) < (self.last_day, self.last_hour or 0):
            return []  # stream time never goes back; a stale call has nothing new to say
        transitions: list[Transition] = []
        completed = self.last_day if self.last_day is not None and self.last_day != day else None
        was_closed = self.closed
        if (
            self.last_day is not None
            and self.last_hour is not None
            and (day, hour)
            != (
                self.last_day,
                self.last_hour,
            )
        ):
            if not self.closed:
                transitions += self._close_hour(self.last_day, self.last_hour, as_of)
            if day != self.last_day:
                transitions += self._close_day(self.last_day, as_of)
                transitions += self._traffic_gone(self.last_day, as_of)
        self.last_day, self.last_hour = day, hour
        profile = self.lookup(day)
        self._band, self._band_inputs = None, None
        if self.closed:
            transitions += self._reopened(profile, day, as_of)
            if self.closed and was_closed and completed is not None:
                # The day just completed had traffic its hourly checks could not see (its last
                # hour; in a daily file, all of it): the post reopened that day.
                transitions += self._reopened(self.lookup(completed), completed, as_of, "full_day")
            self.alarm_today = self.alarm_today or self.episode is not None
            return transitions
        transitions += self._traffic_where_none(day, profile, completed, as_of)
        baseline = self.baseline(day)
        if baseline is not None:
            self._band_inputs = (baseline, local, profile["total"] if profile else 0)
            running = assess_running_day(profile, baseline, local, self.config)
            transitions += self._step(running, as_of)
            if running is not None:
                shape_cv = math.sqrt(max(running.cv * running.cv - baseline.dispersion**2, 0.0))
                transitions += self._group_step(
                    profile, baseline, running.expected, "running_day", as_of, shape_cv
                )
        if self.episode is not None:
            self.alarm_today = True
        return transitions

    def evaluate_post(self, as_of: datetime) -> list[Transition]:
        """The post as a whole, for the pair's first detector once both directions have been
        evaluated at ``as_of``: both directions silent where their summed expectation makes
        that unlikely opens one post-level drop episode ("stopped reporting"); a direction
        does not open its own drop while it is open. It gets one update per completed day,
        says "closed" once both directions are, and resolves when the post's summed flow is
        back in its band (or a closed direction reopens)."""
        partner = self.partner
        if partner is None or not self.post_owner:
            return []
        local = as_of.astimezone(self.checkpoint.tz)
        day = local.date()
        if self.last_day != day or partner.last_day != day:
            return []  # both directions must have been evaluated at this time
        previous, self.post_day = self.post_day, day
        completed = previous if previous is not None and previous < day else None
        episode = self.post_episode
        if episode is not None:
            transitions = [
                replace(t, direction=POST_DIRECTION)
                for t in self._post_update(episode, day, local, completed, as_of)
            ]
            if self.post_episode is not None:
                self.alarm_today = partner.alarm_today = True
            else:
                transitions += self._hand_over(day, as_of)
            return transitions
        if not (self._live(day) and partner._live(day)):
            return []
        if any(d.episode is not None and d.episode.kind == "drop" for d in (self, partner)):
            return []  # a direction already says it fell: a post episode would only repeat it
        # Only silence opens one: the assessment is worked out when both counted nothing.
        found = None
        if completed is not None and self._post_silent(completed):
            found = self._post_assessment(completed, None)
        if (found is None or found.kind is None) and self._post_silent(day):
            found = self._post_assessment(day, local)
        if found is None or found.kind is None:
            return []
        if found.window == "full_day":
            for detector in (self, partner):  # the day was recorded before the post judged it
                got = detector.history.get(found.local_day)
                if got is not None and got[1] == NORMAL:
                    detector.history.record(found.local_day, got[0], ALARM)
                    # Baselines built since (today's) read that day as ordinary; a restarted
                    # worker would build them with the alarm: build them again here too.
                    detector._baselines.clear()
        self.post_episode = Episode(
            episode_id=f"{self.checkpoint.checkpoint_id}:{POST_DIRECTION}:drop:{local:%Y-%m-%dT%H%M}",
            kind="drop",
            opened_by=found.window,
            opened_as_of=as_of.isoformat(),
            peak_observed=found.observed,
            peak_expected=found.expected,
            peak_day=found.local_day.isoformat() if found.window == "full_day" else None,
            cause="no_data",
        )
        self.alarm_today = partner.alarm_today = True
        return [Transition("firing", self.post_episode, found, as_of, opened=True, direction=POST_DIRECTION)]

    def _hand_over(self, day: date, as_of: datetime) -> list[Transition]:
        """The post's episode has ended while a direction is still closed: that direction's
        closure, which the post's episode spoke for (its own drop was held back), becomes an
        episode of its own, so an operator still has an open alert for it until it reopens."""
        transitions = []
        local = as_of.astimezone(self.checkpoint.tz)
        for detector in (self, self.partner):
            assert detector is not None
            if not detector.closed or detector.episode is not None:
                continue
            since = detector.closed_since
            assert since is not None
            total = _total(detector.lookup(day))
            level = detector._recent_level(since) or 0.0  # what the closure took away
            if level < max(self.config.min_expected, self.config.reopen_min):
                # Too quiet for a drop of its own ever to be judged, or for a day to reach
                # ``reopen_min`` soon: an episode of its own could stay open for weeks.
                continue
            detector.episode = Episode(
                episode_id=f"{self.checkpoint.checkpoint_id}:{detector.direction}:drop:{local:%Y-%m-%dT%H%M}",
                kind="drop",
                opened_by="running_day",
                opened_as_of=as_of.isoformat(),
                peak_observed=total,
                peak_expected=level,
                cause="closed",
            )
            detector.alarm_today = True
            assessment = Assessment(
                "running_day",
                day,
                total,
                level,
                total / level if level else 0.0,
                "drop",
                (),
                "closed",
                (0.0, 0.0),
                None,
                (f"closed since {since.isoformat()}; the rest of the post is back",),
                0.1,
                tail_score(total, level, 0.1) if level else 0.0,
            )
            opened = Transition("firing", detector.episode, assessment, as_of, opened=True)
            transitions.append(replace(opened, direction=detector.direction))
        return transitions

    def _post_silent(self, day: date) -> bool:
        assert self.partner is not None
        return _total(self.lookup(day)) == 0 and _total(self.partner.lookup(day)) == 0

    def _post_assessment(self, day: date, local: datetime | None) -> Assessment | None:
        """Both directions summed on ``day`` (so far at ``local``, or the whole day)."""
        assert self.partner is not None
        parts = []
        for detector in (self, self.partner):
            baseline = None if detector.closed else detector.baseline(day)
            count = _total(detector.lookup(day))
            if baseline is None and count == 0:
                continue
            parts.append((detector.direction, baseline, count))
        if not any(baseline is not None for _, baseline, _ in parts):
            return None
        return assess_post_silence(parts, local, self.config)

    def _post_update(
        self, episode: Episode, day: date, local: datetime, completed: date | None, as_of: datetime
    ) -> list[Transition]:
        partner = self.partner
        assert partner is not None
        if self.closed and partner.closed:
            if episode.cause == "closed":
                return []
            episode.cause = "closed"
            since = min(d for d in (self.closed_since, partner.closed_since) if d is not None)
            last = completed or day
            total = _total(self.lookup(last)) + _total(partner.lookup(last))
            assessment = Assessment(
                "full_day",
                last,
                total,
                episode.peak_expected,
                total / episode.peak_expected if episode.peak_expected else 0.0,
                "drop",
                (),
                "closed",
                (0.0, 0.0),
                None,
                (f"closed since {since.isoformat()}: both directions at or near zero",),
                0.1,
                tail_score(total, episode.peak_expected, 0.1) if episode.peak_expected else 0.0,
                post=True,
            )
            return [Transition("firing", episode, assessment, as_of, opened=False)]
        if episode.cause == "closed":
            # A direction has reopened (its own "reopened" surge says so). Once both have, the
            # closure is over; while one is still closed the post's episode waits for the day
            # to end (directions often reopen hours apart), then hands that one its closure.
            if (self.closed or partner.closed) and completed is None:
                return []
            last = completed or day  # the day that ended with a direction still closed, if so
            total = _total(self.lookup(last)) + _total(partner.lookup(last))
            assessment = Assessment(
                "full_day" if completed else "running_day",
                last,
                total,
                0.0,
                float(total),
                None,
                (),
                "reopened",
                (0.0, float(self.config.reopen_min)),
                None,
                (),
                0.5,
                0.0,
                post=True,
            )
            self.post_episode = None
            return [Transition("resolved", episode, assessment, as_of, opened=False)]
        transitions: list[Transition] = []
        if completed is not None:
            full = self._post_assessment(completed, None)
            if full is not None:
                if episode.clears(full, self.config):
                    self.post_episode = None
                    return [Transition("resolved", episode, full, as_of, opened=False)]
                departure = abs(math.log(max(full.ratio, 1e-6)))
                best = abs(math.log(max(episode.peak_observed, 1) / max(episode.peak_expected, 1e-6)))
                if episode.peak_day is None or departure >= best:
                    episode.peak_observed, episode.peak_expected = full.observed, full.expected
                    episode.peak_day = full.local_day.isoformat()
                transitions.append(Transition("firing", episode, full, as_of, opened=False))
        running = self._post_assessment(day, local)
        if running is not None and episode.clears(running, self.config):
            self.post_episode = None
            transitions.append(Transition("resolved", episode, running, as_of, opened=False))
        return transitions

    def _close_hour(self, day: date, hour: int, as_of: datetime) -> list[Transition]:
        baseline = self.baseline(day)
        if baseline is None:
            return []
        return self._step(assess_hour(self.lookup(day), baseline, hour, self.config), as_of)

    def _close_day(self, day: date, as_of: datetime) -> list[Transition]:
        profile = self.lookup(day)
        total = profile["total"] if profile else 0
        transitions: list[Transition] = []
        baseline = self.baseline(day)
        if not self.closed and baseline is not None:
            explain_as = self.episode.kind if self.episode else None
            full = assess_full_day(profile, baseline, self.config, explain_as)
            transitions += self._step(full, as_of)
            transitions += self._group_step(profile, baseline, baseline.expected_day, "full_day", as_of)
        level = baseline.expected_day if baseline is not None else self._recent_level(day)
        # Never as many as a reopening takes: a day that counts as near zero must not also say
        # the post is open again (a busy post's trickle would close and reopen it at once).
        limit = min(max(2.0, self.config.closed_share * level), self.config.reopen_min - 1) if level else 0.0
        near_zero = level is not None and level > 0 and total <= limit
        self.zero_run = (
            self.zero_run + 1 if (near_zero or (self.closed and total < self.config.reopen_min)) else 0
        )
        alarmed = self.episode is not None or self.alarm_today
        flag = CLOSED if self.closed else (ALARM if alarmed else NORMAL)
        self.history.record(day, total, flag)
        self.alarm_today = False
        self._level_shift(day, total, baseline)
        if not self.closed and self.zero_run >= self.config.closed_after_days:
            transitions += self._close_post(day, total, baseline, as_of)
        return transitions

    def _level_shift(self, day: date, total: int, baseline: Baseline | None) -> None:
        """Feed the completed day to the level-shift CUSUM (``changepoint.py``). On a shift,
        the history reads the days before it at the new level and its run's days as ordinary,
        so the next evaluation judges against the new level: an open episode resolves there."""
        shifts = self.history.shifts
        if (
            self.closed
            or self.zero_run > 0
            or baseline is None
            or baseline.expected_day < self.config.min_expected
        ):
            shifts.reset()  # a closure is its own state, not a level
            return
        if holiday_names(self.countries, day):
            return  # a holiday's level is the holiday's
        expected = baseline.expected_day
        sigma = math.sqrt(baseline.dispersion**2 + 1.0 / expected)
        log_ratio = math.log((total + 0.5) / (expected + 0.5))
        # Only an open episode's change is re-anchored: without one, the weekly level takes
        # in a change within the bands by itself, and a ramp that is going to be a surge (a
        # harvest doubling in a month) must not be followed a week at a time until it is not.
        episode = self.episode
        if episode is None or episode.cause not in ("level", "no_data"):
            shifts.update(day, log_ratio, sigma, self.config.level_shift, allowed=2)
            return
        allowed = 1 if episode.kind == "surge" else -1
        shift = shifts.update(day, log_ratio, sigma, self.config.level_shift, allowed)
        if shift is not None:
            for counted in shift.run:  # the new level's days; a holiday among them stays what it was
                self.history.reflag(counted, counted, ALARM, NORMAL)
            self._baselines.clear()

    def _recent_level(self, day: date) -> float | None:
        got = [self.history.get(day - timedelta(days=k)) for k in range(1, 15)]
        totals = [g[0] for g in got if g is not None and g[1] != CLOSED]
        return float(statistics.median(totals)) if totals else None

    def _close_post(
        self, day: date, total: int, baseline: Baseline | None, as_of: datetime
    ) -> list[Transition]:
        """Near zero for ``closed_after_days`` days: the post is closed. Its zero days are
        marked so no baseline ever learns them, and the drop episode says so once."""
        first = day - timedelta(days=self.zero_run - 1)
        self.closed_since = first
        for k in range(self.zero_run):
            earlier = first + timedelta(days=k)
            got = self.history.get(earlier)
            self.history.record(earlier, got[0] if got else 0, CLOSED)
        self._baselines.clear()
        self.group_episode = None
        if self.episode is None or self.episode.kind != "drop":
            return []
        self.episode.cause = "closed"
        expected = baseline.expected_day if baseline is not None else 0.0
        assessment = Assessment(
            "full_day",
            day,
            total,
            expected,
            total / expected if expected else 0.0,
            "drop",
            (),
            "closed",
            (0.0, 0.0),
            None,
            (f"closed since {first.isoformat()}: {self.zero_run} days at or near zero",),
            0.1,
            tail_score(total, expected, 0.1) if expected else 0.0,
        )
        return [Transition("firing", self.episode, assessment, as_of, opened=False)]

    def _reopened(
        self, profile: DayProfile | None, day: date, as_of: datetime, window: Window = "running_day"
    ) -> list[Transition]:
        """A closed post with traffic again: the closure resolves, one surge says "reopened"."""
        observed = profile["total"] if profile else 0
        if observed < self.config.reopen_min:
            return []
        closed_since = self.closed_since
        assert closed_since is not None
        self.closed_since = None
        self.zero_run = 0
        self._baselines.clear()
        days_closed = (day - closed_since).days
        note = f"closed since {closed_since.isoformat()} ({days_closed} days)"
        if days_closed <= self.config.short_closure_days:
            # A short closure: one episode, which the reopening ends (its rebound is judged
            # against what the closure held back, ``_rebound_backlog``).
            if self.episode is None:
                return []
            assessment = Assessment(
                window,
                day,
                observed,
                0.0,
                float(observed),
                None,
                (),
                "reopened",
                (0.0, float(self.config.reopen_min)),
                None,
                (note,),
                0.5,
                0.0,
            )
            resolved = Transition("resolved", self.episode, assessment, as_of, opened=False)
            self.episode = None
            return [resolved]
        return self._traffic_back(observed, day, as_of, window, "reopened", note)

    def _traffic_back(
        self, observed: int, day: date, as_of: datetime, window: Window, cause: Cause, note: str
    ) -> list[Transition]:
        """Traffic again (or for the first time) where the detector had no level to judge it
        by: an open episode resolves, and one surge episode (``cause``) opens; it resolves
        once a baseline of the new days has learned the level (``_step``)."""
        assessment = Assessment(
            window,
            day,
            observed,
            0.0,
            float(observed),
            "surge",
            (),
            cause,
            (0.0, float(self.config.reopen_min)),
            None,
            (note,),
            0.5,
            tail_score(observed, 1.0, 0.5),
        )
        transitions: list[Transition] = []
        if self.episode is not None:
            transitions.append(Transition("resolved", self.episode, assessment, as_of, opened=False))
        local = as_of.astimezone(self.checkpoint.tz)
        self.episode = Episode(
            episode_id=f"{self.checkpoint.checkpoint_id}:{self.direction}:surge:{local:%Y-%m-%dT%H%M}",
            kind="surge",
            opened_by="running_day",
            opened_as_of=as_of.isoformat(),
            peak_observed=observed,
            cause=cause,
        )
        transitions.append(Transition("firing", self.episode, assessment, as_of, opened=True))
        return transitions

    def _traffic_where_none(
        self, day: date, profile: DayProfile | None, completed: date | None, as_of: datetime
    ) -> list[Transition]:
        """A series with no usable baseline (never any traffic, or none for longer than its
        baseline reaches back) that carries traffic: an episode at the first evaluation that
        sees it (the running day, or in a daily file the day just completed), not two weeks
        later when a baseline of the new days would call a further rise a surge. The silent
        days before it become a closure (``CLOSED``), so no baseline learns their zeros."""
        if self.episode is not None and self.episode.kind == "surge":
            return []
        candidates: list[tuple[date, DayProfile | None, Window]] = []
        if completed is not None:  # its last hour (a daily file: all of it) was never judged
            candidates.append((completed, self.lookup(completed), "full_day"))
        candidates.append((day, profile, "running_day"))
        for when, counted, window in candidates:
            observed = _total(counted)
            if observed < self.config.reopen_min or not self._without_traffic_before(when):
                continue
            first, days = self._mark_silence(when)
            if window == "full_day":  # recorded (as ordinary) before it was judged
                self.history.record(when, observed, ALARM)
            # Days with traffic, or a closure, before the silence: the post carried traffic once.
            carried = any(
                got is not None and (got[0] >= self.config.reopen_min or got[1] == CLOSED)
                for got in (self.history.get(first - timedelta(days=k)) for k in range(1, KEEP_DAYS + 1))
            )
            self._baselines.clear()
            if carried:
                note = f"no traffic since {first.isoformat()} ({days} days)"
                return self._traffic_back(observed, when, as_of, window, "reopened", note)
            note = f"no traffic before: {days} days without any since {first.isoformat()}"
            return self._traffic_back(observed, when, as_of, window, "new_traffic", note)
        return []

    def _traffic_gone(self, day: date, as_of: datetime) -> list[Transition]:
        """Traffic that came back where there was none, and went again before any baseline
        learned it (a stray burst, a trial opening): ``closed_after_days`` completed days
        without traffic end its episode, which nothing else could (no baseline, no verdict)."""
        episode = self.episode
        if episode is None or episode.kind != "surge" or episode.cause not in ("reopened", "new_traffic"):
            return []
        for k in range(self.config.closed_after_days):
            got = self.history.get(day - timedelta(days=k))
            if got is None or got[0] > self.config.silent_max:
                return []
        assessment = Assessment(
            "full_day",
            day,
            _total(self.lookup(day)),
            float(episode.peak_observed),
            0.0,
            None,
            (),
            "closed",
            (0.0, 0.0),
            None,
            (f"no traffic again for {self.config.closed_after_days} days",),
            0.5,
            0.0,
        )
        self.episode = None
        return [Transition("resolved", episode, assessment, as_of, opened=False)]

    def _without_traffic_before(self, day: date) -> bool:
        """The ``closed_after_days`` recorded days before ``day`` carried no traffic (and are
        not a closure already accounted for), and no baseline can judge ``day``: nothing in
        the days it reads, or none of them recorded."""
        for k in range(1, self.config.closed_after_days + 1):
            got = self.history.get(day - timedelta(days=k))
            if got is None or got[0] > self.config.silent_max or got[1] == CLOSED:
                return False
        baseline = self.baseline(day)
        return baseline is None or baseline.expected_day < self.config.min_expected

    def _mark_silence(self, day: date) -> tuple[date, int]:
        """Mark the run of silent days before ``day`` as a closure; its first day and length."""
        first, days = day, 0
        while True:
            earlier = first - timedelta(days=1)
            got = self.history.get(earlier)
            if got is None or got[0] > self.config.silent_max or got[1] == CLOSED:
                break
            self.history.record(earlier, got[0], CLOSED)
            first, days = earlier, days + 1
        return first, days

    def _group_step(
        self,
        profile: DayProfile | None,
        baseline: Baseline,
        expected_total: float,
        window: Window,
        as_of: datetime,
        shape_cv: float = 0.0,
    ) -> list[Transition]:
        """One nationality against the rest of the post, while the post as a whole is not alarming."""
        episode = self.group_episode
        if episode is not None:
            assessment = assess_groups(
                profile, baseline, expected_total, window, self.config, episode.scope, shape_cv
            )
            if assessment is None or not episode.clears(assessment, self.config):
                return []
            self.group_episode = None
            return [Transition("resolved", episode, assessment, as_of, opened=False)]
        if self.episode is not None:
            return []
        assessment = assess_groups(profile, baseline, expected_total, window, self.config, shape_cv=shape_cv)
        if assessment is None or assessment.kind is None:
            return []
        local = as_of.astimezone(self.checkpoint.tz)
        self.group_episode = Episode(
            episode_id=(
                f"{self.checkpoint.checkpoint_id}:{self.direction}:{assessment.kind}:{assessment.scope}:"
                f"{local:%Y-%m-%dT%H%M}"
            ),
            kind=assessment.kind,
            opened_by=window,
            opened_as_of=as_of.isoformat(),
            peak_observed=assessment.observed,
            peak_expected=assessment.expected,
            cause="group",
            scope=assessment.scope,
        )
        return [Transition("firing", self.group_episode, assessment, as_of, opened=True)]

    def _step(self, assessment: Assessment | None, as_of: datetime) -> list[Transition]:
        if assessment is None:
            return []
        episode = self.episode
        if episode is None:
            if assessment.kind is None:
                return []
            if assessment.kind == "drop" and self._post_covers(assessment.local_day):
                return []
            if assessment.kind == "surge" and self._rebound(assessment):
                return []
            local = as_of.astimezone(self.checkpoint.tz)
            episode = Episode(
                episode_id=(
                    f"{self.checkpoint.checkpoint_id}:{self.direction}:{assessment.kind}:"
                    f"{local:%Y-%m-%dT%H%M}"
                ),
                kind=assessment.kind,
                opened_by=assessment.window,
                opened_as_of=as_of.isoformat(),
                cause=assessment.cause,
            )
            self.episode = episode
            self._track_peak(assessment)
            return [Transition("firing", episode, assessment, as_of, opened=True)]
        if episode.clears(assessment, self.config):
            self.episode = None
            resolved = [Transition("resolved", episode, assessment, as_of, opened=False)]
            if assessment.kind is not None and assessment.kind != episode.kind:
                return resolved + self._step(assessment, as_of)
            return resolved
        if assessment.window == "full_day":
            self._track_peak(assessment)
            return [Transition("firing", episode, assessment, as_of, opened=False)]
        return []

    def _rebound(self, assessment: Assessment) -> bool:
        """A surge no larger than the crossings a short closure just held back: the rebound
        of that closure (travellers who waited), not a surge of its own."""
        excess = assessment.observed - assessment.expected
        return excess <= self._rebound_backlog(assessment.local_day)

    def _rebound_backlog(self, day: date) -> float:
        """Crossings a closure of at most ``short_closure_days`` days ending within
        ``rebound_days`` before ``day`` held back (its days' shortfall against the recent
        level), less what came through above that level on the days since. Read from the
        saved history only, so a restarted worker answers the same. 0 if there was none."""
        config = self.config
        surplus = 0.0
        end = day - timedelta(days=1)
        for _ in range(config.rebound_days):  # the closure's last day, at most rebound_days back
            got, level = self.history.get(end), self._recent_level(end)
            if got is None or not level:
                return 0.0
            if got[0] <= config.closure_day_share * level:
                break
            surplus += max(got[0] - level, 0.0)
            end -= timedelta(days=1)
        else:
            return 0.0
        held, length = 0.0, 0
        while True:
            got, level = self.history.get(end), self._recent_level(end)
            if got is None or not level or got[0] > config.closure_day_share * level:
                break
            held += level - got[0]
            length += 1
            if length > config.short_closure_days:
                return 0.0  # a long closure: its reopening opened an episode of its own
            end -= timedelta(days=1)
        return max(held - surplus, 0.0)

    def _track_peak(self, assessment: Assessment) -> None:
        """Remember the completed day that departed most; until one exists, the opening figures."""
        episode = self.episode
        assert episode is not None
        if assessment.window != "full_day":
            if episode.peak_day is None and episode.peak_expected == 0.0:
                episode.peak_observed, episode.peak_expected = assessment.observed, assessment.expected
            return
        departure = abs(math.log(max(assessment.ratio, 1e-6)))
        best = abs(math.log(max(episode.peak_observed, 1) / max(episode.peak_expected, 1e-6)))
        if episode.peak_day is None or departure >= best:
            episode.peak_observed = assessment.observed
            episode.peak_expected = assessment.expected
            episode.peak_day = assessment.local_day.isoformat()
