"""The detectors of one partition's checkpoints: made, paired and evaluated in one order.

Split out of the processor, which applies records; this holds what detection needs from
the partition's state (the day profiles, the saved detector states) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from streams.core.state import PartitionState
from streams.domain.counts import profile_key
from streams.domain.detect import POST_DIRECTION, Band, CheckpointDetector, DetectorConfig, Transition
from streams.domain.detect.evaluate import evaluate_step
from streams.domain.registry import Checkpoint, Registry

DIRECTIONS = ("entry", "exit")


class PartitionDetectors:
    def __init__(
        self,
        registry: Registry,
        own_checkpoints: Sequence[str],
        state: PartitionState,
        config: DetectorConfig,
    ) -> None:
        self.registry = registry
        self.own_checkpoints = tuple(sorted(own_checkpoints))
        self.state = state
        self.config = config
        self._detectors: dict[str, CheckpointDetector] = {}

    def get(self, checkpoint: Checkpoint, direction: str) -> CheckpointDetector:
        key = f"{checkpoint.checkpoint_id}|{direction}"
        detector = self._detectors.get(key)
        if detector is None:
            # A post's two directions are made together and paired (the first holds the
            # post-level episode) before either is evaluated: a direction evaluated unpaired
            # would open its own drop where the post's silence covers it, so a restart
            # (which makes them again) would raise other alerts than an uninterrupted run.
            pair = [self._make(checkpoint, one) for one in DIRECTIONS]
            pair[0].pair(pair[1])
            detector = self._detectors[key]
        return detector

    def _make(self, checkpoint: Checkpoint, direction: str) -> CheckpointDetector:
        key = f"{checkpoint.checkpoint_id}|{direction}"
        profiles = self.state.profiles
        cid = checkpoint.checkpoint_id
        detector = CheckpointDetector(
            checkpoint,
            direction,
            lambda day: profiles.get(profile_key(cid, direction, day)),
            self.config,
            state=self.state.detectors.get(key),
        )
        self._detectors[key] = detector
        return detector

    def step(self, as_of: datetime) -> Iterator[tuple[Checkpoint, str, list[Transition]]]:
        """Evaluate every owned checkpoint at ``as_of``: entry, exit, then the post as a
        whole (both directions silent), once both have been evaluated. Yields what each
        says, with the direction it speaks for (``both`` for the post)."""
        dirty = self.state.dirty_detectors
        for checkpoint_id in self.own_checkpoints:
            checkpoint = self.registry[checkpoint_id]
            post = [self.get(checkpoint, direction) for direction in DIRECTIONS]
            for direction, transitions in evaluate_step(post, as_of):
                if direction != POST_DIRECTION:  # the post's episode is its first direction's
                    # Its state is taken at the commit (``saved``), not after every evaluation.
                    dirty.add(f"{checkpoint_id}|{direction}")
                yield checkpoint, direction, transitions

    def save_dirty(self) -> None:
        """Put the state of every detector evaluated since the last commit into the state."""
        for key in self.state.dirty_detectors:
            self.state.detectors[key] = self._detectors[key].state()

    def bands(self) -> dict[tuple[str, str], Band]:
        """(checkpoint, direction) -> its running day's band at the last evaluation, for the
        band gauges. Read from the committed detector states (taken at each commit), so it
        costs one lookup per owned checkpoint and direction per commit, nothing per event."""
        found = {}
        for checkpoint_id in self.own_checkpoints:
            for direction in DIRECTIONS:
                saved = self.state.detectors.get(f"{checkpoint_id}|{direction}")
                if saved is not None and saved.band is not None:
                    found[(checkpoint_id, direction)] = saved.band
        return found

    def open_episodes(self) -> dict[tuple[str, str], str]:
        """(checkpoint, direction) -> kind of the open episode, for the alerts_open gauge."""
        found = {}
        for key, saved in self.state.detectors.items():
            checkpoint_id, direction = key.split("|")
            if saved.episode is not None:
                found[(checkpoint_id, direction)] = saved.episode.kind
            if saved.post_episode is not None:
                found[(checkpoint_id, POST_DIRECTION)] = saved.post_episode.kind
        return found
