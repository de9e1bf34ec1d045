"""Spike and drop detection for one checkpoint and direction.

Three views of the same question, "is this flow outside its normal range?":
- running_day: the day so far against the share of a normal day expected by this
  local time (catches a surge by mid-morning, a closure by lunchtime);
- last_hour: the last complete local hour against its normal (catches sudden jumps);
- full_day: a completed local day against the whole expected day (the figures an
  operator quotes: "4,000 a day where 1,500 is usual").

An *episode* opens on the first anomalous view, is raised once, gets one update per
completed local day while it lasts, and resolves when the flow is back within a
narrower band (hysteresis, so a flow hovering at the threshold does not flap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from streams.domain.counts import DayProfile, split_group
from streams.domain.detect.baseline import Baseline, BaselineConfig, ProfileLookup, build_baseline
from streams.domain.registry import Checkpoint

Kind = Literal["surge", "drop"]
Window = Literal["running_day", "last_hour", "full_day"]


@dataclass(frozen=True)
class DetectorConfig:
    surge_ratio: float = 1.4
    drop_ratio: float = 0.6
    min_score: float = 4.0
    #: Below this many expected crossings a day-so-far verdict is noise.
    min_expected: float = 100.0
    hour_surge_ratio: float = 2.0
    hour_drop_ratio: float = 0.25
    hour_min_score: float = 5.0
    hour_min_expected: float = 40.0
    #: An episode ends only when the ratio is back inside this narrower band.
    clear_surge_ratio: float = 1.15
    clear_drop_ratio: float = 0.85
    max_drivers: int = 3


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
    score: float
    kind: Kind | None
    drivers: tuple[Driver, ...] = ()


def departure_score(observed: float, expected: float, dispersion: float) -> float:
    """Standardised departure under an overdispersed Poisson: variance = mu + (cv*mu)^2.

    Counts of people are Poisson-like at low volume, but day-to-day swings at a busy
    post are proportional to its level, so the variance carries both terms.
    """
    variance = expected + (dispersion * expected) ** 2
    return (observed - expected) / math.sqrt(max(variance, 1.0))


def _classify(
    ratio: float, score: float, surge_ratio: float, drop_ratio: float, min_score: float
) -> Kind | None:
    if ratio >= surge_ratio and score >= min_score:
        return "surge"
    if ratio <= drop_ratio and score <= -min_score:
        return "drop"
    return None


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
    baseline: Baseline,
    profile: DayProfile | None,
    thresholds: tuple[float, float, float],
    config: DetectorConfig,
    with_drivers: bool,
) -> Assessment:
    ratio = observed / expected
    score = departure_score(observed, expected, baseline.dispersion)
    kind = _classify(ratio, score, *thresholds)
    # Drivers explain an anomaly; computing them for every normal event would be waste.
    explain = with_drivers and kind is not None
    drivers = top_drivers(profile, baseline, expected, kind, config.max_drivers) if explain else ()
    return Assessment(window, day, observed, expected, ratio, score, kind, drivers)


def assess_running_day(
    profile: DayProfile | None, baseline: Baseline, local_time: datetime, config: DetectorConfig
) -> Assessment | None:
    fraction = (local_time.minute * 60 + local_time.second) / 3600
    expected = baseline.expected_through(local_time.hour, fraction)
    if expected < config.min_expected:
        return None
    observed = profile["total"] if profile else 0
    thresholds = (config.surge_ratio, config.drop_ratio, config.min_score)
    return _assessment(
        "running_day", local_time.date(), observed, expected, baseline, profile, thresholds, config, True
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
        "full_day", baseline.day, observed, baseline.expected_day, baseline, profile, thresholds, config, True
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
    thresholds = (config.hour_surge_ratio, config.hour_drop_ratio, config.hour_min_score)
    return _assessment(
        "last_hour", baseline.day, observed, expected, baseline, profile, thresholds, config, False
    )


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
) -> Band:
    """The running day's observed count and the bounds of ``assess_running_day``'s verdicts:
    a surge needs both ``ratio >= surge_ratio`` and ``score >= min_score``, so its bound is
    the larger of the two thresholds in crossings; a drop's the smaller (never below 0)."""
    fraction = (local_time.minute * 60 + local_time.second) / 3600
    expected = baseline.expected_through(local_time.hour, fraction)
    spread = config.min_score * math.sqrt(max(expected + (baseline.dispersion * expected) ** 2, 1.0))
    upper = max(expected * config.surge_ratio, expected + spread)
    lower = max(min(expected * config.drop_ratio, expected - spread), 0.0)
    observed = profile["total"] if profile else 0
    return Band(local_time.timestamp(), observed, expected, lower, upper)


