"""No record and no fault stops more than its own partition.

A record whose output the broker refuses, a lake or state write that fails, a partition
that cannot be opened: each holds back its own partition only, while the other keeps
counting and committing; an operator's skip (through the quarantine board, as
``crossings quarantine skip`` writes it) moves a blocking record to the dead letters in
the next commit, exactly once. Bounded dead letters and forwards: no message the worker
writes exceeds the settings' bounds. The fake Kafka of ``test_guard`` keeps what a real
one would; the oracle is brute force over what was sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

from test_core import REGISTRY, make_records, oracle, read_lake
from test_guard import FakeKafka, FakeOutputs, Process, split

from streams.core.faults import OutputRefused, classify
from streams.core.processor import CoreConfig, PartitionProcessor
from streams.core.records import SourceRecord
from streams.core.state import PartitionState
from streams.core.store import LocalStore
from streams.domain.event import EventDecoder
from streams.worker.guard import Membership
from streams.worker.quarantine import QuarantineBoard

#: What the fake broker takes per message (its max.message.bytes).
BROKER_LIMIT = 4096


class SizeLimitedOutputs(FakeOutputs):
    """A broker whose dead-letter topic takes messages of at most ``BROKER_LIMIT`` bytes:
    a larger dead letter is refused, naming its record (as ``KafkaOutputs`` does)."""

    async def publish(self, batch, write_files):
        for letter in batch.dead_letters:
            size = len(letter.key or b"") + len(letter.value or b"")
            if size > BROKER_LIMIT:
                raise OutputRefused(batch.partition, letter.offset, "dead letter", size, _TooLarge(size))
        return await super().publish(batch, write_files)


class _TooLarge(Exception):
    """Named as aiokafka's error is, so ``core.faults`` recognises it."""


_TooLarge.__name__ = "MessageSizeTooLargeError"


def records_with_a_blocker(blocker_size: int) -> tuple[list[SourceRecord], SourceRecord]:
    records = make_records([(n, n % 8, n * 7, n % 2) for n in range(80)])
    # An invalid message of partition 0, larger than the broker takes: its dead letter is refused.
    at = next(i for i, r in enumerate(records) if r.partition == 0 and r.offset == 12)
    blocker = records[at]._replace(value=b"x" * blocker_size)
    records[at] = blocker
    return records, blocker


