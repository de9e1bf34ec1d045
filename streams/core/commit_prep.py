"""What one partition's commit carries: its effects and state changes, frozen.

The processor hands this batch to the commit protocol (``core.task``), which makes the
outputs, the changelog records and the source offset durable together; nothing in it
changes while that happens, so processing may go on behind a commit (a replay's).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from streams.core.detectors import DIRECTIONS
from streams.core.effects import CommitBatch, DailySnapshot, Effects, event_columns
from streams.core.state import PartitionState
from streams.domain.counts import group_counts, profile_key


def freeze(
    partition: int, state: PartitionState, effects: Effects, horizon_s: float, retention_days: int
) -> CommitBatch:
    """The batch of the next commit: its sequence, offsets, outputs and state changes."""
    seq = state.commit_seq + 1
    changes, expired_buckets, expired_profiles = state.changes(
        commit_seq=seq, horizon_s=horizon_s, retention_days=retention_days
    )
    return CommitBatch(
        partition=partition,
        commit_seq=seq,
        first_offset=effects.first_offset,
        last_offset=state.applied_offset,
        events={folder: event_columns(rows) for folder, rows in effects.events.items()},
        alerts=effects.alerts,
        snapshots=daily_snapshots(state, effects.days_touched),
        dead_letters=effects.dead_letters,
        changes=changes,
        forwards=effects.forwards,
        metrics=effects.metrics,
        expired_buckets=expired_buckets,
        expired_profiles=expired_profiles,
    )


def daily_snapshots(state: PartitionState, days: Iterable[tuple[str, date]]) -> list[DailySnapshot]:
    """The whole day's counts of each checkpoint-day the commit touched: a snapshot
    replaces the last one, so a re-delivered commit writes the same rows."""
    snapshots = []
    for checkpoint_id, day in sorted(days):
        rows = []
        for direction in DIRECTIONS:
            profile = state.profiles.get(profile_key(checkpoint_id, direction, day))
            if profile:
                rows += [(direction, *group) for group in group_counts(profile)]
        snapshots.append(DailySnapshot(checkpoint_id, day, rows, state.stream_ts or 0.0))
    return snapshots
