"""A post-level episode (direction ``both``: the post stopped reporting) is drawn on both
direction panels of ``report chart``, labelled as the post's, beside a direction's own."""

from __future__ import annotations

from datetime import date

from streams.domain.registry import load_registry
from streams.query.chart import ChartData, DayPoint, EpisodeSpan, figure


def test_a_post_episode_is_shaded_on_both_panels_and_a_direction_episode_on_its_own():
    korday = load_registry()["korday"]
    days = [date(2024, 3, d) for d in range(1, 11)]
    points = [
        DayPoint(day, direction, 1000, None, None, None) for day in days for direction in ("entry", "exit")
    ]
    episodes = [
        EpisodeSpan("korday:both:drop:2024-03-05T02", "both", "drop", days[4], days[5], True, 0.0),
        EpisodeSpan("korday:entry:surge:2024-03-08T10", "entry", "surge", days[7], days[8], True, 2.0),
    ]
    fig = figure(ChartData(korday, points, episodes))
    labels = {ax.get_title(loc="left"): sorted(patch.get_label() for patch in ax.patches) for ax in fig.axes}
    assert labels == {
        "Korday: entry": ["drop episode (post: both directions)", "surge episode"],
        "Korday: exit": ["drop episode (post: both directions)"],
    }
