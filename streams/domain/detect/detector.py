"""Spike and drop detection for one checkpoint and direction: the episode state machine.

The assessments (is a count outside its normal range: running day, last hour, full day,
one nationality) are ``assess.py``; the post view (both directions silent) ``post.py``;
the episode and its messages ``episodes.py``; the saved state ``state.py``; the thresholds
``config.py``; one evaluation
of a post (entry, exit, then the post view), as the worker and the backtest run it,
``evaluate.py``.

An *episode* opens on the first anomalous view, is raised once, gets one update per
completed local day while it lasts, and resolves when the flow is back within a
narrower band (hysteresis, so a flow hovering at the threshold does not flap).

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
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from streams.domain.counts import DayProfile
from streams.domain.detect.assess import (
    Assessment,
    Band,
    Cause,
    Driver,
    Kind,
    Window,
    assess_full_day,
    assess_groups,
    assess_hour,
    assess_post_silence,
    assess_running_day,
    departure_score,
    full_day_band,
    running_day_band,
    top_drivers,
    verdict_bounds,
)
from streams.domain.detect.baseline import (
    Baseline,
    BaselineConfig,
    ProfileLookup,
    ShapeCache,
    build_baseline,
)
from streams.domain.detect.calendar import holiday_names
from streams.domain.detect.config import DetectorConfig
from streams.domain.detect.countmodel import band, tail_score
from streams.domain.detect.episodes import POST_DIRECTION, Episode, Transition, _total, episode_id
from streams.domain.detect.history import ALARM, CLOSED, KEEP_DAYS, NORMAL, DayHistory
from streams.domain.detect.intermittent import Pattern, assess_intermittent, intermittent_pattern
from streams.domain.detect.onset import (
    CLEAR_MIN_EXPECTED,
    Onset,
    find_onset,
    pooled_back_inside,
    pooled_tail_band,
)
from streams.domain.detect.post import PostView
from streams.domain.detect.robust import median
from streams.domain.detect.state import DetectorState, HistoryState, copied
from streams.domain.detect.tails import TailBand, shape_reach, tail_band, widened
from streams.domain.registry import Checkpoint

#: Moved to ``assess``, ``config`` and ``episode``; importable from here as before.
__all__ = [
    "POST_DIRECTION",
    "Assessment",
    "Band",
    "Cause",
    "CheckpointDetector",
    "DetectorConfig",
    "DetectorState",
    "Driver",
    "Episode",
    "Kind",
    "Transition",
    "Window",
    "assess_full_day",
    "assess_groups",
    "assess_hour",
    "assess_post_silence",
    "assess_running_day",
    "departure_score",
    "full_day_band",
    "running_day_band",
    "top_drivers",
    "verdict_bounds",
]


class CheckpointDetector(PostView):
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
        state: DetectorState | Mapping[str, Any] | None = None,
    ) -> None:
        """``state``: what an earlier detector saved (``state()``), typed or as the JSON a
        worker's changelog holds (of any version: ``DetectorState.from_dict``)."""
        self.checkpoint = checkpoint
        self.direction = direction
        self.lookup = lookup
        self.config = config
        self.baseline_config = baseline_config
        self.countries = tuple(c for c in (checkpoint.country_a, checkpoint.country_b) if c)
        self._baselines: dict[date, Baseline | None] = {}
        #: Per day: the hurdle model if the series is intermittent (``intermittent.py``),
        #: read from the history alone (a cache: not part of the state).
        self._patterns: dict[date, Pattern | None] = {}
        #: Each completed day's shape, summed once (a cache: not part of the state).
        self._shapes = ShapeCache()
        saved = DetectorState.of(state)
        self.episode: Episode | None = copied(saved.episode)
        self.group_episode: Episode | None = copied(saved.group_episode)
        self.last_day: date | None = saved.last_day
        self.last_hour: int | None = saved.last_hour
        self.closed_since: date | None = saved.closed_since
        self.zero_run: int = saved.zero_run
        #: An episode was open at some evaluation of the running day (``last_day``): the day
        #: is recorded as an alarm day even if the episode resolved before midnight, so a
        #: New Year's night does not become part of a month of ordinary Thursdays.
        self.alarm_today: bool = saved.alarm_today
        self.history = DayHistory(saved.history.to_dict())
        #: The running day's band at the last evaluation (None while the baseline is learning);
        #: kept in the state so a restarted worker's dashboards do not wait an hour for it.
        #: Computed when asked (``band``), from what the evaluation saw.
        self._band: Band | None = saved.band
        self._band_inputs: tuple[Baseline, datetime, int] | None = None
        #: The post's other direction (``pair``): a post that stops reporting falls silent in
        #: both directions at once, which is judged on both (``evaluate_post``). Not state:
        #: the worker and the backtest pair the two detectors again when they make them.
        self.partner: CheckpointDetector | None = None
        #: This detector holds the pair's post-level episode and runs ``evaluate_post``.
        self.post_owner = False
        #: The post-level episode (both directions silent: one episode for the post, kept by
        #: the pair's first detector) and the local day ``evaluate_post`` last saw.
        self.post_episode: Episode | None = copied(saved.post_episode)
        self.post_day: date | None = saved.post_day
        #: The local time of the running-day verdict being judged (``_in_tail_or_beyond``).
        self._running_at: datetime | None = None

    def state(self) -> DetectorState:
        """What must survive a restart (kept in a changelogged table by the worker, as
        ``DetectorState.to_dict``): a snapshot, sharing nothing with this detector."""
        return DetectorState(
            episode=copied(self.episode),
            group_episode=copied(self.group_episode),
            last_day=self.last_day,
            last_hour=self.last_hour,
            closed_since=self.closed_since,
            zero_run=self.zero_run,
            alarm_today=self.alarm_today,
            history=HistoryState.from_dict(self.history.state()),
            band=self.band,
            post_episode=copied(self.post_episode),
            post_day=self.post_day,
        )

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

    def baseline(self, day: date) -> Baseline | None:
        if day not in self._baselines:
            baseline = build_baseline(
                day, self.lookup, self.baseline_config, self.history, self.countries, self._shapes
            )
            # Shapes of days no baseline reads any more go, once there are twice as many as
            # those it reads (a look at every key each day was a per cent of the backtest).
            reach = 7 * self.baseline_config.weeks + 7
            if len(self._shapes) > 2 * reach:
                oldest = day - timedelta(days=reach)
                for key in [k for k in self._shapes if k[0] < oldest]:
                    del self._shapes[key]
            if baseline is not None and baseline.history_days < self.config.warmup_days:
                baseline = None
            self._baselines[day] = baseline
            for old in [d for d in self._baselines if d < day - timedelta(days=2)]:
                del self._baselines[old]
        return self._baselines[day]

    def pattern(self, day: date) -> Pattern | None:
        """The series' hurdle model on ``day`` if it is intermittent (``intermittent.py``)."""
        if day not in self._patterns:
            self._patterns[day] = intermittent_pattern(self.history, day, self.config)
            for old in [d for d in self._patterns if d < day - timedelta(days=2)]:
                del self._patterns[old]
        return self._patterns[day]

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
        if self.pattern(day) is not None:
            # Judged once a day, when the day is complete (``_close_day``): a ship day so
            # far says nothing about the pattern of ship days.
            transitions += self._end_closure(day, as_of)
            self.alarm_today = self.alarm_today or self.episode is not None
            return transitions
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
            self._running_at = local
            transitions += self._step(running, as_of)
            self._running_at = None
            if running is not None:
                shape_cv = math.sqrt(max(running.cv * running.cv - baseline.dispersion**2, 0.0))
                transitions += self._group_step(
                    profile, baseline, running.expected, "running_day", as_of, shape_cv
                )
        if self.episode is not None:
            self.alarm_today = True
        return transitions

    def _close_hour(self, day: date, hour: int, as_of: datetime) -> list[Transition]:
        baseline = self.baseline(day)
        if baseline is None or self.pattern(day) is not None:
            return []
        return self._step(assess_hour(self.lookup(day), baseline, hour, self.config), as_of)

    def _close_day(self, day: date, as_of: datetime) -> list[Transition]:
        profile = self.lookup(day)
        total = profile["total"] if profile else 0
        pattern = self.pattern(day)
        if pattern is not None:
            return self._close_intermittent_day(day, total, pattern, as_of)
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
        # A day whose expectation was itself a guess (the wide band of a holiday never seen,
        # of the weeks after a reopening) says nothing of how far the series strays.
        known = baseline is not None and baseline.dispersion < self.baseline_config.unknown_day_dispersion
        self.history.expect(day, baseline.expected_day if known and not self.closed else None)
        self.alarm_today = False
        transitions += self._pooled_days(day, baseline, as_of)
        self._level_shift(day, total, baseline)
        if (
            not self.closed
            and self.zero_run >= self.config.closed_after_days
            and self._silence_unlikely(day, level)
        ):
            transitions += self._close_post(day, total, baseline, as_of)
        return transitions

    def _close_intermittent_day(
        self, day: date, total: int, pattern: Pattern, as_of: datetime
    ) -> list[Transition]:
        """A completed day of an intermittent series: recorded, and judged by its hurdle
        model (``assess_intermittent``). A silent day is ordinary (no closure); an episode
        opens only when the pattern changes and resolves when the day is ordinary again."""
        transitions = self._end_closure(day, as_of)
        self.zero_run = self.zero_run + 1 if total <= self.config.silent_max else 0
        alarmed = self.episode is not None or self.alarm_today
        self.history.record(day, total, ALARM if alarmed else NORMAL)
        self.alarm_today = False
        self.history.shifts.reset()  # no weekly level to re-anchor
        holding = self.episode.kind if self.episode is not None and self.episode.cause == "level" else None
        assessment = assess_intermittent(self.history, day, total, pattern, self.config, holding)
        if self.group_episode is not None:  # the mix of a ship day is the ship's
            transitions.append(Transition("resolved", self.group_episode, assessment, as_of, opened=False))
            self.group_episode = None
        episode = self.episode
        if episode is not None:
            if assessment.kind == episode.kind:
                self._track_peak(assessment)
                return [*transitions, Transition("firing", episode, assessment, as_of, opened=False)]
            self.episode = None
            transitions.append(Transition("resolved", episode, assessment, as_of, opened=False))
        if assessment.kind is None:
            return transitions
        local = as_of.astimezone(self.checkpoint.tz)
        self.episode = Episode(
            episode_id=episode_id(self.checkpoint.checkpoint_id, self.direction, assessment.kind, local),
            kind=assessment.kind,
            opened_by="full_day",
            opened_as_of=as_of.isoformat(),
            cause=assessment.cause,
        )
        self._track_peak(assessment)
        self.history.record(day, total, ALARM)
        return [*transitions, Transition("firing", self.episode, assessment, as_of, opened=True)]

    def _end_closure(self, day: date, as_of: datetime) -> list[Transition]:
        """A series closed (or reopened) under the weekly model that is now intermittent: its
        silent days are its pattern, not a closure. The closure (or reopening) episode ends."""
        transitions: list[Transition] = []
        episode = self.episode
        if episode is not None and episode.cause in ("closed", "no_data", "reopened", "new_traffic"):
            assessment = Assessment(
                "full_day",
                day,
                _total(self.lookup(day)),
                0.0,
                0.0,
                None,
                (),
                episode.cause,
                (0.0, 0.0),
                None,
                ("traffic on some days only: judged as an intermittent series",),
                0.5,
                0.0,
            )
            transitions.append(Transition("resolved", episode, assessment, as_of, opened=False))
            self.episode = None
        if self.closed:
            self.closed_since = None
            self._baselines.clear()
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
            # Re-anchored: the next evaluation judges against the new level, one view alone.
            episode.re_anchored = True
            for counted in shift.run:  # the new level's days; a holiday among them stays what it was
                self.history.reflag(counted, counted, ALARM, NORMAL)
            self._baselines.clear()

    def _pooled_days(self, day: date, baseline: Baseline | None, as_of: datetime) -> list[Transition]:
        """Several completed days together (``onset.py``): a departure none of them proved
        alone opens one episode; an episode they opened ends when they are back inside
        together (the clear band, over as many days as opened it)."""
        config = self.config
        episode = self.episode
        if episode is not None:
            opened = datetime.fromisoformat(episode.opened_as_of).astimezone(self.checkpoint.tz).date()
            if episode.opened_by == "full_day":  # a completed day's verdict, the next day
                opened -= timedelta(days=1)
            opened = min(opened, day)
            if not self._held_by_days(episode, day) or not pooled_back_inside(
                self.history, day, episode.kind, config.clear_drop_ratio, config.clear_surge_ratio, opened
            ):
                return []  # held, or (None) nothing judged to hold it by: the views decide
            assessment = assess_full_day(self.lookup(day), baseline, config) if baseline is not None else None
            if assessment is None:
                return []
            self.episode = None
            return [Transition("resolved", episode, assessment, as_of, opened=False)]
        if self.closed or baseline is None:
            return []
        if holiday_names(self.countries, day):
            return []
        # Days judged against a level since re-anchored are not pooled with today's.
        declared = self.history.shifts.declared
        onset = find_onset(
            self.history,
            day,
            baseline.dispersion,
            surge_ratio=config.surge_ratio,
            drop_ratio=config.drop_ratio,
            clear_surge_ratio=config.clear_surge_ratio,
            clear_drop_ratio=config.clear_drop_ratio,
            min_excess=config.min_excess,
            min_score=config.min_score,
            excluded=lambda d: (
                (declared is not None and d <= declared) or bool(holiday_names(self.countries, d))
            ),
            accept=self._beyond_pooled_tail,
        )
        if onset is None:
            return []
        assessment = Assessment(
            "full_day",
            day,
            onset.observed,
            onset.expected,
            onset.ratio,
            onset.kind,
            top_drivers(self.lookup(day), baseline, baseline.expected_day, onset.kind, config.max_drivers),
            "level",
            band(onset.expected, onset.cv),
            None,
            (*baseline.notes, f"{len(onset.days)} days together since {onset.days[0].isoformat()}"),
            onset.cv,
            onset.score,
        )
        if onset.kind == "drop" and self._post_covers(day):
            return []
        if onset.kind == "surge" and onset.observed - onset.expected <= self._rebound_backlog(onset.days[0]):
            return []
        local = as_of.astimezone(self.checkpoint.tz)
        self.episode = Episode(
            episode_id=episode_id(self.checkpoint.checkpoint_id, self.direction, onset.kind, local),
            kind=onset.kind,
            opened_by="full_day",
            opened_as_of=as_of.isoformat(),
            peak_observed=onset.observed,
            peak_expected=onset.expected,
            peak_day=day.isoformat(),
            pooled_days=len(onset.days),
        )
        for counted in onset.days:  # the departure's days: alarm days, as an episode's are
            self.history.reflag(counted, counted, NORMAL, ALARM)
        self._baselines.pop(day + timedelta(days=1), None)
        return [Transition("firing", self.episode, assessment, as_of, opened=True)]

    def _beyond_pooled_tail(self, onset: Onset) -> bool:
        """The days together lie beyond what as many days together of this series did on
        about two occasions of its last year (``onset.pooled_tail_band``)."""
        if not self.config.tail.enabled:
            return True
        band = pooled_tail_band(self.history, onset.days[0], len(onset.days), self.config.tail)
        return band is None or band.beyond(onset.kind, onset.ratio)

    def _held_by_days(self, episode: Episode, day: date) -> bool:
        """A level episode whose end is judged on completed days together
        (``onset.pooled_back_inside``), not by one view: one the days opened together, or
        one whose series' level the level-shift CUSUM says has moved (its side past the
        threshold: the baseline is about to re-anchor), or, on a day too small for one day
        to show a return (expected under ``CLEAR_MIN_EXPECTED``), may be moving (its side
        out at all). An end on one day's noise there opens a second episode against the
        old level: at 100 a day a x0.6 step's day at x0.88 did. A busy post's one-day
        spike still ends on the first day back. Not once re-anchored."""
        if episode.cause != "level" or episode.re_anchored or episode.scope is not None:
            return False
        if episode.pooled_days:
            return True
        shifts = self.history.shifts
        side = shifts.up if episode.kind == "surge" else shifts.down
        if side > self.config.level_shift.threshold:
            return True
        if side <= 0.0:
            return False
        expected = self.history.expected_on(day) or self.history.expected_on(day - timedelta(days=1))
        return expected is not None and expected < CLEAR_MIN_EXPECTED

    def _silence_unlikely(self, day: date, level: float | None) -> bool:
        """The run of near-zero days up to ``day`` is no chance of a quiet series: together
        they are beyond ``min_score`` under Poisson at ``level`` a day. A post of thousands
        that counts two a day for three days is closed; one of five a day that does is its
        noise (1 in 130), and calling it closed made its next busy day a "reopened" surge."""
        if not level:
            return True
        counted, expected = 0, 0.0
        for k in range(self.zero_run):
            earlier = day - timedelta(days=k)
            got, own = self.history.get(earlier), self.history.expected_on(earlier)
            counted += got[0] if got is not None else 0
            expected += own if own else level  # its weekday's expectation where it was judged
        return tail_score(counted, expected, 0.0) <= -self.config.min_score

    def _recent_level(self, day: date) -> float | None:
        """The median of the 14 recorded open days before ``day``; read in one slice (each
        direction's post view asks every day), the median's order does not matter."""
        totals, flags = self.history.before(day, 14)
        kept = [t for t, flag in zip(totals, flags, strict=True) if t is not None and flag != CLOSED]
        return float(median(kept)) if kept else None

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
            episode_id=episode_id(self.checkpoint.checkpoint_id, self.direction, "surge", local),
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
        the days it reads, or none of them recorded; and most days it remembers carried
        none (a series of a few a day has three quiet days by chance)."""
        for k in range(1, self.config.closed_after_days + 1):
            got = self.history.get(day - timedelta(days=k))
            if got is None or got[0] > self.config.silent_max or got[1] == CLOSED:
                return False
        baseline = self.baseline(day)
        if baseline is not None and baseline.expected_day >= self.config.min_expected:
            return False
        # A series too quiet for a baseline (a few a day, zeros among them) carried traffic:
        # three quiet days and then ten are its noise, unless most days it remembers had none.
        totals, flags = self.history.before(day, 7 * self.baseline_config.weeks)
        remembered = [t for t, f in zip(totals, flags, strict=True) if t is not None and f != CLOSED]
        return not remembered or statistics.median(remembered) <= self.config.silent_max

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
        """One nationality against the rest of the post, while the post as a whole is not alarming.
        On a public holiday a nationality's surge is judged with a wide band (the day-level
        view's for a holiday without history): a holiday brings one group out (mainland
        visitors on a Chinese holiday), which the mix of ordinary days does not know. A
        group that falls away on a holiday (a crackdown) is still judged as any day."""
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
        holiday = bool(holiday_names(self.countries, baseline.day))
        if assessment is not None and assessment.kind == "surge" and holiday:
            wide = math.hypot(shape_cv, self.baseline_config.unknown_day_dispersion)
            assessment = assess_groups(profile, baseline, expected_total, window, self.config, shape_cv=wide)
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
            if not self._in_tail_or_beyond(assessment):
                # The series' weather: no alarm, but no ordinary day either. Flagged as an
                # alarm day, it stays out of the weekly level (a median of four Mondays two
                # of which rained is not a Monday's level) and in the tail, as it would have
                # with the episode it no longer opens.
                self.alarm_today = True
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
        held = (
            self._held_by_days(episode, assessment.local_day)
            and assessment.kind in (None, episode.kind)
            and self.history.expected_on(assessment.local_day - timedelta(days=1)) is not None
        )
        if not held and episode.clears(assessment, self.config):
            self.episode = None
            resolved = [Transition("resolved", episode, assessment, as_of, opened=False)]
            if assessment.kind is not None and assessment.kind != episode.kind:
                return resolved + self._step(assessment, as_of)
            return resolved
        if assessment.window == "full_day":
            self._track_peak(assessment)
            return [Transition("firing", episode, assessment, as_of, opened=False)]
        return []

    def tail(self, day: date) -> TailBand | None:
        """The series' own tail on ``day`` (``tails.py``), None while too little is known.
        Read afresh from the history each time (only a verdict that would open an episode
        asks), so a restarted worker, and a history re-flagged since, answer the same."""
        return tail_band(self.history, day, self.config.tail)

    def _in_tail_or_beyond(self, assessment: Assessment) -> bool:
        """A verdict opens an episode only where the day is beyond what the series did on
        more than about two days of its last year (``tails.py``), or (a drop) the day before
        dropped too: a rainy day at a street
        where rainy days are x0.4 is its weather, not an alarm. A silence always is."""
        if not self.config.tail.enabled or assessment.observed == 0 or assessment.kind is None:
            return True
        band = self.tail(assessment.local_day)
        if band is not None and assessment.window == "running_day" and self._running_at is not None:
            # The day so far is the day times its shape: early in the day, the band of the
            # share done by now (the series' own worst days of a month) comes on top.
            local = self._running_at
            fraction = (local.minute * 60 + local.second) / 3600
            far = shape_reach(self.lookup, assessment.local_day, local.hour, fraction, self.config.tail)
            band = widened(band, far)
        if band is None:
            return True
        baseline = self.baseline(assessment.local_day)
        if band.beyond(assessment.kind, assessment.ratio) and (
            baseline is None or not self._made_by_last_year(band, assessment, baseline)
        ):
            return True
        # In the band, or beyond it only by last year's factors: a drop's second day still
        # opens (a deeper drop than one that would open this way must not be kept shut).
        season = baseline.season if baseline is not None else 1.0
        return (
            assessment.kind in self.config.tail.persist
            and self._departed_the_day_before(assessment)
            and self._departed_the_day_before(assessment, season)
        )

    @staticmethod
    def _made_by_last_year(band: TailBand, assessment: Assessment, baseline: Baseline) -> bool:
        """The departure is last year's factors' doing, not the day's: last year's factors
        are there to explain a departure (a holiday that doubles every year, last year's
        ramp expected again), not to make one. A factor read the other way than the verdict
        (a surge on a day expected low because last year's was) made part of it:

        - a holiday's (its eve's, the day after's) factor is one day of last year against
          the weeks around it, that day's weather and all: the day must be beyond the band
          without it too (a Christmas that rained last year, x0.3, and is x0.53 this year is
          not a surge);
        - the season factor is a week of last year against the weeks the level was taken
          from: last year's storm week, a school holiday that moved with Easter, a sensor
          that undercounted then are in it as much as a season. How far it reaches against
          the verdict is as uncertain as the day itself, so the band is widened by it, in
          quadrature (as a running day's by its shape's stray: ``tails.widened``).

        A factor read the same way as the verdict only makes it smaller (as before)."""
        toward = 1.0 if assessment.kind == "drop" else -1.0
        if toward * math.log(baseline.holiday) > 0.0 and not band.beyond(
            assessment.kind, assessment.ratio * baseline.holiday
        ):
            return True
        against = toward * math.log(baseline.season)
        return against > 0.0 and not widened(band, against).beyond(assessment.kind, assessment.ratio)

    def _departed_the_day_before(self, assessment: Assessment, season: float | None = None) -> bool:
        """The completed day before ``assessment``'s departed the same way (its recorded
        total against its recorded expectation): the second day of a departure. With
        ``season`` (the day's season factor, ``Baseline.season``): the day and the day
        before each departed against the weekly level without it too (a drop made by last
        year's season has no second day either)."""
        before = assessment.local_day - timedelta(days=1)
        got, expected = self.history.get(before), self.history.expected_on(before)
        if got is None or not expected or expected < self.config.tail.min_expected:
            return False
        if season is None:
            ratio, today = got[0] / expected, None
        else:
            ratio, today = got[0] / expected * season, assessment.ratio * season
        if assessment.kind == "drop":
            return ratio <= self.config.drop_ratio and (today is None or today <= self.config.drop_ratio)
        return ratio >= self.config.surge_ratio and (today is None or today >= self.config.surge_ratio)

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
