"""A label is found by an episode opened ahead of it only if that episode is still open on
the label's first day (a city that empties before a lockdown's official date); one that
ended before it saw something else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.backtest import EpisodeRow, Label

START = datetime(2020, 3, 23, tzinfo=UTC)


def _row(opened: datetime, resolved: datetime | None) -> EpisodeRow:
    return EpisodeRow(
        checkpoint="a",
        direction="all",
        kind="drop",
        start=opened.date().isoformat(),
        end=resolved.date().isoformat() if resolved else None,
        observed=0,
        expected=0.0,
        ratio=0.0,
        score=0.0,
        window="day",
        cause="level",
        drivers="",
        summary="",
        episode="a:all:drop",
        opened_at=opened,
        resolved_at=resolved,
    )


def test_an_episode_open_on_the_label_day_finds_it():
    label = Label(START, START + timedelta(days=30), "a", "drop")
    before, after = timedelta(days=3), timedelta(days=2)
    assert label.covers(_row(START - timedelta(days=2), None), before, after)
    assert label.covers(_row(START - timedelta(days=2), START + timedelta(days=5)), before, after)
    assert not label.covers(_row(START - timedelta(days=2), START - timedelta(days=1)), before, after)
    assert not label.covers(_row(START - timedelta(days=4), None), before, after)
    assert not label.covers(_row(START - timedelta(days=2), None), timedelta(0), after)
