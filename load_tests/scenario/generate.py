"""Draw the stream: valid, late, duplicate and invalid records in simulated arrival order.

:class:`Scenario` walks the window one local day at a time. Each (checkpoint, local day)
has its own seeded random stream, so two runs give the same bytes and shrinking the
scenario (fewer checkpoints, ``other_scale``) never changes the traffic that remains.
The manifest is filled as the records pass, so only a day of pending arrivals is held.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path

from load_tests.scenario.invalid import INVALID_REASONS, invalid_payload
from load_tests.scenario.local_time import (
    UTC_FORM_SHARE,
    day_start_epoch,
    hour_slots,
    slow_local_time,
    utc_form,
)
from load_tests.scenario.manifest import CountKey, GroupKey, Manifest
from load_tests.scenario.model import DIRECTIONS, CheckpointModel
from load_tests.scenario.spec import ScenarioSpec, load_checkpoints

RECORD_KINDS = ("valid", "late", "duplicate", "invalid")

# Day-to-day level noise: Poisson(level * Gamma(k, 1/k)) is a negative binomial; k=150
# gives ~8% extra spread on big checkpoints, on top of the weekday rhythm.
_DAY_NOISE_SHAPE = 150.0
# How long a normal event takes from the post to the broker, in seconds (exponential).
_MEAN_UPLINK_LAG = 1.5
# Late events: a post that lost its link uploads the backlog 1-6 hours later.
_LATE_DELAY = (3600.0, 6 * 3600.0)
# Duplicates: the sensor retries after a lost acknowledgement.
_DUPLICATE_DELAY = (0.2, 30.0)


@dataclass(slots=True)
class GeneratedRecord:
    """One Kafka message as the border network would send it, plus what it really is."""

    key: bytes
    value: bytes
    kind: str  # "valid" | "late" | "duplicate" | "invalid"
    arrival_ts: float  # simulated arrival, seconds since the epoch; ascending in a stream
    invalid_reason: str | None = None


def _poisson(rng: random.Random, lam: float) -> int:
    """Stdlib has no Poisson sampler before 3.12; normal approximation is fine above 30."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, count, product = math.exp(-lam), 0, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


