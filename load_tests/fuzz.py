"""Hostile messages of every kind mixed into valid traffic, against one running worker.

    python -m load_tests.fuzz [--bad 50000] [--valid N] [--seed S] [--bootstrap host:port]
                              [--commit-interval C] [--home DIR] [--keep]

Starts its own embedded broker on a free port (unless ``--bootstrap``) and one
``crossings worker``, then produces ``--valid`` messages of scenario traffic (valid, late,
re-sent duplicates) with ``--bad`` hostile ones of every kind of ``load_tests/hostile.py``
spread among them, and knows for each hostile one the dead-letter reason it expects
(or, for a re-sent copy, that it is dropped as a duplicate). Once the consumer group has
committed every offset it checks:

- every bad message is on the dead-letter topic (``read_committed``) exactly once, found
  by the source partition and offset its headers carry, with the expected reason, its
  original key and bytes; and nothing else is there;
- every valid event is counted exactly once: ``events/`` rows == unique valid ids, no id
  twice, the ``daily_counts/`` sums == the oracle per checkpoint, local day and direction;
- the worker's metrics agree: processed == unique valid, duplicates == re-sent copies,
  dead-lettered per reason == expected;
- the worker never restarted: the same process (PID) served from start to end, and its
  log holds no traceback; it stops cleanly on SIGTERM.

Prints a table per kind and one JSON line of figures; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from load_tests import hostile
from load_tests.crash_test import (
    RECORDS_PER_DAY,
    lake_counts,
    lake_event_ids,
)
from load_tests.harness import WorkerProcess, broker_for, free_port, scrape, wait_committed
from load_tests.scenario import Scenario, ScenarioSpec
from streams.core.partitioning import partition_for
from streams.core.processor import CoreConfig
from streams.domain.registry import load_registry
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

#: Lines of a worker log that mean something went wrong inside it.
TROUBLE = re.compile(r"Traceback|crashed|Agent .* stopped|commit \d+ failed|CommitFailed|restarting", re.I)


@dataclass
class KindFigures:
    sent: int = 0
    dead_lettered: int = 0
    reason_ok: int = 0
    expected_dead_letters: int = 0


@dataclass
class FuzzRun:
    seed: int = 0
    bad_sent: int = 0
    valid_sent: int = 0
    bytes_sent: int = 0
    unique_valid_events: int = 0
    expected_duplicates: int = 0
    kinds: dict[str, KindFigures] = field(default_factory=dict)
    #: Expected reason -> count, and what the dead-letter topic holds per reason.
    expected_reasons: dict[str, int] = field(default_factory=dict)
    found_reasons: dict[str, int] = field(default_factory=dict)
    dead_letters_found: int = 0
    #: Bad messages with no dead letter, a wrong reason, a copy too many, changed bytes;
    #: dead letters of messages that were not bad (each: a few examples).
    missing_dead_letters: list[dict] = field(default_factory=list)
    wrong_reasons: list[dict] = field(default_factory=list)
    repeated_dead_letters: list[dict] = field(default_factory=list)
    altered_dead_letters: list[dict] = field(default_factory=list)
    unexpected_dead_letters: list[dict] = field(default_factory=list)
    event_rows: int = 0
    distinct_event_ids: int = 0
    missing_event_ids: list[str] = field(default_factory=list)
    unexpected_event_ids: list[str] = field(default_factory=list)
    doubled_event_ids: dict[str, int] = field(default_factory=dict)
    count_mismatches: dict[str, list[int]] = field(default_factory=dict)
    #: Per partition (its checkpoints' unique valid events): expected, counted once, missing,
    #: counted twice or more. Shows the other partitions exact even if one is held back.
    by_partition: dict[int, dict[str, int]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    metric_mismatches: dict[str, list[float]] = field(default_factory=dict)
    worker_pid: int = 0
    worker_pid_at_end: int | None = None
    worker_alive_at_end: bool = False
    worker_exit_code: int | None = None
    worker_trouble: list[str] = field(default_factory=list)
    not_drained: str = ""
    produce_seconds: float = 0.0
    drain_seconds: float = 0.0
    seconds: float = 0.0
    home: str = ""
    worker_log: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.not_drained
            and not self.missing_dead_letters
            and not self.wrong_reasons
            and not self.repeated_dead_letters
            and not self.altered_dead_letters
            and not self.unexpected_dead_letters
            and self.event_rows == self.distinct_event_ids == self.unique_valid_events
            and not self.missing_event_ids
            and not self.unexpected_event_ids
            and not self.doubled_event_ids
            and not self.count_mismatches
            and not self.metric_mismatches
            and self.worker_alive_at_end
            and self.worker_pid_at_end == self.worker_pid
            and self.worker_exit_code == 0
            and not self.worker_trouble
        )

    def figures(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        for name in ("missing_event_ids", "unexpected_event_ids"):
            data[name] = {"count": len(data[name]), "examples": data[name][:10]}
        data["doubled_event_ids"] = {
            "count": len(self.doubled_event_ids),
            "examples": dict(islice(self.doubled_event_ids.items(), 10)),
        }
        data["count_mismatches"] = {
            "count": len(self.count_mismatches),
            "examples": dict(islice(sorted(self.count_mismatches.items()), 10)),
        }
        data["kinds"] = {k: asdict(v) for k, v in self.kinds.items()}
        return data

    def table(self) -> str:
        lines = [
            f"{'kind':<20} {'sent':>8} {'expected DL':>12} {'dead-lettered':>14} {'reason ok':>10}",
            "-" * 68,
        ]
        for kind, f in self.kinds.items():
            lines.append(
                f"{kind:<20} {f.sent:>8} {f.expected_dead_letters:>12} "
                f"{f.dead_lettered:>14} {f.reason_ok:>10}"
            )
        dup = self.metrics.get("crossings_events_duplicate_total", 0)
        lines += [
            "-" * 68,
            f"bad sent {self.bad_sent}, valid traffic sent {self.valid_sent} "
            f"({self.unique_valid_events} unique events, "
            f"{self.expected_duplicates} re-sent copies incl. ours)",
            "per partition (expected / counted once / missing / doubled): "
            + ", ".join(
                f"p{p} {f['expected']}/{f['once']}/{f['missing']}/{f['doubled']}"
                for p, f in sorted(self.by_partition.items())
            ),
            f"dead letters found {self.dead_letters_found}; events/ rows {self.event_rows} "
            f"(distinct ids {self.distinct_event_ids}); duplicates metric {dup:.0f}",
            f"worker pid {self.worker_pid} -> {self.worker_pid_at_end} alive={self.worker_alive_at_end} "
            f"exit={self.worker_exit_code} trouble lines={len(self.worker_trouble)}",
            f"produce {self.produce_seconds}s, drain {self.drain_seconds}s, total {self.seconds}s: "
            + ("OK" if self.ok else "MISMATCH"),
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- traffic


def build_messages(
    bad: int, valid: int, seed: int, partitions: int, now_ms: int, horizon_s: float, max_skew_s: float
) -> list[hostile.Outgoing]:
    """Scenario traffic (without its own invalid messages) with the hostile ones mixed in."""
    days = max(2, math.ceil(valid / RECORDS_PER_DAY) + 2)
    traffic = Scenario(ScenarioSpec(days=days, seed=seed, invalid_rate=0.0)).records()
    return list(
        hostile.mix(
            traffic,
            bad=bad,
            valid=valid,
            partitions=partitions,
            seed=seed,
            now_ms=now_ms,
            horizon_s=horizon_s,
            max_skew_s=max_skew_s,
        )
    )


def oracle(messages: Sequence[hostile.Outgoing]) -> tuple[set[str], Counter]:
    """Unique valid event ids, and their count per (checkpoint, local day, direction)."""
    registry = load_registry()
    seen: set[str] = set()
    per_day: Counter = Counter()
    for m in messages:
        if m.kind not in ("valid", "late", *hostile.COUNTED_KINDS) or m.reason is not None:
            continue
        payload = json.loads(m.value)  # type: ignore[arg-type]
        if payload["event_id"] in seen:
            continue
        seen.add(payload["event_id"])
        tz = registry[payload["checkpoint_id"]].tz
        day = datetime.fromisoformat(payload["occurred_at"]).astimezone(tz).date()
        per_day[(payload["checkpoint_id"], day.isoformat(), payload["direction"])] += 1
    return seen, per_day


def _send_keyless_null(bootstrap: str, topic: str, partition: int) -> int:
    """One record with neither key nor value (Kafka clients refuse to send it through their
    ``send``; a batch built by hand goes), in a batch of its own; returns its offset."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def go() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            batch = producer.create_batch()
            batch.append(key=None, value=None, timestamp=None)
            batch.close()
            sent = await producer.send_batch(batch, topic, partition=partition)
            return (await sent).offset
        finally:
            await producer.stop()

    return asyncio.run(go())


