"""Whether an event was counted before: one partition's de-duplication rule.

An event id is remembered, with the digest of what the event said, for the horizon
(``CoreConfig.dedup_horizon_s``). A later message with the same id is a re-sent copy when
its digest matches (or the id was remembered without one) and is dropped; with another
digest the producer reused the id for a different crossing, and that message is a
conflict. Ids are remembered in three places, asked in this order: those counted since
the last commit (``state.new_ids``), those of a commit being made durable behind the
processing (``state.in_flight_ids``, a replay's commits) and the committed ones (the store,
one multi-get per batch, never one lookup per record).
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.core.state import PartitionState
from streams.core.store import LocalStore


class Deduplicator:
    def __init__(self, state: PartitionState, store: LocalStore) -> None:
        self.state = state
        self.store = store
        #: Ids of the current batch that were counted before it -> their digest.
        self._earlier: dict[str, str] = {}
        #: ``state.new_ids`` as of the batch (a commit replaces it, never during a batch).
        self._new_ids: dict[str, tuple[int, str]] = state.new_ids

    def look_up(self, event_ids: Iterable[str]) -> None:
        """Fetch what is remembered of a batch's ids before its records are admitted."""
        state = self.state
        new_ids = self._new_ids = state.new_ids
        candidates = [event_id for event_id in event_ids if event_id not in new_ids]
        remembered = self.store.remembered(candidates, state.in_flight_expired)
        earlier = {i: d for i, d in zip(candidates, remembered, strict=True) if d is not None}
        in_flight = state.in_flight_ids
        if in_flight:  # a commit still being made durable: its ids may not be in the store yet
            for event_id in candidates:
                hit = in_flight.get(event_id)
                if hit is not None:
                    earlier[event_id] = hit[1]
        self._earlier = earlier

    def admit(self, event_id: str, digest: str, hour_bucket: int) -> str | None:
        """None when the id is new (it is remembered from now on); otherwise the digest it
        was counted with ("" when remembered without one)."""
        seen = self._new_ids.get(event_id)
        earlier = seen[1] if seen is not None else self._earlier.get(event_id)
        if earlier is None:
            self._new_ids[event_id] = (hour_bucket, digest)
        return earlier


def is_copy(earlier: str, digest: str) -> bool:
    """A message carrying a remembered id is a re-sent copy, not a conflict."""
    return earlier == digest or earlier == ""