class Scenario:
    """One run of the generator: iterate :meth:`records`, then read :attr:`manifest`.

    The manifest is filled while the records stream past (nothing is kept in memory
    besides a day of pending arrivals), so it only exists once the iteration is done.
    """

    def __init__(self, spec: ScenarioSpec | None = None) -> None:
        self.spec = spec or ScenarioSpec()
        reference = load_checkpoints()
        self._models = [CheckpointModel(reference[c], self.spec) for c in self.spec.checkpoints]
        self._manifest: Manifest | None = None
        self._started = False
        self._next_seq = 0

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            raise RuntimeError("the manifest exists once records() has been fully consumed")
        return self._manifest

    def records(self) -> Iterator[GeneratedRecord]:
        """Yield the stream in simulated arrival order, one local day at a time.

        Records that arrive after the next day has begun (late uploads, retries around
        midnight) are held back and merged in at their arrival time; a record is only
        released once no checkpoint can still produce anything earlier.
        """
        if self._started:
            raise RuntimeError("a Scenario can be iterated once; create a new one")
        self._started = True
        spec = self.spec
        sent = dict.fromkeys(RECORD_KINDS, 0)
        expected: dict[CountKey, int] = {}
        by_group: dict[GroupKey, int] = {}
        reasons: dict[str, int] = {}
        pending: list[tuple[float, int, bytes, bytes, str, str | None]] = []
        for offset in range(spec.days):
            local_day = spec.start + timedelta(days=offset)
            day_iso = local_day.isoformat()
            for model in self._models:
                for direction in DIRECTIONS:
                    expected.setdefault((model.checkpoint_id, day_iso, direction), 0)
                self._checkpoint_day(model, local_day, pending, expected, by_group)
            next_day = local_day + timedelta(days=1)
            watermark = min(day_start_epoch(m.zone, next_day) for m in self._models)
            pending.sort()
            cut = bisect.bisect_left(pending, (watermark,))
            ready, pending = pending[:cut], pending[cut:]
            for arrival, _, key, value, kind, reason in ready:
                sent[kind] += 1
                if reason is not None:
                    reasons[reason] = reasons.get(reason, 0) + 1
                yield GeneratedRecord(key, value, kind, arrival, reason)
        pending.sort()
        for arrival, _, key, value, kind, reason in pending:
            sent[kind] += 1
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + 1
            yield GeneratedRecord(key, value, kind, arrival, reason)
        self._manifest = Manifest(
            spec=spec.summary(),
            sent=sent,
            expected_counts=expected,
            by_group=by_group,
            anomalies=spec.anomalies or (),
            invalid_reasons=dict(sorted(reasons.items())),
            anomaly_baselines={
                a.name: sum(m.group_rate(a) for m in self._models) for a in spec.anomalies or ()
            },
        )

    def _checkpoint_day(
        self,
        model: CheckpointModel,
        local_day: date,
        pending: list[tuple[float, int, bytes, bytes, str, str | None]],
        expected: dict[CountKey, int],
        by_group: dict[GroupKey, int],
    ) -> None:
        """Generate one checkpoint's local day; its own seeded stream keeps it stable."""
        spec = self.spec
        checkpoint_id = model.checkpoint_id
        rng = random.Random(f"{spec.seed}:{checkpoint_id}:{local_day.isoformat()}")
        rnd = rng.random
        log = math.log
        uniform = rng.uniform
        slots = hour_slots(model.zone, local_day)
        key = checkpoint_id.encode()
        id_prefix = f"{checkpoint_id}-s{spec.seed}-{local_day:%Y%m%d}-"
        head = '{"version":1,"event_id":"'
        cp_part = f'","checkpoint_id":"{checkpoint_id}","direction":"'
        with_millis = model.kind == "airport"
        late_rate, dup_rate, invalid_rate = spec.late_rate, spec.duplicate_rate, spec.invalid_rate
        day_iso = local_day.isoformat()
        seq_base = self._next_seq  # tie-breaker only: unique, deterministic
        serial = 0
        append = pending.append
        for direction in DIRECTIONS:
            rates = model.rates(direction, local_day)
            level = sum(rates) * rng.gammavariate(_DAY_NOISE_SHAPE, 1.0 / _DAY_NOISE_SHAPE)
            count = _poisson(rng, level)
            if count == 0:
                continue
            cells = model.cells[direction]
            picks = rng.choices(range(len(cells)), cum_weights=list(accumulate(rates)), k=count)
            hours = rng.choices(range(24), cum_weights=model.hour_cum, k=count)
            seconds = sorted(hour * 3600 + int(rnd() * 3600) for hour in hours)
            cell_counts = [0] * len(cells)
            dir_part = direction + '","occurred_at":"'
            for cell_index, second_of_day in zip(picks, seconds, strict=True):
                cell = cells[cell_index]
                serial += 1
                event_id = f"{id_prefix}{serial:06d}"
                hour, within = divmod(second_of_day, 3600)
                millis_int = int(rnd() * 1000) if with_millis else 0
                millis = f".{millis_int:03d}" if with_millis else ""
                slot = slots[hour]
                if slot.uniform:
                    epoch = slot.epoch0 + within
                    if rnd() < UTC_FORM_SHARE:
                        occurred_at = utc_form(epoch, millis)
                    else:
                        minute, second = divmod(within, 60)
                        occurred_at = f"{slot.prefix}{minute:02d}:{second:02d}{millis}{slot.suffix}"
                    cell_counts[cell_index] += 1
                else:
                    epoch, occurred_at, actual_day = slow_local_time(
                        rng, model.zone, local_day, hour, within, millis
                    )
                    group = (checkpoint_id, actual_day, direction, cell.nationality, cell.purpose)
                    by_group[group] = by_group.get(group, 0) + 1
                    count_key = (checkpoint_id, actual_day, direction)
                    expected[count_key] = expected.get(count_key, 0) + 1
                value = (f'{head}{event_id}{cp_part}{dir_part}{occurred_at}",{cell.fragment}}}').encode()
                occurred = epoch + millis_int / 1000.0
                if rnd() < late_rate:
                    arrival = occurred + uniform(*_LATE_DELAY)
                    append((arrival, seq_base + serial * 4, key, value, "late", None))
                else:
                    arrival = occurred - _MEAN_UPLINK_LAG * log(1.0 - rnd())  # exponential
                    append((arrival, seq_base + serial * 4, key, value, "valid", None))
                if rnd() < dup_rate:
                    append(
                        (
                            arrival + uniform(*_DUPLICATE_DELAY),
                            seq_base + serial * 4 + 1,
                            key,
                            value,
                            "duplicate",
                            None,
                        )
                    )
                if rnd() < invalid_rate:
                    reason = INVALID_REASONS[int(rnd() * len(INVALID_REASONS))]
                    bad_key, bad_value = invalid_payload(
                        rng, reason, key, event_id, checkpoint_id, direction, occurred_at, epoch, cell
                    )
                    append(
                        (
                            occurred + uniform(0.1, 5.0),
                            seq_base + serial * 4 + 2,
                            bad_key,
                            bad_value,
                            "invalid",
                            reason,
                        )
                    )
            for cell_index, n in enumerate(cell_counts):
                if n:
                    cell = cells[cell_index]
                    group = (checkpoint_id, day_iso, direction, cell.nationality, cell.purpose)
                    by_group[group] = by_group.get(group, 0) + n
            count_key = (checkpoint_id, day_iso, direction)
            expected[count_key] = expected.get(count_key, 0) + sum(cell_counts)
        self._next_seq = seq_base + (serial + 1) * 4


def generate(spec: ScenarioSpec | None = None) -> Iterator[GeneratedRecord]:
    """The record stream alone, for callers that do not need the ground truth."""
    return Scenario(spec).records()


def build_manifest(spec: ScenarioSpec | None = None) -> Manifest:
    """Ground truth without keeping records: runs the generator and drops its output."""
    scenario = Scenario(spec)
    for _ in scenario.records():
        pass
    return scenario.manifest


def write_labels(
    path: str | Path, spec: ScenarioSpec | None = None, manifest: Manifest | None = None
) -> Manifest:
    """Write anomalies (what, where, when) and the expected totals as JSON.

    Pass the manifest of a run that already happened (e.g. a replay) to avoid generating
    the scenario a second time; otherwise it is built from ``spec``.
    """
    manifest = manifest or build_manifest(spec)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifest.to_json(), indent=1) + "\n", encoding="utf-8")
    return manifest