def test_a_record_the_broker_refuses_quarantines_its_partition_only_until_skipped(tmp_path):
    records, blocker = records_with_a_blocker(3 * BROKER_LIMIT)
    by_partition = split(records)
    board = QuarantineBoard(tmp_path / "quarantine")

    async def go():
        kafka = FakeKafka()
        from test_guard import Clock

        clock = Clock()
        a = Process("a", tmp_path, kafka, clock)
        # Dead letters bounded above what this broker takes (a topic altered while running).
        a.engine.config = a.engine.config.__class__(
            a.engine.config.partitions,
            a.engine.config.state_dir,
            commit_interval=1e9,
            core=CoreConfig(dead_letter_max_bytes=8 * BROKER_LIMIT, max_event_bytes=16 * BROKER_LIMIT),
        )
        a.outputs = a.engine.outputs = SizeLimitedOutputs(kafka, "a")
        a.worker.board = board
        a.view = Membership(1, frozenset({0, 1}))
        a.positions = {0: 0, 1: 0}
        for _ in range(3):  # everything fetched; partition 0 stays held, partition 1 goes on
            a.fetch(by_partition, 15)
            await a.deliver()
            await a.commit()
            clock.now += 100
            await a.worker.tick()
        held = a.worker.held[0]
        quarantined = board.held()
        readiness = a.worker.readiness()
        committed_while_held = dict(kafka.committed)
        # The operator's move, as `crossings quarantine skip` makes it; the timer carries it out.
        board.request_skip(0, blocker.offset, "test")
        await a.worker.tick()
        for _ in range(3):
            a.fetch(by_partition, 100)
            await a.deliver()
        await a.commit()
        return kafka, a, held, quarantined, readiness, committed_while_held

    kafka, a, held, quarantined, readiness, committed_while_held = asyncio.run(go())
    # While held: partition 1 counted everything, partition 0 nothing past its last commit.
    assert held.kind == "record" and held.quarantined and held.offset == blocker.offset
    assert committed_while_held[1] == len(by_partition[1])
    assert committed_while_held[0] <= blocker.offset
    assert [q.partition for q in quarantined] == [0] and quarantined[0].offset == blocker.offset
    assert "crossings quarantine skip --partition 0 --offset 12" in quarantined[0].hint
    assert readiness.held[0]["partition"] == 0 and readiness.held[0]["cause"] == "record"
    sample = a.worker.metrics.registry.get_sample_value
    assert (
        sample("crossings_partition_quarantined", {"partition": "0", "cause": "record"}) is None
    )  # released
    # After the skip: the blocker is a dead letter once, cut, with its size and digest.
    assert kafka.committed == {p: len(rs) for p, rs in by_partition.items()}
    skipped = [d for d in kafka.dead_letters if d.reason == "skipped"]
    assert [(d.partition, d.offset) for d in skipped] == [(0, blocker.offset)]
    assert skipped[0].original_size == len(blocker.key) + len(blocker.value)
    assert skipped[0].sha256 == hashlib.sha256(blocker.value).hexdigest()
    assert len(skipped[0].value or b"") + len(skipped[0].key or b"") <= 1024
    offsets = [(d.partition, d.offset) for d in kafka.dead_letters]
    assert len(offsets) == len(set(offsets))
    assert board.held() == [] and board.skip_requests() == {}
    # Everything else counted exactly once.
    kept = [r for r in records if r is not blocker]
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(kept).values())
    assert +counts == oracle(kept)


def test_a_partition_that_cannot_be_opened_does_not_stop_the_other(tmp_path):
    records = make_records([(n, n % 8, n * 7, n % 2) for n in range(60)])
    by_partition = split(records)

    class BrokerAwayForPartition0(FakeOutputs):
        away = 2

        async def open_partition(self, partition):
            if partition == 0 and self.away:
                self.away -= 1
                raise ConnectionError("broker unreachable (injected)")
            await super().open_partition(partition)

    async def go():
        from test_guard import Clock

        kafka, clock = FakeKafka(), Clock()
        a = Process("a", tmp_path, kafka, clock)
        a.outputs = a.engine.outputs = BrokerAwayForPartition0(kafka, "a")
        a.view = Membership(1, frozenset({0, 1}))
        a.positions = {0: 0, 1: 0}
        a.fetch(by_partition, 10)
        await a.deliver()
        await a.commit()
        first = (dict(kafka.committed), dict(a.worker.held))
        for _ in range(4):
            clock.now += 5
            await a.worker.tick()
            a.fetch(by_partition, 100)
            await a.deliver()
        await a.commit()
        return kafka, first

    kafka, (committed, held) = asyncio.run(go())
    assert committed == {0: 0, 1: 10} and held[0].kind == "broker" and not held[0].quarantined
    assert kafka.committed == {p: len(rs) for p, rs in by_partition.items()}
    event_ids, counts, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())
    assert +counts == oracle(records)