@dataclass
class Episode:
    episode_id: str
    kind: Kind
    opened_by: Window
    opened_as_of: str
    peak_observed: int = 0
    peak_expected: float = 0.0
    peak_day: str | None = None

    def clears(self, assessment: Assessment, config: DetectorConfig) -> bool:
        """Back to normal, judged by a view as steady as the one that opened it."""
        allowed = {"last_hour", "full_day"} if self.opened_by == "last_hour" else {"running_day", "full_day"}
        if assessment.window not in allowed:
            return False
        if self.kind == "surge":
            return assessment.ratio < config.clear_surge_ratio
        return assessment.ratio > config.clear_drop_ratio


@dataclass(frozen=True)
class Transition:
    """A message the detector wants published: an episode opened, updated or resolved."""

    status: Literal["firing", "resolved"]
    episode: Episode
    assessment: Assessment
    as_of: datetime
    opened: bool


class CheckpointDetector:
    """Detection state for one checkpoint and direction (baseline cache and open episode).

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
        self._baselines: dict[date, Baseline | None] = {}
        state = state or {}
        self.episode: Episode | None = Episode(**state["episode"]) if state.get("episode") else None
        self.last_day: date | None = date.fromisoformat(state["last_day"]) if state.get("last_day") else None
        self.last_hour: int | None = state.get("last_hour")
        #: The running day's band at the last evaluation (None while the baseline is learning);
        #: kept in the state so a restarted worker's dashboards do not wait an hour for it.
        self.band: Band | None = Band.from_list(state["band"]) if state.get("band") else None

    def state(self) -> dict[str, Any]:
        """What must survive a restart (kept in a changelogged table by the worker)."""
        return {
            "episode": vars(self.episode).copy() if self.episode else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "last_hour": self.last_hour,
            "band": self.band.as_list() if self.band else None,
        }

    def baseline(self, day: date) -> Baseline | None:
        if day not in self._baselines:
            self._baselines[day] = build_baseline(day, self.lookup, self.baseline_config)
            for old in [d for d in self._baselines if d < day - timedelta(days=2)]:
                del self._baselines[old]
        return self._baselines[day]

    def evaluate(self, as_of: datetime) -> list[Transition]:
        local = as_of.astimezone(self.checkpoint.tz)
        day, hour = local.date(), local.hour
        if self.last_day is not None and (day, hour) < (self.last_day, self.last_hour or 0):
            return []  # stream time never goes back; a stale call has nothing new to say
        transitions: list[Transition] = []
        if (
            self.last_day is not None
            and self.last_hour is not None
            and (day, hour)
            != (
                self.last_day,
                self.last_hour,
            )
        ):
            transitions += self._close_hour(self.last_day, self.last_hour, as_of)
            if day != self.last_day:
                transitions += self._close_day(self.last_day, as_of)
        self.last_day, self.last_hour = day, hour
        baseline = self.baseline(day)
        self.band = None
        if baseline is not None:
            profile = self.lookup(day)
            self.band = running_day_band(profile, baseline, local, self.config)
            running = assess_running_day(profile, baseline, local, self.config)
            transitions += self._step(running, as_of)
        return transitions

    def _close_hour(self, day: date, hour: int, as_of: datetime) -> list[Transition]:
        baseline = self.baseline(day)
        if baseline is None:
            return []
        return self._step(assess_hour(self.lookup(day), baseline, hour, self.config), as_of)

    def _close_day(self, day: date, as_of: datetime) -> list[Transition]:
        baseline = self.baseline(day)
        if baseline is None:
            return []
        explain_as = self.episode.kind if self.episode else None
        return self._step(assess_full_day(self.lookup(day), baseline, self.config, explain_as), as_of)

    def _step(self, assessment: Assessment | None, as_of: datetime) -> list[Transition]:
        if assessment is None:
            return []
        episode = self.episode
        if episode is None:
            if assessment.kind is None:
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
