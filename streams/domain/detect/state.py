"""A detector's saved state: what must survive a restart, as a typed value.

The worker keeps one per checkpoint and direction in its changelogged state, as JSON
(``to_dict``, the same shape every version has written); ``from_dict`` reads any of them:
a state saved by an older version (no history, one episode, no post view) loads with
defaults, and keys it does not know (a newer version's) are ignored. A value is a
snapshot: it shares nothing mutable with the detector it was taken from or given to.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from streams.domain.detect.assess import Band
from streams.domain.detect.episodes import Episode, _episode

#: The keys of ``DayHistory.state()`` that ``HistoryState`` reads into fields.
_DAYS_KEYS = ("from", "totals", "flags")


@dataclass(frozen=True)
class HistoryState:
    """``DayHistory``'s days: the first day's date, a total per day (None: not recorded)
    and one flag character per day (``history.NORMAL``, ``ALARM``, ``CLOSED``)."""

    start: date | None = None
    totals: tuple[int | None, ...] = ()
    flags: str = ""
    #: What else ``DayHistory.state()`` saves (name -> its JSON value, copied): carried as
    #: it was, so a part the history gains (level shifts, say) survives a restart before
    #: it gets a field here.
    more: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "totals": list(self.totals),
            "flags": self.flags,
            **{name: copy.deepcopy(value) for name, value in self.more},
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any] | None) -> HistoryState:
        saved = saved or {}
        totals = tuple(saved.get("totals", ()))
        return cls(
            date.fromisoformat(saved["from"]) if saved.get("from") else None,
            totals,
            saved.get("flags", "." * len(totals)),
            tuple((k, copy.deepcopy(v)) for k, v in saved.items() if k not in _DAYS_KEYS),
        )


@dataclass(frozen=True)
class DetectorState:
    """What ``CheckpointDetector`` keeps across a restart (see its attributes)."""

    episode: Episode | None = None
    group_episode: Episode | None = None
    #: The local day and hour of the last evaluation.
    last_day: date | None = None
    last_hour: int | None = None
    closed_since: date | None = None
    zero_run: int = 0
    alarm_today: bool = False
    history: HistoryState = field(default_factory=HistoryState)
    #: The running day's band at the last evaluation (for the band gauges).
    band: Band | None = None
    #: The post-level episode (on the pair's first direction) and the day the post view last saw.
    post_episode: Episode | None = None
    post_day: date | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the changelog: small (~6 kB with a year of day totals and expectations)."""
        return {
            "episode": _episode_dict(self.episode),
            "group_episode": _episode_dict(self.group_episode),
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "last_hour": self.last_hour,
            "closed_since": self.closed_since.isoformat() if self.closed_since else None,
            "zero_run": self.zero_run,
            "alarm_today": self.alarm_today,
            "history": self.history.to_dict(),
            "band": self.band.as_list() if self.band else None,
            "post_episode": _episode_dict(self.post_episode),
            "post_day": self.post_day.isoformat() if self.post_day else None,
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any] | None) -> DetectorState:
        """A state as ``to_dict`` (of this or any earlier version) wrote it."""
        saved = saved or {}
        return cls(
            episode=_episode(saved.get("episode")),
            group_episode=_episode(saved.get("group_episode")),
            last_day=date.fromisoformat(saved["last_day"]) if saved.get("last_day") else None,
            last_hour=saved.get("last_hour"),
            closed_since=date.fromisoformat(saved["closed_since"]) if saved.get("closed_since") else None,
            zero_run=int(saved.get("zero_run", 0)),
            alarm_today=bool(saved.get("alarm_today", False)),
            history=HistoryState.from_dict(saved.get("history")),
            band=Band.from_list(saved["band"]) if saved.get("band") else None,
            post_episode=_episode(saved.get("post_episode")),
            post_day=date.fromisoformat(saved["post_day"]) if saved.get("post_day") else None,
        )

    @classmethod
    def of(cls, saved: DetectorState | Mapping[str, Any] | None) -> DetectorState:
        """A typed state as is; a dict (saved JSON, of any version) read with ``from_dict``."""
        return saved if isinstance(saved, DetectorState) else cls.from_dict(saved)


#: Episode fields written only when set: a state saved before they existed is written
#: back exactly as it was read.
_OMITTED_AT_DEFAULT = {"pooled_days": 0, "re_anchored": False}


def _episode_dict(episode: Episode | None) -> dict[str, Any] | None:
    if episode is None:
        return None
    return {k: v for k, v in vars(episode).items() if _OMITTED_AT_DEFAULT.get(k, object()) != v}


def copied(episode: Episode | None) -> Episode | None:
    """An episode not shared with a state (detectors change their open episodes)."""
    return replace(episode) if episode is not None else None
