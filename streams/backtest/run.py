"""Drive the worker's detector over count series, the way the worker's clock would.

No second implementation: each series gets a :class:`CheckpointDetector` reading its day
profiles (a post's entry and exit series are paired and run together, with the post-level
view after both, as the worker runs them), evaluated at every whole hour of the file's time
(hourly files) or at each local midnight (daily files: a day is judged once it is
complete), and every transition becomes the worker's alert message
(:func:`streams.domain.alert.alert_message`). An
episode is the alert that opened it plus, if it ended, the one that resolved it.

The worker forgets day profiles ``retention_days`` behind stream time; the lookup here
refuses older days too, so a detector that read further back would differ from the
worker's and the equivalence test would say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streams.backtest.series import Series, SeriesSet, local_midnight
from streams.domain.alert import alert_message
from streams.domain.counts import DayProfile
from streams.domain.detect import CheckpointDetector, DetectorConfig, Transition
from streams.domain.detect.evaluate import evaluate_step
from streams.domain.registry import Checkpoint

RETENTION_DAYS = 35
#: A post's two directions, in the order the worker evaluates them (the first holds the
#: post-level episode): a series set with both gets them run together (``run_post``).
PAIRED_DIRECTIONS = ("entry", "exit")


@dataclass
class EpisodeRow:
    """One alert episode as backtest prints it."""

    checkpoint: str
    direction: str
    kind: str
    start: str
    end: str | None
    observed: int
    expected: float
    ratio: float
    score: float
    window: str
    cause: str
    drivers: str
    summary: str
    #: The episode's id, as the worker's alerts carry it (``episode_id``).
    episode: str
    #: For scoring: when it opened (aware UTC) and, if it did, when it resolved.
    opened_at: datetime
    resolved_at: datetime | None

    def public(self) -> dict[str, Any]:
        data = dict(vars(self))
        del data["opened_at"], data["resolved_at"]
        return data


def evaluation_times(series: Series, granularity: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """The instants the worker's clock would evaluate this series at, between ``start`` and ``end``.

    Hourly: every whole hour after the first row's hour up to the last row's hour (the
    worker evaluates hour b when the first record at or past b arrives). Daily: every
    local midnight from the first day's to the one after the last day."""
    if granularity == "hour":
        moment = start + timedelta(hours=1)
        while moment <= end:
            yield moment
            moment += timedelta(hours=1)
        return
    zone = series.checkpoint.tz
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last + timedelta(days=1):
        yield local_midnight(day, zone).astimezone(UTC)
        day += timedelta(days=1)


def _lookup(series: Series, clock: list[datetime]) -> Callable[[date], DayProfile | None]:
    """Profiles as the worker holds them at ``clock[0]``: today's up to that hour, nothing
    later, nothing past the retention."""
    zone = series.checkpoint.tz
    partial: dict[tuple[date, int], DayProfile | None] = {}
    # The clock's local day and hour, worked out once per tick: the detector reads some
    # 35 days per evaluation, and converting the same instant each time was a tenth of
    # the backtest's own time.
    now: list[Any] = [None, date.min, 0, date.min]  # instant, today, hour, oldest readable
    # The whole days already summed (``Series.profile`` keeps them): read first, without a
    # call (the detector reads some 35 days per evaluation).
    full = series.summed

    def lookup(day: date) -> DayProfile | None:
        moment = clock[0]
        if moment is not now[0]:
            local = moment.astimezone(zone)
            now[:] = [moment, local.date(), local.hour, local.date() - timedelta(days=RETENTION_DAYS)]
        today = now[1]
        if day < now[3]:
            raise AssertionError(f"the detector read {day}, past the worker's {RETENTION_DAYS}-day retention")
        if day > today:
            return None
        if day < today:
            found = full.get(day)
            return found if found is not None else series.profile(day)
        key = (day, now[2])
        if key not in partial:
            partial.clear()
            partial[key] = series.profile(day, now[2])
        return partial[key]

    return lookup


