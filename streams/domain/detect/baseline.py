"""What a checkpoint's day normally looks like, learned from its earlier days.

The level comes from the same weekday in recent weeks (a Monday at a border is not a
Sunday), falling back to the recent days when there are too few of those. The shape of
the day (share per local hour) and the mix of groups are averaged over the history.
Medians everywhere: one closure or one surge in the history must not move "normal".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from streams.domain.counts import HOURS, DayProfile

ProfileLookup = Callable[[date], DayProfile | None]


@dataclass(frozen=True)
class BaselineConfig:
    weeks: int = 4
    #: Same-weekday days needed before the weekday level is trusted.
    min_same_weekday: int = 2
    #: Any-weekday days needed for the fallback level; fewer means "still learning".
    min_recent_days: int = 5
    min_dispersion: float = 0.08
    #: Without same-weekday history the weekday effect is unknown: widen the band.
    fallback_min_dispersion: float = 0.25
    max_dispersion: float = 0.6


@dataclass(frozen=True)
class Baseline:
    day: date
    expected_day: float
    hourly_share: tuple[float, ...]
    group_share: dict[str, float] = field(hash=False)
    #: Robust coefficient of variation of daily totals around their weekday level.
    dispersion: float
    history_days: int

    def expected_through(self, hour: int, fraction_of_hour: float) -> float:
        """Expected count from local midnight up to ``hour:fraction`` of this day."""
        done = sum(self.hourly_share[:hour])
        return self.expected_day * (done + self.hourly_share[hour] * fraction_of_hour)

    def expected_hour(self, hour: int) -> float:
        return self.expected_day * self.hourly_share[hour]


def _mad_cv(ratios: list[float]) -> float:
    if len(ratios) < 2:
        return 0.0
    centre = statistics.median(ratios)
    return 1.4826 * statistics.median(abs(r - centre) for r in ratios)


def build_baseline(
    day: date, lookup: ProfileLookup, config: BaselineConfig = BaselineConfig()
) -> Baseline | None:
    """Baseline for ``day`` from the ``config.weeks`` weeks before it, or None while learning."""
    history: dict[date, DayProfile] = {}
    for back in range(1, 7 * config.weeks + 1):
        earlier = day - timedelta(days=back)
        profile = lookup(earlier)
        if profile is not None and profile["total"] > 0:
            history[earlier] = profile
    if not history:
        return None

    by_weekday: dict[int, list[int]] = {}
    for earlier, profile in history.items():
        by_weekday.setdefault(earlier.weekday(), []).append(profile["total"])
    same_weekday = by_weekday.get(day.weekday(), [])
    floor = config.min_dispersion
    if len(same_weekday) >= config.min_same_weekday:
        expected_day = float(statistics.median(same_weekday))
    elif len(history) >= config.min_recent_days:
        recent = sorted(history)[-7:]
        expected_day = float(statistics.median(history[d]["total"] for d in recent))
        floor = config.fallback_min_dispersion
    else:
        return None

    weekday_level = {wd: statistics.median(totals) for wd, totals in by_weekday.items()}
    ratios = [
        profile["total"] / weekday_level[earlier.weekday()]
        for earlier, profile in history.items()
        if len(by_weekday[earlier.weekday()]) >= 2
    ]
    dispersion = min(max(_mad_cv(ratios), floor), config.max_dispersion)

    hourly = [0.0] * HOURS
    for profile in history.values():
        for hour, count in enumerate(profile["hourly"]):
            hourly[hour] += count / profile["total"]
    hourly_share = tuple(share / len(history) for share in hourly)

    grand_total = sum(profile["total"] for profile in history.values())
    group_totals: dict[str, int] = {}
    for profile in history.values():
        for group, count in profile["groups"].items():
            group_totals[group] = group_totals.get(group, 0) + count
    group_share = {group: count / grand_total for group, count in group_totals.items()}

    return Baseline(
        day=day,
        expected_day=expected_day,
        hourly_share=hourly_share,
        group_share=group_share,
        dispersion=dispersion,
        history_days=len(history),
    )
