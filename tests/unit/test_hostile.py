"""The fuzz run's hostile messages (load_tests/hostile.py) get the verdicts they expect.

First each recipe judged on the value alone against ``EventDecoder``; then a whole mixed
stream through the core, partition by partition, checked as the fuzz run checks the
worker: every bad message dead-lettered once with its reason, every valid event counted
once, every re-sent copy dropped as a duplicate.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections import Counter
from datetime import UTC, datetime

import pytest
from samples import GOOD_EVENT

from load_tests import hostile
from load_tests.scenario import Scenario, ScenarioSpec
from streams.core.partitioning import checkpoints_by_partition
from streams.core.processor import CoreConfig, PartitionProcessor
from streams.core.records import RefusedBatch, SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import REASONS, EventDecoder, InvalidEvent
from streams.domain.registry import load_registry

REGISTRY = load_registry()
DECODER = EventDecoder(REGISTRY)
NOW_MS = round(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
PARTITIONS = 4


@pytest.mark.parametrize("kind", sorted(hostile.recipes()))
def test_each_recipe_gets_the_reason_it_expects_from_the_decoder(kind):
    recipe = hostile.recipes()[kind]
    rng = random.Random(kind)
    template = {**GOOD_EVENT, "occurred_at": "2024-03-01T09:15:03.123+05:00"}
    variants = set()
    for n in range(60 if kind == "huge_string" else 400):
        value, reason, variant = recipe(rng, template, b"zhibek-zholy", f"fz-{n}")
        variants.add(variant.split(":")[0])
        assert reason in REASONS
        [verdict] = DECODER.decode_all([value], [NOW_MS / 1000])
        assert isinstance(verdict, InvalidEvent), (kind, variant)
        assert verdict.reason == reason, (kind, variant, verdict.detail)
    assert len(variants) > 2


def test_a_mixed_stream_through_the_core_is_judged_as_the_fuzz_run_expects(tmp_path):
    traffic = Scenario(ScenarioSpec(days=3, invalid_rate=0.0)).records()
    messages = list(hostile.mix(traffic, bad=1500, valid=4000, partitions=PARTITIONS, seed=3, now_ms=NOW_MS))
    kinds = Counter(m.kind for m in messages)
    assert sum(kinds[k] for k in hostile.KINDS) == 1500
    assert all(kinds[k] >= 1500 // len(hostile.KINDS) - 3 for k in hostile.KINDS), kinds
    assert sum(kinds[k] for k in hostile.VALID_KINDS) == 4000

    owned = checkpoints_by_partition(REGISTRY, PARTITIONS)
    home = {cid: p for p, cids in owned.items() for cid in cids}
    offsets: Counter[int] = Counter()
    by_partition: dict[int, list[SourceRecord]] = {p: [] for p in range(PARTITIONS)}
    sent: dict[tuple[int, int], hostile.Outgoing] = {}
    for m in messages:
        offset = offsets[m.partition]
        offsets[m.partition] += 1
        stamp = m.timestamp_ms if m.timestamp_ms is not None else NOW_MS + offset
        value = m.value
        if m.refused_batch:  # what the reader hands over for a batch over the bound
            value = RefusedBatch(
                topic="events",
                partition=m.partition,
                base_offset=offset,
                last_offset=offset,
                compressed_size=len(gzip.compress(m.value or b"")),
                codec="gzip",
                limit=hostile.BATCH_BOUND,
            )
        by_partition[m.partition].append(SourceRecord(m.partition, offset, stamp, m.key, value))
        sent[(m.partition, offset)] = m

    letters, counted, duplicates, forwarded = {}, Counter(), 0, []
    for partition, records in by_partition.items():
        store = LocalStore(tmp_path / f"p{partition}")
        try:
            processor = PartitionProcessor(
                partition, PartitionState(partition), store, REGISTRY, owned[partition], DECODER, home=home
            )
            for start in range(0, len(records), 700):  # in batches, as the worker gets them
                processor.process(records[start : start + 700], datetime.fromtimestamp(NOW_MS / 1000, UTC))
            effects = processor.effects
            for letter in effects.dead_letters:
                assert (letter.partition, letter.offset) not in letters
                letters[(letter.partition, letter.offset)] = letter
            for rows in effects.events.values():
                counted.update(e.event_id for e in rows.events)
            duplicates += effects.metrics.duplicates
            forwarded += effects.forwards
            processor.prepare_commit()
        finally:
            store.close()

    expected = {at: m for at, m in sent.items() if m.reason is not None}
    wrong = {
        at: (m.kind, m.variant, m.reason, letters[at].reason if at in letters else None)
        for at, m in expected.items()
        if at not in letters or letters[at].reason != m.reason
    }
    assert wrong == {}
    assert set(letters) == set(expected)
    for at, m in expected.items():  # whole, or cut to the bound with the original's size and digest
        letter, key, value = letters[at], m.key or b"", m.value or b""
        if m.refused_batch:  # named by its offsets, no bytes kept
            assert letter.batch is not None and letter.batch.last_offset == at[1]
            assert letter.key is None and letter.value is None
        elif letter.original_size is None:
            assert (letter.key, letter.value) == (m.key, m.value)
        else:
            assert letter.original_size == len(key) + len(value) > CoreConfig().dead_letter_max_bytes
            assert letter.sha256 == hashlib.sha256(value).hexdigest()
            assert key.startswith(letter.key or b"") and value.startswith(letter.value or b"")
            assert len(letter.key or b"") + len(letter.value or b"") <= CoreConfig().dead_letter_max_bytes
    bombs = [m for m in expected.values() if m.kind == "compressed_bomb"]
    near = [m for m in messages if m.kind == "near_event_limit"]
    assert bombs and {m.reason for m in near} == {None, "oversize"}
    # bombs on both sides of the decompression bound; messages on both sides of the
    # dead-letter bound, under each kind of key; records with neither key nor value
    assert {m.refused_batch for m in bombs} == {True, False}
    letter_sizes = [
        (
            m.variant.split(",")[0],
            len(m.key or b"") + len(m.value or b"") > CoreConfig().dead_letter_max_bytes,
        )
        for m in messages
        if m.kind == "near_letter_limit"
    ]
    assert set(letter_sizes) == {
        (how, cut) for how in ("right key", "wrong key", "null key") for cut in (True, False)
    }
    assert any(m.key is None and m.value is None for m in expected.values())
    valid_ids = {
        json.loads(m.value)["event_id"] for m in messages if m.kind in ("valid", "late", "stamped_now")
    }
    # Valid events under a null or another checkpoint's key: counted where they landed if
    # that is their checkpoint's partition, else forwarded there (not counted here).
    # (Valid events padded near the event bound count as such when they or their copy fit.)
    miskeyed = [
        m
        for m in messages
        if m.kind in hostile.MISKEYED_KINDS or (m.kind == "near_event_limit" and m.reason is None)
    ]
    assert len(forwarded) == hostile.expected_rekeyed(messages, PARTITIONS) > 0
    assert {json.loads(f.value)["event_id"] for f in forwarded} | {
        json.loads(m.value)["event_id"]
        for m in miskeyed
        if m.partition == home[json.loads(m.value)["checkpoint_id"]]
    } == {json.loads(m.value)["event_id"] for m in miskeyed}
    assert all(f.home == home[f.checkpoint_id] != f.partition for f in forwarded)
    landed_home = {
        json.loads(m.value)["event_id"]
        for m in miskeyed
        if m.partition == home[json.loads(m.value)["checkpoint_id"]]
    }
    assert set(counted) == valid_ids | landed_home and max(counted.values()) == 1
    assert duplicates == hostile.expected_duplicates(messages)