def test_a_commit_made_in_kafka_is_not_sent_again_when_the_store_write_after_it_fails(tmp_path):
    """The transaction commits, then the local store write fails, and so does the
    changelog catch-up a recovery would try: the retry writes the store only."""
    records = make_records([(n, n % 8, n * 7, n % 2) for n in range(60)])
    by_partition = split(records)
    failures = {"left": 0}
    original_apply = LocalStore.apply

    def flaky_apply(self, changes, changelog_offset):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(28, "No space left on device (injected into the state volume)")
        return original_apply(self, changes, changelog_offset)

    async def go():
        from test_guard import Clock

        kafka, clock = FakeKafka(), Clock()
        a = Process("a", tmp_path, kafka, clock)
        a.view = Membership(1, frozenset({0, 1}))
        a.positions = {0: 0, 1: 0}
        a.fetch(by_partition, 100)
        await a.deliver()
        LocalStore.apply = flaky_apply
        try:
            failures["left"] = 3  # the write after the commit, the recovery's, the first retry's
            await a.commit()
            changelog_after_first = {p: len(c) for p, c in kafka.changelog.items()}
            for _ in range(4):
                clock.now += 10
                await a.worker.tick()
        finally:
            LocalStore.apply = original_apply
        await a.commit()
        return kafka, a, changelog_after_first

    kafka, a, changelog_after_first = asyncio.run(go())
    assert not a.worker.failing
    # Each dead letter once; the changelog holds each commit once.
    offsets = [(d.partition, d.offset) for d in kafka.dead_letters]
    invalid = sorted((r.partition, r.offset) for r in records if r.value.startswith(b'{"event_id": "broken'))
    assert sorted(offsets) == invalid
    assert {p: len(c) for p, c in kafka.changelog.items()} == changelog_after_first
    event_ids, _, _ = read_lake(tmp_path / "data")
    assert len(event_ids) == len(set(event_ids)) == sum(oracle(records).values())


def _processor(tmp_path, **config) -> PartitionProcessor:
    store = LocalStore(tmp_path / "store")
    core = CoreConfig(**config)
    return PartitionProcessor(
        0,
        PartitionState.load(0, store),
        store,
        REGISTRY,
        [cid for cid in REGISTRY],
        EventDecoder(REGISTRY),
        core,
    )


def test_dead_letters_never_exceed_their_bound_and_say_what_was_cut(tmp_path):
    processor = _processor(tmp_path, max_event_bytes=2048, dead_letter_max_bytes=1500)
    bomb = b"\x1f" * (9 * 2**20)  # what a 9 KB gzip message of 9 MiB decompresses to
    big_key = b"k" * 5000
    records = [
        SourceRecord(0, 0, 0, b"jibek-joly", bomb),
        SourceRecord(0, 1, 0, big_key, b"not json"),
        SourceRecord(0, 2, 0, None, b"{}"),
    ]
    processor.process(records, datetime.now(UTC))
    letters = {d.offset: d for d in processor.effects.dead_letters}
    assert letters[0].reason == "oversize" and "9,437,184 bytes" in letters[0].detail
    assert letters[0].original_size == len(b"jibek-joly") + len(bomb)
    assert letters[0].sha256 == hashlib.sha256(bomb).hexdigest()
    assert letters[1].reason == "malformed_json" and letters[1].original_size == 5000 + 8
    assert letters[2].original_size is None and letters[2].value == b"{}"  # small: whole
    for letter in letters.values():
        assert len(letter.key or b"") + len(letter.value or b"") <= 1500
    assert processor.effects.metrics.invalid["oversize"] == 1


def _forwarding_processor(tmp_path, **config) -> PartitionProcessor:
    """Partition 0's processor, owning every checkpoint but korday (partition 1's)."""
    home = {cid: (0 if cid != "korday" else 1) for cid in REGISTRY}
    store = LocalStore(tmp_path / "store")
    return PartitionProcessor(
        0,
        PartitionState.load(0, store),
        store,
        REGISTRY,
        [c for c, p in home.items() if p == 0],
        EventDecoder(REGISTRY),
        CoreConfig(**config),
        home,
    )


