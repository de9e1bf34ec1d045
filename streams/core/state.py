"""A partition's state in memory, and the changelog records one commit makes of it.

Everything the core remembers about a partition lives here, stamped with the source
offset it reflects (``applied_offset``): day profiles, detector states, remembered event
ids, the stream clock and the commit sequence. It is changed freely while a batch is
processed; nothing is written until :meth:`changes` turns what changed since the last
commit into changelog records (one per dirty key, not one per event), which the commit
protocol makes durable together with the outputs and the source offset.

A commit that fails leaves nothing to undo: the state is rebuilt from the store, which
only ever holds committed records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import orjson

from streams.core.store import DETECTOR, META, PROFILE, SEEN_CHUNK, Change, LocalStore
from streams.domain.counts import DayProfile, parse_profile_key
from streams.domain.detect.state import DetectorState

#: Remembered ids are written to the changelog in chunks of at most this many.
SEEN_CHUNK_IDS = 5000
HOUR = 3600


@dataclass
class PartitionState:
    partition: int
    #: The last source offset whose effects this state holds; a record at or below it is
    #: already applied and is skipped when it is delivered again.
    applied_offset: int = -1
    #: The partition's event time (unix seconds) as its latest events agree on it (see
    #: ``domain.clock.agreed_time``): the clock detection and the too-late rule run on.
    stream_ts: float | None = None
    #: Times of the latest events that came to the partition (what the clock is agreed on),
    #: oldest first.
    recent: list[float] = field(default_factory=list)
    #: The last hour boundary (unix seconds) the detectors were evaluated at.
    evaluated_until: int | None = None
    #: Commits made so far; names this partition's Parquet files.
    commit_seq: int = 0
    profiles: dict[str, DayProfile] = field(default_factory=dict)
    detectors: dict[str, DetectorState] = field(default_factory=dict)
    #: Committed chunks of remembered ids, by hour bucket of event time.
    seen_chunks: dict[int, list[bytes]] = field(default_factory=dict)
    # -- since the last commit --
    #: Ids counted since the last commit -> (hour bucket of event time, digest).
    new_ids: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Ids of a commit being made durable behind the processing (a replay's commits):
    #: maybe not in the store yet, so de-duplication looks here too until it is.
    in_flight_ids: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Hour buckets whose chunks that commit deletes (expired): their ids, maybe still in
    #: the store, are forgotten already, as they are after a commit made in line.
    in_flight_expired: frozenset[int] = frozenset()
    dirty_profiles: set[str] = field(default_factory=set)
    dirty_detectors: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, partition: int, store: LocalStore) -> PartitionState:
        state = cls(partition)
        meta = store.get(META)
        if meta is not None:
            values = orjson.loads(meta)
            state.applied_offset = values["applied_offset"]
            state.stream_ts = values["stream_ts"]
            state.recent = values.get("recent", [])
            state.evaluated_until = values["evaluated_until"]
            state.commit_seq = values["commit_seq"]
        for key, value in store.items(PROFILE):
            state.profiles[key[1:].decode()] = orjson.loads(value)
        for key, value in store.items(DETECTOR):
            # Any version's JSON: an older one's state has fewer keys.
            state.detectors[key[1:].decode()] = DetectorState.from_dict(orjson.loads(value))
        for key in store.keys(SEEN_CHUNK):
            bucket = int(key[1:].split(b"|", 1)[0])
            state.seen_chunks.setdefault(bucket, []).append(key)
        return state

    @property
    def dirty(self) -> bool:
        return bool(self.new_ids or self.dirty_profiles or self.dirty_detectors)

    def changes(
        self, *, commit_seq: int, horizon_s: float, retention_days: int
    ) -> tuple[list[Change], list[int], list[str]]:
        """Changelog records for everything changed since the last commit, stamped by a
        meta record with the new applied offset; plus the id buckets and profile keys this
        commit expires (by event time: ids past the de-duplication horizon, day profiles
        past the retention), for :meth:`committed` to drop from memory."""
        records: list[Change] = [
            (PROFILE + key.encode(), orjson.dumps(self.profiles[key])) for key in sorted(self.dirty_profiles)
        ]
        records += [
            (DETECTOR + key.encode(), orjson.dumps(self.detectors[key].to_dict()))
            for key in sorted(self.dirty_detectors)
        ]
        expired_buckets: list[int] = []
        expired_profiles: list[str] = []
        new_ids = self.new_ids
        if self.stream_ts is not None:
            # Every id older than the horizon would now be refused as too late, so it can go,
            # and one that is already that old when first committed (a commit spanning more
            # than the horizon, as a replay's) is not written at all.
            cutoff = int((self.stream_ts - horizon_s) // HOUR)
            new_ids = {i: entry for i, entry in new_ids.items() if entry[0] >= cutoff}
            # Forgotten here as in the store (a commit made behind looks them up in flight).
            self.new_ids = new_ids
            expired_buckets = sorted(b for b in self.seen_chunks if b < cutoff)
            records += [(key, None) for b in expired_buckets for key in self.seen_chunks[b]]
            oldest_day = datetime.fromtimestamp(self.stream_ts, UTC).date() - timedelta(days=retention_days)
            expired_profiles = sorted(k for k in self.profiles if _profile_day(k) < oldest_day)
            records += [(PROFILE + key.encode(), None) for key in expired_profiles]
        records += list(_id_chunks(new_ids, commit_seq))
        meta = {
            "applied_offset": self.applied_offset,
            "stream_ts": self.stream_ts,
            "recent": list(self.recent),
            "evaluated_until": self.evaluated_until,
            "commit_seq": commit_seq,
        }
        records.append((META, orjson.dumps(meta)))
        return records, expired_buckets, expired_profiles

    def committed(
        self,
        records: list[Change],
        commit_seq: int,
        expired_buckets: list[int],
        expired_profiles: list[str],
        *,
        behind: bool = False,
    ) -> None:
        """The records of :meth:`changes` are durable (or, ``behind``, being made durable
        while processing goes on: their ids stay in ``in_flight_ids`` until :meth:`durable`):
        start the next commit from here."""
        self.commit_seq = commit_seq
        for bucket in expired_buckets:
            self.seen_chunks.pop(bucket, None)
        for key in expired_profiles:
            self.profiles.pop(key, None)
        for key, value in records:
            if key.startswith(SEEN_CHUNK) and value is not None:
                bucket = int(key[1:].split(b"|", 1)[0])
                self.seen_chunks.setdefault(bucket, []).append(key)
        if behind:
            self.in_flight_ids, self.new_ids = self.new_ids, {}
            self.in_flight_expired = frozenset(expired_buckets)
        else:
            self.new_ids.clear()
        self.dirty_profiles.clear()
        self.dirty_detectors.clear()

    def durable(self) -> None:
        """The commit made behind is in the store: its ids are found there now (and the
        ids it expired are gone from it)."""
        self.in_flight_ids = {}
        self.in_flight_expired = frozenset()


def _id_chunks(new_ids: dict[str, tuple[int, str]], commit_seq: int) -> Iterator[Change]:
    by_bucket: dict[int, list[str]] = {}
    for event_id, (bucket, digest) in new_ids.items():
        by_bucket.setdefault(bucket, []).append(f"{event_id} {digest}")
    for bucket in sorted(by_bucket):
        ids = by_bucket[bucket]
        for n, start in enumerate(range(0, len(ids), SEEN_CHUNK_IDS)):
            key = SEEN_CHUNK + f"{bucket:010d}|{commit_seq:010d}|{n:05d}".encode()
            yield key, "\n".join(ids[start : start + SEEN_CHUNK_IDS]).encode()


def _profile_day(key: str) -> date:
    return parse_profile_key(key)[2]