class _Sent:
    """Where a message sent outside the producer went (as a future's ``get`` says)."""

    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset = partition, offset

    def get(self, timeout: float | None = None) -> _Sent:
        return self


def home_partitions(messages: Sequence[hostile.Outgoing], partitions: int) -> dict[str, int]:
    """event id -> the partition that counts it (its checkpoint's), for valid events."""
    homes = {}
    for m in messages:
        if m.reason is None and m.value and m.kind not in ("duplicate", "resent_duplicate"):
            event = json.loads(m.value)
            homes[event["event_id"]] = partition_for(event["checkpoint_id"].encode(), partitions)
    return homes


def produce(
    bootstrap: str, topic: str, messages: Sequence[hostile.Outgoing], say: Callable[[str], None]
) -> list[tuple[int, int]]:
    """Send in order (one request in flight: each partition gets them in this order);
    returns each message's (partition, offset). A message that must be alone in its record
    batch (``Outgoing.alone``: a bomb whose batch may be refused whole) has the producer
    flush before and after it."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        # Compressed, as many producers send: a compressed bomb (9 MiB of one letter) is
        # ~9 KB on the wire, so the topic's 1 MiB limit lets it through to the worker.
        compression_type="gzip",
        max_request_size=16 * 2**20,
        max_in_flight_requests_per_connection=1,
        retries=0,
        request_timeout_ms=120_000,
        delivery_timeout_ms=600_000,
        client_id="crossings-fuzz",
    )
    futures = []
    try:
        for n, m in enumerate(messages, 1):
            if m.alone:
                producer.flush(timeout=600)
            if m.key is None and m.value is None:
                futures.append(_Sent(m.partition, _send_keyless_null(bootstrap, topic, m.partition)))
            else:
                futures.append(
                    producer.send(
                        topic, key=m.key, value=m.value, partition=m.partition, timestamp_ms=m.timestamp_ms
                    )
                )
            if m.alone:
                producer.flush(timeout=600)
            if n % 20_000 == 0:
                say(f"  sent {n} of {len(messages)}")
        producer.flush(timeout=600)
        where = []
        for m, future in zip(messages, futures, strict=True):
            meta = future.get(timeout=60)
            assert meta.partition == m.partition
            where.append((meta.partition, meta.offset))
        return where
    finally:
        producer.close(timeout=30)


#: The worker's default CROSSINGS_DEAD_LETTER_MAX_BYTES.
DEAD_LETTER_MAX_BYTES = CoreConfig().dead_letter_max_bytes


def _same_message(record, m: hostile.Outgoing, offset: int) -> bool:
    """A dead letter holds the message it stands for: whole, or (cut to the dead-letter
    bound) its first bytes with the original size and SHA-256 in headers; a record batch
    refused whole (over the decompression bound) is named by its offsets and codec."""
    if m.refused_batch:
        return (
            _header(record, "crossings.dlq.batch.base.offset")
            == _header(record, "crossings.dlq.batch.last.offset")
            == str(offset)
            and _header(record, "crossings.dlq.batch.codec") == "gzip"
            and 0 < int(_header(record, "crossings.dlq.batch.compressed.size") or 0) < len(m.value or b"")
            and not record.value
            and record.key is None
        )
    if m.key is None and m.value is None:  # sent with an empty value (a record needs one)
        return record.key is None and not record.value
    size = _header(record, "crossings.dlq.original.size")
    if not size:
        return record.value == m.value and record.key == m.key
    key, value = m.key or b"", m.value or b""
    return (
        int(size) == len(key) + len(value)
        and _header(record, "crossings.dlq.original.sha256") == hashlib.sha256(value).hexdigest()
        and key.startswith(record.key or b"")
        and value.startswith(record.value or b"")
        and len(record.key or b"") + len(record.value or b"") <= DEAD_LETTER_MAX_BYTES
    )


def read_dead_letters(bootstrap: str, topic: str) -> list:
    """Every committed record of the dead-letter topic, up to its end offsets."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 2**20,
        fetch_max_bytes=64 * 2**20,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list = []
        idle_since = time.monotonic()
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            batch = consumer.poll(timeout_ms=1000, max_records=5000)
            got = [r for part in batch.values() for r in part]
            records += got
            if got:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 30:  # positions stop before a final marker
                break
        return records
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the run


