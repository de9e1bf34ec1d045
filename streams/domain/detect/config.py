"""The detector's thresholds: one frozen value the worker and the backtest share."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.domain.detect.changepoint import ShiftConfig
from streams.domain.detect.tails import TailConfig


@dataclass(frozen=True)
class DetectorConfig:
    surge_ratio: float = 1.4
    #: A drop needs the day at or below this share of expected. At 0.6 a lasting x0.6 step
    #: sat on the edge (its days at 0.60-0.65 of an expectation that lags it) and could go
    #: unseen; 0.65 finds it, and on the real sets found more at about the same alarm rate
    #: (load_tests/DETECTOR_RESULTS.md, 2026-12-07 "the drop ratio").
    drop_ratio: float = 0.65
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
    #: Intermittent series (``intermittent.py``: a cruise terminal, traffic on ship days
    #: only): judged by a hurdle model of the last ``intermittent_days`` recorded days once
    #: at least ``intermittent_min_zero_share`` of them are silent, traffic came back after
    #: a silent day ``intermittent_min_visits`` times, and ``intermittent_min_mixed`` of
    #: the days disagree with their weekday's usual (no weekly rhythm explains the silence).
    intermittent_days: int = 182
    intermittent_min_zero_share: float = 0.2
    intermittent_min_visits: int = 6
    intermittent_min_mixed: float = 0.1
    #: The days with traffic are counted over the last 14, 28 and this many days, against
    #: the days before them (their chance multiplied: a surge).
    intermittent_window: int = 56
    #: A gap without traffic is a drop only beyond this many times the longest of the window.
    intermittent_gap_factor: float = 1.5
    #: Floor of the spread of a day with traffic's size.
    intermittent_min_size_cv: float = 0.2
    #: Level shifts (``changepoint.py``): the CUSUM that re-anchors the baseline once a change
    #: has persisted. It opens no episode of its own: a shift no view flagged while it built
    #: up was within the bands (a monthly series steps every month), and becomes the level.
    #: (Days together can open one where each was short of a day's score: ``onset.py``.)
    level_shift: ShiftConfig = field(default_factory=ShiftConfig)
    #: The series' own tail (``tails.py``): a day's verdict opens an episode only beyond what
    #: the series did on more than about two days of its last year, or on the second day
    #: in a row of a drop (``TailConfig.persist``).
    tail: TailConfig = field(default_factory=TailConfig)

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
