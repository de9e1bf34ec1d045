"""An episode (an alarm from opening to resolving) and the messages it publishes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from streams.domain.counts import DayProfile
from streams.domain.detect.assess import Assessment, Cause, Kind, Window
from streams.domain.detect.config import DetectorConfig


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
    #: Opened by this many completed days together (``onset.py``), none of which alone
    #: proved it: it ends on days together too, not on one day's noise. 0: opened by one view.
    pooled_days: int = 0
    #: The level-shift CUSUM re-anchored the baseline while it was open: the next view,
    #: judged against the new level, ends it (``changepoint.py``).
    re_anchored: bool = False

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


def episode_id(checkpoint_id: str, direction: str, kind: str, local: datetime) -> str:
    """An episode's id: where, which way, what, and the local minute it opened (alerts and
    the backtest compare these, so one spelling for every opener)."""
    return f"{checkpoint_id}:{direction}:{kind}:{local:%Y-%m-%dT%H%M}"


def _total(profile: DayProfile | None) -> int:
    return profile["total"] if profile else 0


def _episode(state: dict[str, Any] | None) -> Episode | None:
    """An episode from saved state; unknown keys (a newer version's) are ignored."""
    if not state:
        return None
    known = {f for f in Episode.__dataclass_fields__}
    return Episode(**{k: v for k, v in state.items() if k in known})