def test_a_forward_that_would_exceed_the_event_bound_is_dead_lettered(tmp_path):
    processor = _forwarding_processor(tmp_path, max_event_bytes=2048)
    from samples import event_bytes

    now = datetime.now(UTC)
    small = event_bytes("ev-small", now, checkpoint_id="korday")
    padded = json.loads(event_bytes("ev-big", now, checkpoint_id="korday"))
    raw = json.dumps(padded).encode()
    raw = raw[:-1] + b" " * (2048 - len(raw) - 10) + b"}"  # valid, just under the bound
    assert len(raw) <= 2048
    processor.process([SourceRecord(0, 0, 0, b"wrong", small), SourceRecord(0, 1, 0, None, raw)], now)
    assert [f.offset for f in processor.effects.forwards] == [0]
    (letter,) = processor.effects.dead_letters
    assert letter.offset == 1 and letter.reason == "oversize" and "not forwarded" in letter.detail


def test_faults_are_told_apart():
    assert classify(OSError(28, "No space left on device")) == "storage"
    assert classify(OSError(30, "Read-only file system")) == "storage"
    assert classify(ConnectionError("refused")) == "broker"
    assert classify(_TooLarge("too large")) == "record"
    assert classify(OutputRefused(0, 1, "dead letter", 10, _TooLarge("x"))) == "record"
    assert classify(RuntimeError("IO error: No space left on device")) == "storage"
    assert classify(ValueError("what")) == "unknown"


def test_a_lake_service_away_is_storage_not_a_record():
    """DuckDB's own errors when the object store or the catalog's server is away (their
    messages as DuckDB 1.5.5 words them): the partition waits for the service; no operator
    is told to move a record aside."""
    import duckdb

    s3 = duckdb.IOException(
        "IO Error: Could not connect to server error for HTTP PUT to 'http://127.0.0.1:1/x'"
    )
    pg = duckdb.IOException('IO Error: Unable to connect to Postgres at "host=127.0.0.1": Connection refused')
    http = duckdb.HTTPException("HTTP Error: Unable to connect to URL: 503 (Service Unavailable)")
    for error in (s3, pg, http):
        assert classify(error) == "storage", error
        wrapped = RuntimeError("partition 0: commit 3 failed")
        wrapped.__cause__ = error
        assert classify(wrapped) == "storage"
    assert classify(duckdb.TransactionException("conflict")) == "unknown"
    # The catalog's server crashing mid-query: DuckDB wraps libpq's words in other classes.
    crashed = duckdb.BinderException(
        "Binder Error: Failed to get extended data file list from DuckLake: Failed to prepare "
        'query "SELECT data_file_id FROM ducklake_file_column_stats": server closed the '
        "connection unexpectedly\n\tThis probably means the server terminated abnormally"
    )
    recovering = duckdb.InvalidInputException(
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is '
        "in recovery mode"
    )
    for error in (crashed, recovering):
        assert classify(error) == "storage", error
    # The words alone, from no DuckDB error, or another DuckDB error: not the lake's outage.
    assert classify(ValueError("server closed the connection unexpectedly")) == "unknown"
    assert classify(duckdb.BinderException("Binder Error: column x not found")) == "unknown"


def test_records_handed_over_twice_in_one_batch_are_applied_once(tmp_path):
    """Around a seek back, records fetched before it and their re-read copies can come in
    one batch: each offset is applied once (found in the crash test as a forwarded copy
    sent twice in one transaction)."""
    from samples import event_bytes

    processor = _forwarding_processor(tmp_path)
    now = datetime.now(UTC)
    first = [
        SourceRecord(0, 5, 0, b"zhibek-zholy", event_bytes("ev-5", now, checkpoint_id="zhibek-zholy")),
        SourceRecord(0, 6, 0, None, event_bytes("ev-6", now, checkpoint_id="korday")),  # forwarded
        SourceRecord(0, 7, 0, b"x", b"not json"),  # dead-lettered
    ]
    processor.process([*first, *first, first[2]], now)
    effects = processor.effects
    assert [f.offset for f in effects.forwards] == [6]
    assert [d.offset for d in effects.dead_letters] == [7]
    assert sum(len(rows) for rows in effects.events.values()) == 1
    assert effects.metrics.redelivered == 4 and processor.state.applied_offset == 7
