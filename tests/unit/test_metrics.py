"""The worker's metrics: bulk histogram observation is exactly per-value observation; the
band, restore-progress and lag gauges hold what the data says, and leave with their partition."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_core import OWNED, PARTITIONS, REGISTRY, make_records
from test_guard import Clock, FakeKafka, Group, Process, split

from streams.core.records import SourceRecord
from streams.domain.detect import Band
from streams.worker.metrics import WorkerMetrics, observe_many

BUCKETS = (0.5, 1.0, 5.0, 30.0, 300.0)
amounts = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, *BUCKETS]),
    max_size=60,
)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("lag_seconds", "Lag.", buckets=BUCKETS, registry=registry)


def _without_created(exposition: bytes) -> list[bytes]:
    return [line for line in exposition.splitlines() if b"_created" not in line]


@given(st.lists(amounts, max_size=4))
def test_observe_many_equals_observing_one_by_one(commits):
    one_registry, one = _histogram()
    many_registry, many = _histogram()
    for values in commits:
        for value in values:
            one.observe(value)
        observe_many(many, values)
    assert _without_created(generate_latest(many_registry)) == _without_created(generate_latest(one_registry))


# -- the worker's gauges, through the guard: band, restore progress, consumer lag ---------------


def _samples(metrics: WorkerMetrics | bytes, name: str) -> dict[tuple[str, ...], float]:
    """{label values: value} of the samples called ``name``, in a registry or an exposition."""
    found = {}
    text = metrics if isinstance(metrics, bytes) else metrics.exposition()
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sample.labels.values())] = sample.value
    return found


def _valid(records: list[SourceRecord]) -> list[dict]:
    return [json.loads(r.value) for r in records if not r.value.startswith(b'{"event_id": "broken')]


def _clock_passes(events: list[dict]) -> list[float | None]:
    """The oracle for the stream clock before each event: the lower median of the times of
    the latest five events counted (first copies), never going back."""
    clock, window, before, seen = None, [], [], set()
    for event in events:
        before.append(clock)
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        window = [*window, datetime.fromisoformat(event["occurred_at"]).timestamp()][-5:]
        if len(window) == 5:
            median = sorted(window)[2]
            clock = median if clock is None else max(clock, median)
    before.append(clock)
    return before


def _counted_before(records: list[SourceRecord], checkpoint_id: str, direction: str, as_of: float) -> int:
    """The oracle for a band's ``observed``: first copies of valid events of the checkpoint and
    direction on its local day of ``as_of``, among those that came before the one that moved
    the clock to ``as_of``."""
    checkpoint = REGISTRY[checkpoint_id]
    day = datetime.fromtimestamp(as_of, UTC).astimezone(checkpoint.tz).date()
    events = _valid(records)
    clocks = _clock_passes(events)
    trigger = next(i for i in range(len(events)) if clocks[i + 1] is not None and clocks[i + 1] >= as_of)
    seen, n = set(), 0
    for event in events[:trigger]:
        stamp = datetime.fromisoformat(event["occurred_at"])
        if event["event_id"] in seen or event["checkpoint_id"] != checkpoint_id:
            continue
        seen.add(event["event_id"])
        if event["direction"] == direction and stamp.astimezone(checkpoint.tz).date() == day:
            n += 1
    return n


FIRST = 48 * 17  # past the detector's 14-day warm-up


def test_commit_sets_bands_and_a_new_owner_reports_restore_progress_and_lag(tmp_path):
    """Nineteen days of one checkpoint, a baseline after the warm-up: after a commit the band gauges
    hold the last hourly evaluation (observed = the brute-force count of that local day
    before it); a second process that takes the partitions over reads their changelogs
    (counted, nothing left to read) and reports lag as high watermark minus applied."""
    records = make_records([(n, 0, n * 30, n % 2) for n in range(19 * 48)])
    by_partition = split(records)
    assert not by_partition[1]  # one checkpoint: all on partition 0
    seen_by_a = by_partition[0][:FIRST]

    async def go() -> tuple[bytes, Process, FakeKafka]:
        kafka, clock = FakeKafka(), Clock()
        a, b = Process("a", tmp_path, kafka, clock), Process("b", tmp_path, kafka, clock)
        group = Group([a, b], kafka)
        await group.rebalance(dict.fromkeys(range(PARTITIONS), 0))
        a.fetch(by_partition, FIRST)  # all but the last records: b gets those
        await a.deliver()
        await a.commit()
        committed = a.worker.metrics.exposition()  # (a's gauges go when it lets go, below)
        await group.rebalance(dict.fromkeys(range(PARTITIONS), 1))
        b.fetch(by_partition, 5)
        await b.deliver()
        b.worker.report_lag(lambda partition: len(by_partition[partition]) + 3)
        for process in (a, b):
            await process.engine.close(list(process.engine.tasks))
        return committed, b, kafka

    a_metrics, b, kafka = asyncio.run(go())
    checkpoint_id = OWNED[0][0]
    times = _samples(a_metrics, "crossings_band_evaluated_timestamp_seconds")
    assert set(times) == {(checkpoint_id, "entry"), (checkpoint_id, "exit")}
    for direction in ("entry", "exit"):
        as_of = times[(checkpoint_id, direction)]
        stream_ts = _clock_passes(_valid(seen_by_a))[-1]
        assert stream_ts is not None
        assert as_of == stream_ts // 3600 * 3600
        observed = _samples(a_metrics, "crossings_band_observed")[(checkpoint_id, direction)]
        assert observed == _counted_before(seen_by_a, checkpoint_id, direction, as_of)
        lower = _samples(a_metrics, "crossings_band_lower")[(checkpoint_id, direction)]
        upper = _samples(a_metrics, "crossings_band_upper")[(checkpoint_id, direction)]
        expected = _samples(a_metrics, "crossings_band_expected")[(checkpoint_id, direction)]
        assert 0 <= lower <= expected <= upper
    # b opened partition 0 (it got records of it): it read a's whole changelog first.
    restored = _samples(b.worker.metrics, "crossings_state_restored_records_total")
    assert restored == {("0",): float(len(kafka.changelog[0]))}
    assert restored[("0",)] > 0
    assert _samples(b.worker.metrics, "crossings_state_restore_remaining_records") == {("0",): 0.0}
    # High watermark (all records) + 3, applied offset FIRST + 4: the messages not applied yet.
    lag = _samples(b.worker.metrics, "crossings_consumer_lag_messages")
    assert lag == {("0",): float(len(by_partition[0]) + 3 - (FIRST + 5))}


def test_forgetting_a_checkpoint_or_partition_drops_its_series():
    """After a rebalance each series is exported by its new owner only."""
    metrics = WorkerMetrics()
    metrics.set_bands({("korday", "entry"): Band(3600.0, 5, 10.0, 2.0, 30.0)})
    metrics.alerts_open.labels("korday", "both", "drop").set(1)
    metrics.alerts_open.labels("kazygurt", "exit", "surge").set(1)
    metrics.restore_progress(1, 0, 7)
    metrics.restore_progress(1, 7, 0)
    metrics.consumer_lag.labels("1").set(12)
    assert _samples(metrics, "crossings_band_upper") == {("korday", "entry"): 30.0}
    assert _samples(metrics, "crossings_state_restored_records_total") == {("1",): 7.0}
    metrics.forget_checkpoint("korday")
    metrics.forget_partition(1)
    # The post-level episode (direction both) goes with its checkpoint; others stay.
    assert _samples(metrics, "crossings_alerts_open") == {("kazygurt", "exit", "surge"): 1.0}
    for name in (
        "crossings_band_observed",
        "crossings_band_expected",
        "crossings_band_lower",
        "crossings_band_upper",
        "crossings_band_evaluated_timestamp_seconds",
        "crossings_consumer_lag_messages",
        "crossings_state_restore_remaining_records",
    ):
        assert _samples(metrics, name) == {}, name
    # A counter keeps counting across owners: the next open of the partition adds to it.
    metrics.restore_progress(1, 0, 3)
    metrics.restore_progress(1, 3, 0)
    assert _samples(metrics, "crossings_state_restored_records_total") == {("1",): 10.0}
