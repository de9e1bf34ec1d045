"""The scenario generator is the ground truth for every other test: prove it is right."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator

from load_tests.scenario import (
    DEFAULT_START,
    INVALID_REASONS,
    GeneratedRecord,
    Manifest,
    ReplayError,
    Scenario,
    ScenarioSpec,
    default_anomalies,
    generate,
    kafka_replay,
    load_checkpoints,
    replay,
    write_labels,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "crossing_event.v1.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
REFERENCE = load_checkpoints()
ZONES = {cp.checkpoint_id: cp.tz for cp in REFERENCE.values()}

# A week, so weekday factors average out; small other checkpoints; high error rates so
# every kind of record shows up often enough to measure.
SHORT = ScenarioSpec(days=7, other_scale=0.1, duplicate_rate=0.02, late_rate=0.02, invalid_rate=0.01)


@pytest.fixture(scope="module")
def short_run() -> tuple[list[GeneratedRecord], Manifest]:
    scenario = Scenario(SHORT)
    records = list(scenario.records())
    return records, scenario.manifest


def problems(record: GeneratedRecord) -> list[str]:
    """Everything the pipeline's ingest stage would reject a record for."""
    try:
        event = json.loads(record.value)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return [f"not JSON: {exc}"]
    errors = [error.message for error in VALIDATOR.iter_errors(event)]
    if not isinstance(event, dict):
        return errors or ["not an object"]
    if event.get("checkpoint_id") not in REFERENCE:
        errors.append("unknown checkpoint")
    occurred_at = event.get("occurred_at")
    if not errors and isinstance(occurred_at, str):
        # jsonschema only checks "date-time" with an optional package: check it here.
        try:
            if datetime.fromisoformat(occurred_at).tzinfo is None:
                errors.append("naive time")
        except ValueError as exc:
            errors.append(str(exc))
    return errors


def local_day(event: dict) -> str:
    moment = datetime.fromisoformat(event["occurred_at"])
    return moment.astimezone(ZONES[event["checkpoint_id"]]).date().isoformat()


def daily_uzb_entries(records: list[GeneratedRecord]) -> dict[str, int]:
    seen: set[str] = set()
    per_day: Counter[str] = Counter()
    for record in records:
        if record.kind not in ("valid", "late"):
            continue
        event = json.loads(record.value)
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        if (event["checkpoint_id"], event["direction"], event["nationality"]) == (
            "zhibek-zholy",
            "entry",
            "UZB",
        ):
            per_day[local_day(event)] += 1
    return dict(sorted(per_day.items()))


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    spec = ScenarioSpec(days=2, other_scale=0.1)
    first = [(r.key, r.value, r.kind, r.arrival_ts, r.invalid_reason) for r in generate(spec)]
    again = [(r.key, r.value, r.kind, r.arrival_ts, r.invalid_reason) for r in generate(spec)]
    other = [r.value for r in generate(ScenarioSpec(days=2, other_scale=0.1, seed=8))]
    assert first == again
    assert len(first) > 5000
    assert [value for _, value, *_ in first] != other


def test_a_checkpoint_traffic_does_not_depend_on_the_others() -> None:
    """Shrinking a scenario for a fast test must not change what is left in it."""
    alone = ScenarioSpec(days=2, checkpoints=("zhibek-zholy",))
    crowded = ScenarioSpec(days=2, other_scale=0.3)
    # (An unknown_checkpoint record carries a bogus key, so it is matched by event_id.)
    ours = [r.value for r in generate(alone)]
    theirs = [
        r.value
        for r in generate(crowded)
        if r.key == b"zhibek-zholy" or b'"event_id":"zhibek-zholy-' in r.value
    ]
    assert len(ours) > 5000
    assert ours == theirs


def test_records_arrive_in_ascending_order(short_run) -> None:
    records, _ = short_run
    arrivals = [r.arrival_ts for r in records]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= datetime(2024, 2, 4, 18, tzinfo=ZoneInfo("UTC")).timestamp()


def test_every_valid_record_passes_the_contract(short_run) -> None:
    records, _ = short_run
    checked = 0
    for record in records:
        if record.kind == "invalid":
            continue
        assert problems(record) == [], record
        event = json.loads(record.value)
        assert record.key == event["checkpoint_id"].encode()
        assert record.invalid_reason is None
        checked += 1
    assert checked > 20000