def run(
    bootstrap: str,
    home: Path,
    *,
    bad: int = 50_000,
    valid: int = 150_000,
    seed: int = 1,
    commit_interval: float = 1.0,
    partitions: int = 4,
    drain_timeout: float = 1800.0,
    log: Callable[[str], None] | None = None,
    extra_env: dict[str, str] | None = None,
) -> FuzzRun:
    started = time.monotonic()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    result = FuzzRun(seed=seed, home=str(home))
    home.mkdir(parents=True, exist_ok=True)
    namespace = f"fuzz-{int(time.time())}-{free_port()}"
    env = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_PARTITIONS": str(partitions),
        "CROSSINGS_COMMIT_INTERVAL": str(commit_interval),
        # Weeks of event time pass in minutes here: while the worker catches up, one
        # partition can be days of event time ahead of another, so a valid event forwarded
        # from a mis-keyed partition would reach its own too late under the 72 h default
        # (a 26-day stream in 3 minutes). Live, that needs a backlog longer than the horizon
        # (README, "Keys"). The too_late kind is built against this horizon.
        "CROSSINGS_DEDUP_HORIZON_HOURS": "720",
        # Bombs are built on both sides of it (hostile.BATCH_BOUND).
        "CROSSINGS_MAX_BATCH_DECOMPRESSED_BYTES": str(hostile.BATCH_BOUND),
        **(extra_env or {}),
    }
    settings = load_settings(env)
    ensure_topics(settings)
    horizon_s = settings.core_config().dedup_horizon_s
    max_skew_s = settings.core_config().max_clock_skew_s

    # Future-stamped events carry this record timestamp: not ahead of the broker's clock.
    now_ms = int(time.time() * 1000) - 60_000
    messages = build_messages(bad, valid, seed, partitions, now_ms, horizon_s, max_skew_s)
    expected_ids, expected_counts = oracle(messages)
    result.unique_valid_events = len(expected_ids)
    result.expected_duplicates = hostile.expected_duplicates(messages)
    result.bad_sent = sum(1 for m in messages if m.kind in hostile.KINDS)
    result.valid_sent = len(messages) - result.bad_sent
    result.bytes_sent = sum(len(m.value or b"") for m in messages)
    result.kinds = {kind: KindFigures() for kind in hostile.KINDS}
    for m in messages:
        if m.kind in hostile.KINDS:
            result.kinds[m.kind].sent += 1
            result.kinds[m.kind].expected_dead_letters += m.reason is not None
    result.expected_reasons = dict(Counter(m.reason for m in messages if m.reason is not None))
    say(
        f"fuzz: {result.bad_sent} bad + {result.valid_sent} valid messages "
        f"({result.bytes_sent / 2**20:.0f} MiB), {partitions} partitions, in {home}"
    )

    worker = WorkerProcess(
        {**env, "CROSSINGS_DATA_DIR": str(settings.data_dir)}, free_port(), home / "worker.log"
    )
    result.worker_log = str(worker.log_path)
    try:
        worker.start(timeout=300)
        assert worker.process is not None
        result.worker_pid = worker.process.pid
        producing = time.monotonic()
        where = produce(bootstrap, settings.topics.events, messages, say)
        result.produce_seconds = round(time.monotonic() - producing, 1)
        say(f"  produced in {result.produce_seconds}s; waiting for the worker to commit everything")
        drain_started = time.monotonic()
        try:
            wait_committed(bootstrap, settings.app_id, settings.topics.events, timeout=drain_timeout)
        except TimeoutError as error:
            result.not_drained = str(error)
            say(f"  NOT DRAINED: {error}")
        result.drain_seconds = round(time.monotonic() - drain_started, 1)
        result.worker_alive_at_end = worker.process.poll() is None
        result.worker_pid_at_end = worker.process.pid if result.worker_alive_at_end else None
        if result.worker_alive_at_end:
            result.metrics = _metric_totals(worker.metrics_url)
    finally:
        result.worker_exit_code = worker.stop()
    result.worker_trouble = [
        line.strip()[:300]
        for line in worker.log_path.read_text(errors="replace").splitlines()
        if TROUBLE.search(line)
    ][:20]

    # -- dead letters ----------------------------------------------------------------------
    sent = {at: m for at, m in zip(where, messages, strict=True)}
    letters = read_dead_letters(bootstrap, settings.topics.dead_letter)
    result.dead_letters_found = len(letters)
    result.found_reasons = dict(Counter(_header(r, "crossings.dlq.reason") for r in letters))
    seen: Counter = Counter()
    for record in letters:
        at = (int(_header(record, "crossings.dlq.partition")), int(_header(record, "crossings.dlq.offset")))
        seen[at] += 1
        m = sent.get(at)
        reason = _header(record, "crossings.dlq.reason")
        note = {"partition": at[0], "offset": at[1], "reason": reason}
        if m is None or m.reason is None:
            result.unexpected_dead_letters.append({**note, "kind": m.kind if m else None})
            continue
        figures = result.kinds[m.kind]
        if seen[at] > 1:
            result.repeated_dead_letters.append({**note, "kind": m.kind})
            continue
        figures.dead_lettered += 1
        if reason == m.reason:
            figures.reason_ok += 1
        else:
            result.wrong_reasons.append(
                {
                    **note,
                    "kind": m.kind,
                    "variant": m.variant,
                    "expected": m.reason,
                    "detail": _header(record, "crossings.dlq.detail")[:300],
                }
            )
        if not _same_message(record, m, at[1]):
            result.altered_dead_letters.append({**note, "kind": m.kind})
    for at, m in sent.items():
        if m.reason is not None and not seen[at]:
            result.missing_dead_letters.append(
                {
                    "partition": at[0],
                    "offset": at[1],
                    "kind": m.kind,
                    "variant": m.variant,
                    "expected": m.reason,
                }
            )
    for name in (
        "missing_dead_letters",
        "wrong_reasons",
        "repeated_dead_letters",
        "altered_dead_letters",
        "unexpected_dead_letters",
    ):
        found = getattr(result, name)
        if found:
            say(f"  {name}: {len(found)}, e.g. {found[:3]}")

    # -- the lake --------------------------------------------------------------------------
    ids = lake_event_ids(settings.data_dir, settings.lake)
    result.event_rows = sum(ids.values())
    result.distinct_event_ids = len(ids)
    result.missing_event_ids = sorted(expected_ids - set(ids))
    result.unexpected_event_ids = sorted(set(ids) - expected_ids)
    result.doubled_event_ids = {i: n for i, n in sorted(ids.items()) if n > 1}
    homes = home_partitions(messages, partitions)
    for partition in range(partitions):
        mine = {i for i in expected_ids if homes.get(i) == partition}
        result.by_partition[partition] = {
            "expected": len(mine),
            "once": sum(1 for i in mine if ids.get(i) == 1),
            "missing": sum(1 for i in mine if i not in ids),
            "doubled": sum(1 for i in mine if ids.get(i, 0) > 1),
        }
    counts = lake_counts(settings.data_dir, settings.lake)
    result.count_mismatches = {
        " ".join(key): [counts.get(key, 0), expected_counts.get(key, 0)]
        for key in sorted(set(counts) | set(expected_counts))
        if counts.get(key, 0) != expected_counts.get(key, 0)
    }

    # -- the worker's own figures ----------------------------------------------------------
    if result.metrics:
        wanted = {
            "crossings_events_processed_total": result.unique_valid_events,
            "crossings_events_duplicate_total": result.expected_duplicates,
            "crossings_events_rekeyed_total": hostile.expected_rekeyed(messages, partitions),
            **{f"invalid[{r}]": n for r, n in result.expected_reasons.items()},
        }
        got = {**result.metrics, **{f"invalid[{r}]": n for r, n in result.metrics.get("invalid", {}).items()}}
        result.metric_mismatches = {
            name: [got.get(name, 0), n] for name, n in wanted.items() if got.get(name, 0) != n
        }
        extra = set(result.metrics.get("invalid", {})) - set(result.expected_reasons)
        result.metric_mismatches.update({f"invalid[{r}]": [result.metrics["invalid"][r], 0] for r in extra})
    else:
        result.metric_mismatches = {"scrape": [0, 1]}
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _header(record: Any, name: str) -> str:
    for key, value in record.headers or ():
        if key == name:
            return value.decode("utf-8", "replace")
    return ""