def run_series(
    series: Series,
    granularity: str,
    start: datetime,
    end: datetime,
    config: DetectorConfig = DetectorConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[Transition]:
    """Every transition the detector raises over the series."""
    clock = [start]
    detector = CheckpointDetector(series.checkpoint, series.direction, _lookup(series, clock), config)
    transitions: list[Transition] = []
    steps = 0
    for moment in evaluation_times(series, granularity, start, end):
        clock[0] = moment
        for _, found in evaluate_step((detector,), moment):
            transitions += found
        steps += 1
        if progress is not None and steps % 500 == 0:
            progress(500)
    if progress is not None:
        progress(steps % 500)
    return transitions


def run_post(
    pair: tuple[Series, Series],
    granularity: str,
    start: datetime,
    end: datetime,
    config: DetectorConfig = DetectorConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[tuple[str, Transition]]:
    """Both directions of one post, as the worker runs them: one clock from ``start`` (a
    worker evaluates every checkpoint it owns from its partition's clock, whichever
    direction sent first), and at each time the worker's own step (``evaluate_step``: the
    first direction, then the second, then the post-level view). Returns each transition
    with the direction it speaks for, in the order the worker would publish them."""
    clock = [start]
    detectors = tuple(
        CheckpointDetector(series.checkpoint, series.direction, _lookup(series, clock), config)
        for series in pair
    )
    detectors[0].pair(detectors[1])
    found: list[tuple[str, Transition]] = []
    steps = 0
    for moment in evaluation_times(pair[0], granularity, start, end):
        clock[0] = moment  # both directions' counts up to this time, as the worker has them
        for direction, transitions in evaluate_step(detectors, moment):
            found += [(t.direction or direction, t) for t in transitions]
        steps += 2
        if progress is not None and steps >= 500:
            progress(steps)
            steps = 0
    if progress is not None:
        progress(steps)
    return found


def episodes(series: Series, granularity: str, transitions: list[Transition]) -> list[EpisodeRow]:
    """One row per episode of one series: the opening alert's figures, and when it resolved."""
    return episode_rows(series.checkpoint, granularity, [(series.direction, t) for t in transitions])


def episode_rows(
    checkpoint: Checkpoint, granularity: str, transitions: list[tuple[str, Transition]]
) -> list[EpisodeRow]:
    """One row per episode, from transitions each with the direction it speaks for."""
    alerts = [alert_message(checkpoint, direction, t, raised_at=t.as_of) for direction, t in transitions]
    return alert_episodes({checkpoint.checkpoint_id: checkpoint}, granularity, alerts)


def alert_episodes(
    checkpoints: Mapping[str, Checkpoint], granularity: str, alerts: Iterable[Any]
) -> list[EpisodeRow]:
    """One row per episode of ``alert_type.Alert`` messages (in the order they were raised):
    the figures of the message that opened it (an episode's first), and when one resolved it."""
    rows: list[EpisodeRow] = []
    #: Episode id -> its row while it is open (an id may come back once its episode ended).
    open_rows: dict[str, EpisodeRow] = {}
    for alert in alerts:
        episode_id = alert.episode_id
        checkpoint = checkpoints[alert.checkpoint_id]
        as_of = datetime.fromisoformat(alert.as_of).astimezone(UTC)
        row = open_rows.get(episode_id)
        if row is None:
            local = as_of.astimezone(checkpoint.tz)
            start = alert.local_day if granularity == "day" else local.isoformat()
            row = open_rows[episode_id] = EpisodeRow(
                checkpoint=checkpoint.checkpoint_id,
                direction=alert.direction,
                kind=alert.kind,
                start=start,
                end=None,
                observed=alert.observed,
                expected=alert.expected,
                ratio=alert.ratio,
                score=alert.score,
                window=alert.window,
                cause=alert.cause or "level",
                drivers="; ".join(
                    f"{d.nationality}|{d.purpose} {d.observed} vs {d.expected:.0f}" for d in alert.drivers
                ),
                summary=alert.summary,
                episode=episode_id,
                opened_at=as_of if granularity == "hour" else _day_start(alert.local_day, checkpoint),
                resolved_at=None,
            )
            rows.append(row)
        if alert.status == "resolved":
            local = as_of.astimezone(checkpoint.tz)
            row.end = local.date().isoformat() if granularity == "day" else local.isoformat()
            row.resolved_at = as_of
            del open_rows[episode_id]
    return rows


def _day_start(local_day: str, checkpoint: Any) -> datetime:
    return local_midnight(date.fromisoformat(local_day), checkpoint.tz).astimezone(UTC)


def series_start(series: Series, data: SeriesSet) -> datetime:
    """Where a series' clock starts: the file's first hour if the series has a row within a
    day of it (a worker's partition clock starts once for all its checkpoints), else its own."""
    return clock_start(series, data.first)


def clock_start(series: Series, first: datetime) -> datetime:
    """``series_start`` in a set whose first hour is ``first``."""
    assert series.first is not None
    return first if series.first - first < timedelta(days=1) else series.first


#: One unit of a backtest: a post's two directions run together, or one series alone.
Unit = tuple[tuple[str, str], ...]


def units(data: SeriesSet) -> list[Unit]:
    """The independent runs of a backtest, in the order it runs them: each post with both
    directions as a pair (``run_post``), every other series alone."""
    found: list[Unit] = []
    for checkpoint_id, direction in data.series:
        pair = tuple((checkpoint_id, d) for d in PAIRED_DIRECTIONS)
        if direction in PAIRED_DIRECTIONS and all(key in data.series for key in pair):
            if direction == PAIRED_DIRECTIONS[0]:
                found.append(pair)
            continue  # the second direction runs with its first
        found.append(((checkpoint_id, direction),))
    return found


def run_unit(
    data: SeriesSet,
    unit: Unit,
    config: DetectorConfig = DetectorConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[EpisodeRow]:
    """The episodes of one unit (``units``), unsorted."""
    series = tuple(data.series[key] for key in unit)
    return run_series_of(series, data.granularity, data.first, data.last, config, progress)


def run_series_of(
    series: tuple[Series, ...],
    granularity: str,
    first: datetime,
    end: datetime,
    config: DetectorConfig = DetectorConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[EpisodeRow]:
    """``run_unit`` of a unit's series (one, or a post's two directions), in a set whose
    first and last hours are ``first`` and ``end`` (where the clocks start and stop)."""
    if len(series) == 2:
        start = min(clock_start(one, first) for one in series)
        pair = (series[0], series[1])
        return episode_rows(
            series[0].checkpoint, granularity, run_post(pair, granularity, start, end, config, progress)
        )
    (one,) = series
    transitions = run_series(one, granularity, clock_start(one, first), end, config, progress)
    return episodes(one, granularity, transitions)


def backtest(
    data: SeriesSet,
    config: DetectorConfig = DetectorConfig(),
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> list[EpisodeRow]:
    """All episodes of all series, ordered by start, checkpoint and direction.

    ``jobs`` > 1: the units (``units``) run in that many processes (``parallel.py``); the
    episodes are the same, in the same order."""
    todo = units(data)
    if jobs > 1 and len(todo) > 1:
        from streams.backtest.parallel import run_units

        found = run_units(data, todo, config, progress, jobs)
    else:
        found = [row for unit in todo for row in run_unit(data, unit, config, progress)]
    found.sort(key=lambda r: (r.opened_at, r.checkpoint, r.direction, r.kind))
    return found


def evaluation_count(data: SeriesSet) -> int:
    """How many evaluations :func:`backtest` will run (for a progress bar)."""
    end = data.last
    total = 0
    for (checkpoint_id, direction), series in data.series.items():
        start = series_start(series, data)
        if direction in PAIRED_DIRECTIONS:
            pair = [data.series.get((checkpoint_id, d)) for d in PAIRED_DIRECTIONS]
            if all(pair):
                start = min(series_start(one, data) for one in pair if one is not None)
        span = end - start
        total += int(span.total_seconds() // 3600) if data.granularity == "hour" else span.days + 2
    return total