def test_every_invalid_record_fails_and_all_reasons_occur(short_run) -> None:
    records, manifest = short_run
    invalid = [r for r in records if r.kind == "invalid"]
    for record in invalid:
        assert problems(record), record
        assert record.invalid_reason in INVALID_REASONS
    reasons = Counter(r.invalid_reason for r in invalid)
    assert set(reasons) == set(INVALID_REASONS)
    assert dict(reasons) == manifest.invalid_reasons
    events = sum(1 for r in records if r.kind in ("valid", "late"))
    assert len(invalid) / events == pytest.approx(SHORT.invalid_rate, rel=0.25)


def test_manifest_counts_equal_a_brute_force_recount(short_run) -> None:
    records, manifest = short_run
    seen: set[str] = set()
    counts: Counter[tuple[str, str, str]] = Counter()
    groups: Counter[tuple[str, str, str, str, str]] = Counter()
    for record in records:
        if record.kind == "invalid":
            continue
        event = json.loads(record.value)
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        key = (event["checkpoint_id"], local_day(event), event["direction"])
        counts[key] += 1
        groups[(*key, event["nationality"], event["purpose"])] += 1
    assert {k: v for k, v in manifest.expected_counts.items() if v} == dict(counts)
    assert manifest.by_group == dict(groups)
    assert manifest.unique_events == len(seen)
    assert manifest.sent == dict(Counter(r.kind for r in records))
    # Every (checkpoint, day, direction) of the window is listed, zero or not.
    assert len(manifest.expected_counts) == len(SHORT.checkpoints) * SHORT.days * 2


def test_duplicates_are_exact_repeats_near_the_configured_rate(short_run) -> None:
    records, _ = short_run
    first_seen: dict[str, GeneratedRecord] = {}
    duplicates = 0
    for record in records:
        if record.kind == "invalid":
            continue
        event_id = json.loads(record.value)["event_id"]
        if record.kind == "duplicate":
            original = first_seen[event_id]  # the original always arrives first
            assert record.value == original.value
            assert 0 < record.arrival_ts - original.arrival_ts <= 30.0
            duplicates += 1
        else:
            assert event_id not in first_seen
            first_seen[event_id] = record
    assert duplicates / len(first_seen) == pytest.approx(SHORT.duplicate_rate, rel=0.15)


def test_late_records_keep_their_event_time_and_arrive_hours_later(short_run) -> None:
    records, _ = short_run
    late = [r for r in records if r.kind == "late"]
    events = sum(1 for r in records if r.kind in ("valid", "late"))
    assert len(late) / events == pytest.approx(SHORT.late_rate, rel=0.15)
    for record in late:
        occurred = datetime.fromisoformat(json.loads(record.value)["occurred_at"]).timestamp()
        assert 3600 <= record.arrival_ts - occurred <= 6 * 3600 + 1
    on_time = [r for r in records if r.kind == "valid"][:2000]
    for record in on_time:
        occurred = datetime.fromisoformat(json.loads(record.value)["occurred_at"]).timestamp()
        assert 0 <= record.arrival_ts - occurred < 120


def test_normal_volumes_and_weekly_rhythm() -> None:
    """A plain week: ~1,500 UZB entries/day at Jibek Joly, ~5,300 events/day overall."""
    spec = ScenarioSpec(days=7, duplicate_rate=0, late_rate=0, invalid_rate=0)
    scenario = Scenario(spec)
    records = list(scenario.records())
    manifest = scenario.manifest
    assert manifest.anomalies == ()
    uzb = daily_uzb_entries(records)
    assert len(uzb) == 7
    assert sum(uzb.values()) / 7 == pytest.approx(1500, rel=0.08)
    per_day = manifest.unique_events / 7
    assert per_day == pytest.approx(5300, rel=0.08)
    others = sum(n for (c, _, _), n in manifest.expected_counts.items() if c != "zhibek-zholy")
    assert others / 7 == pytest.approx(2500, rel=0.08)
    # Monday is clearly busier than Sunday (start is a Monday).
    monday, sunday = uzb[spec.start.isoformat()], uzb[spec.end.isoformat()]
    assert monday > sunday * 1.15


def test_jibek_joly_surge_reaches_about_4000_uzb_entries_a_day() -> None:
    anomalies = default_anomalies(DEFAULT_START)
    surge = anomalies[0]
    assert (surge.name, surge.checkpoint_id, surge.direction, surge.nationality, surge.purpose) == (
        "jibek-joly-spring-surge",
        "zhibek-zholy",
        "entry",
        "UZB",
        "labour",
    )
    # The week before the surge, then the first plateau week (days 32-38), same anomalies.
    before = ScenarioSpec(
        start=surge.starts - timedelta(days=7), days=7, anomalies=anomalies, checkpoints=("zhibek-zholy",)
    )
    plateau = ScenarioSpec(
        start=surge.starts + timedelta(days=3), days=7, anomalies=anomalies, checkpoints=("zhibek-zholy",)
    )
    assert before.anomalies == ()
    assert [a.name for a in plateau.anomalies] == ["jibek-joly-spring-surge"]
    before_mean = sum(daily_uzb_entries(list(generate(before))).values()) / 7
    plateau_mean = sum(daily_uzb_entries(list(generate(plateau))).values()) / 7
    assert before_mean == pytest.approx(1500, rel=0.1)
    assert plateau_mean == pytest.approx(4000, rel=0.1)