def _metric_totals(url: str) -> dict[str, Any]:
    from load_tests.harness import scrape_text

    totals = scrape(url)
    invalid: Counter = Counter()
    for match in re.finditer(
        r'^crossings_events_invalid_total\{reason="([^"]+)"\} (\S+)$', scrape_text(url), re.M
    ):
        invalid[match[1]] += int(float(match[2]))
    return {
        "crossings_events_processed_total": int(totals.get("crossings_events_processed_total", 0)),
        "crossings_events_duplicate_total": int(totals.get("crossings_events_duplicate_total", 0)),
        "crossings_events_invalid_total": int(totals.get("crossings_events_invalid_total", 0)),
        "crossings_events_rekeyed_total": int(totals.get("crossings_events_rekeyed_total", 0)),
        "invalid": dict(invalid),
    }


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bad", type=int, default=50_000, help="hostile messages, every kind about equally")
    parser.add_argument("--valid", type=int, default=150_000, help="messages of valid scenario traffic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: start one)")
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--home", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder even when all is well")
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="crossings-fuzz-"))
    shutil.rmtree(home / "run", ignore_errors=True)
    with broker_for(args.bootstrap, home / "kafka") as bootstrap:
        result = run(
            bootstrap,
            home / "run",
            bad=args.bad,
            valid=args.valid,
            seed=args.seed,
            commit_interval=args.commit_interval,
            partitions=args.partitions,
            drain_timeout=args.drain_timeout,
        )
    print(result.table())
    print(json.dumps(result.figures(), default=str, separators=(",", ":")))
    if result.ok and not args.keep and args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