def test_default_anomalies_are_labelled_where_and_when() -> None:
    spec = ScenarioSpec()
    by_name = {a.name: a for a in spec.anomalies}
    assert set(by_name) == {"jibek-joly-spring-surge", "tajik-crackdown", "korday-closure"}
    assert spec.start == date(2024, 2, 5) and spec.start.weekday() == 0
    surge, crackdown, closure = (
        by_name[n] for n in ("jibek-joly-spring-surge", "tajik-crackdown", "korday-closure")
    )
    assert (surge.starts, surge.ends) == (date(2024, 3, 4), spec.end)
    assert (crackdown.kind, crackdown.checkpoint_id, crackdown.nationality) == ("drop", "kazygurt", "TJK")
    assert crackdown.starts == date(2024, 3, 8) and crackdown.factor == pytest.approx(0.2)
    assert (closure.checkpoint_id, closure.starts, closure.ends, closure.direction) == (
        "korday",
        date(2024, 3, 12),
        date(2024, 3, 12),
        None,
    )
    for anomaly in spec.anomalies:
        assert anomaly.starts.isoformat() in anomaly.description


def test_crackdown_and_closure_show_in_the_ground_truth() -> None:
    anomalies = default_anomalies(DEFAULT_START)
    spec = ScenarioSpec(
        start=date(2024, 3, 5), days=9, anomalies=anomalies, checkpoints=("kazygurt", "korday")
    )
    scenario = Scenario(spec)
    for _ in scenario.records():
        pass
    manifest = scenario.manifest
    assert manifest.expected_counts[("korday", "2024-03-12", "entry")] == 0
    assert manifest.expected_counts[("korday", "2024-03-12", "exit")] == 0
    assert manifest.expected_counts[("korday", "2024-03-13", "entry")] > 150
    crackdown = next(a for a in manifest.anomalies if a.name == "tajik-crackdown")
    series = manifest.group_series(crackdown)
    before = [series[d] for d in ("2024-03-05", "2024-03-06", "2024-03-07")]
    after = [series[d] for d in ("2024-03-11", "2024-03-12", "2024-03-13")]
    assert min(before) > 150
    assert max(after) < 0.35 * min(before)
    assert manifest.anomaly_baselines["tajik-crackdown"] == pytest.approx(220)


def test_local_days_follow_the_almaty_switch_to_utc_plus_5() -> None:
    spec = ScenarioSpec(
        start=date(2024, 2, 28), days=3, other_scale=0.05, duplicate_rate=0, late_rate=0, invalid_rate=0
    )
    offsets: dict[str, set[str]] = defaultdict(set)
    for record in generate(spec):
        event = json.loads(record.value)
        if event["checkpoint_id"] == "zhibek-zholy" and not event["occurred_at"].endswith("Z"):
            offsets[event["occurred_at"][:10]].add(event["occurred_at"][-6:])
    assert offsets["2024-02-28"] == {"+06:00"}
    assert offsets["2024-03-01"] == {"+05:00"}
    # 29 Feb has 25 hours: its repeated last hour appears under both offsets.
    assert offsets["2024-02-29"] == {"+06:00", "+05:00"}


def test_manifest_needs_a_full_iteration_and_labels_are_written(tmp_path: Path) -> None:
    spec = ScenarioSpec(
        start=DEFAULT_START + timedelta(days=35),
        days=2,
        other_scale=0.1,
        anomalies=default_anomalies(DEFAULT_START),
    )
    scenario = Scenario(spec)
    with pytest.raises(RuntimeError):
        _ = scenario.manifest
    for _ in scenario.records():
        pass
    labels = write_labels(tmp_path / "labels.json", manifest=scenario.manifest)
    data = json.loads((tmp_path / "labels.json").read_text())
    assert data["unique_events"] == labels.unique_events
    assert sum(row["count"] for row in data["expected_counts"]) == labels.unique_events
    names = {a["name"]: a for a in data["anomalies"]}
    assert names["korday-closure"]["starts"] == "2024-03-12"
    assert names["korday-closure"]["daily_counts"]["2024-03-12"] == 0
    assert data["sent"]["total"] == sum(scenario.manifest.sent.values())


class _FakeProducer:
    """Stands in for aiokafka.AIOKafkaProducer: records what replay() asks of it."""

    instances: ClassVar[list[_FakeProducer]] = []
    fail_after: ClassVar[int | None] = None
    stuck: ClassVar[bool] = False

    def __init__(self, **config) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []
        self.started = self.flushed = self.closed = False
        _FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def send(self, topic, key=None, value=None, timestamp_ms=None) -> asyncio.Future:
        self.sent.append((topic, key, value, timestamp_ms))
        future = asyncio.get_running_loop().create_future()
        if self.fail_after is not None and len(self.sent) > self.fail_after:
            future.set_exception(RuntimeError("broker said no"))
        elif not self.stuck:  # a stuck producer never delivers
            future.set_result(None)
        return future

    async def flush(self) -> None:
        if self.stuck:
            await asyncio.Event().wait()  # forever, as kafka-python's did after a broker restart
        self.flushed = True

    async def stop(self) -> None:
        self.closed = True


@pytest.fixture
def fake_kafka(monkeypatch):
    import aiokafka

    _FakeProducer.instances = []
    _FakeProducer.fail_after = None
    _FakeProducer.stuck = False
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", _FakeProducer)
    return _FakeProducer


def test_replay_sends_in_order_with_real_timestamps(fake_kafka, short_run) -> None:
    records, _ = short_run
    stats = replay(records[:5000], "127.0.0.1:9092", "crossings.events.v1", progress=False)
    producer = fake_kafka.instances[0]
    assert producer.config["acks"] == "all" and producer.flushed and producer.closed
    assert [(k, v) for _, k, v, _ in producer.sent] == [(r.key, r.value) for r in records[:5000]]
    assert {ts for *_, ts in producer.sent} == {None}
    assert stats.sent == 5000 and sum(stats.by_kind.values()) == 5000


class _FakeTime:
    """Stands in for the replay module's ``time``: sleeping moves the clock, nothing else
    does, so pacing is measured exactly whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_replay_paces_to_the_requested_rate(fake_kafka, short_run, monkeypatch) -> None:
    from load_tests.scenario import kafka_replay

    records, _ = short_run
    clock = _FakeTime()
    monkeypatch.setattr(kafka_replay, "time", clock)
    monkeypatch.setattr(kafka_replay, "_sleep", clock.asleep)
    sent_at: list[float] = []
    real_send = _FakeProducer.send

    def send(self, *args, **kwargs):
        sent_at.append(clock.now)
        return real_send(self, *args, **kwargs)

    monkeypatch.setattr(_FakeProducer, "send", send)
    stats = replay(records[:3000], "127.0.0.1:9092", "t", rate=6000, progress=False)
    assert stats.sent == len(sent_at) == 3000
    # The n-th record leaves no earlier than n/rate after the start (a burst of at most
    # the bucket's 100 ms is let through only after it has accumulated), and no later
    # than one sleep after that.
    started = 1000.0
    for n, at in enumerate(sent_at, start=1):
        assert n / 6000 - 1e-9 <= at - started <= n / 6000 + 0.002, n
    assert stats.seconds == pytest.approx(0.5, abs=0.002)
    assert stats.rate_achieved == pytest.approx(6000, rel=0.005)


def test_replay_raises_when_kafka_rejects_records(fake_kafka, short_run) -> None:
    records, _ = short_run
    fake_kafka.fail_after = 10
    with pytest.raises(ReplayError, match="broker said no"):
        replay(records[:100], "127.0.0.1:9092", "t", progress=False)
    assert fake_kafka.instances[0].closed


def test_replay_fails_instead_of_hanging_when_the_producer_never_delivers(
    fake_kafka, short_run, monkeypatch
) -> None:
    """The crash test's outages left kafka-python's producer wedged: flush() never
    returned and the test hung until pytest's timeout. A flush past the delivery timeout
    is an error that says so."""
    records, _ = short_run
    monkeypatch.setattr(kafka_replay, "DELIVERY_TIMEOUT_MS", -59_900)  # a flush may take 0.1 s
    fake_kafka.stuck = True
    with pytest.raises(ReplayError, match="did not flush"):
        replay(records[:100], "127.0.0.1:9092", "t", progress=False)
    producer = fake_kafka.instances[0]
    assert producer.closed and producer.config["enable_idempotence"] is True
