"""``crossings notify`` when things go wrong, against real Kafka, HTTP receivers and Alertmanager.

- **Giving up.** Webhook receivers that always fail (HTTP 500; nothing listening: the
  connection is refused) or refuse the message (HTTP 400), with a short
  ``CROSSINGS_NOTIFY_GIVE_UP_SECONDS``: every message lands on
  ``<ns>.alerts.undelivered.v1`` once per receiver, with its reason, the metrics count it,
  notify keeps running, and once the receivers recover the later messages are delivered
  (the dead-lettered ones are not: the receiver moved on, as documented).
- **A crash between delivery and commit.** The receivers hold their answer to one
  message they have stored (the webhook records it; the gate in front of Alertmanager
  has forwarded it), and notify is SIGKILLed then: its offsets stop before that message.
  After a restart the message is delivered again with the same ``Idempotency-Key`` (and
  the same body and alert id), nothing is lost or repeated beyond it, and Alertmanager,
  which knows an alert by its labels, holds one alert per episode and notifies each
  transition once.

The alert messages are written to the alerts topic by the test (valid per
``schemas/alert.v1.json``, keyed by episode like the worker's): the worker's part is
proven in test_notify_alertmanager.py; here only notify's handling matters, and a
short run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import fastjsonschema
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from load_tests.harness import free_port
from load_tests.notify_harness import (
    Alertmanager,
    Call,
    Gate,
    NotifyProcess,
    Recorder,
    committed_offset,
    notifications,
    topic_messages,
    wait_for,
)
from streams.notify import runner
from streams.notify.message import AlertRecord
from streams.notify.metrics import NotifyMetrics
from streams.notify.receivers import WebhookSink
from streams.notify.runner import ReceiverLoop, group_id, make_sink
from streams.ops.topics import ensure_topics
from streams.schemas import schemas_dir
from streams.settings import load_settings

pytestmark = pytest.mark.integration

SECRET = "failures-secret"
validate_alert = fastjsonschema.compile(json.loads((schemas_dir() / "alert.v1.json").read_text()))
OPENED = datetime(2024, 2, 22, 4, tzinfo=UTC)

SURGE = "zhibek-zholy:entry:surge:2024-02-22T0900"
CLOSED = "korday:entry:drop:2024-02-22T0900"


def alert(episode: str, status: str, hours: int, window: str = "running_day") -> dict:
    checkpoint, direction, kind, _ = episode.split(":", 3)
    as_of = (OPENED + timedelta(hours=hours)).isoformat()
    surge = kind == "surge"
    observed = (3980 if surge else 0) if status == "firing" else 1500
    message = {
        "version": 1,
        "alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{episode}|{status}|{window}|{as_of}")),
        "episode_id": episode,
        "status": status,
        "kind": kind,
        "checkpoint_id": checkpoint,
        "checkpoint_name": checkpoint.replace("-", " ").title(),
        "direction": direction,
        "local_day": (OPENED + timedelta(hours=hours)).date().isoformat(),
        "window": window,
        "as_of": as_of,
        "raised_at": as_of,
        "observed": observed,
        "expected": 1510.0,
        "ratio": observed / 1510.0,
        "score": 9.1 if surge else -12.0,
        "drivers": [
            {"nationality": "UZB", "purpose": "labour", "observed": 3400, "expected": 1050.0, "delta": 2350.0}
        ]
        if surge
        else [],
        "summary": f"{kind} at {checkpoint} {direction}: {observed:,} vs 1,510 expected",
    }
    validate_alert(message)
    return message


#: Two episodes: a surge and a closure, updated, the closure resolved, the surge resolved.
STORY = [
    alert(SURGE, "firing", 0),
    alert(CLOSED, "firing", 1),
    alert(SURGE, "firing", 14, "full_day"),
    alert(CLOSED, "resolved", 24),
    alert(SURGE, "firing", 38, "full_day"),
    alert(SURGE, "resolved", 48),
]


#: The crash test's: the surge stays open at the end (notify keeps re-posting it).
CRASH_STORY = STORY[:5]


def publish(bootstrap: str, topic: str, alerts: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for a in alerts:
            producer.send(topic, key=a["episode_id"].encode(), value=json.dumps(a).encode(), partition=0)
        producer.flush(30)
    finally:
        producer.close()


def key(message) -> str:
    return f"{json.loads(message.value)['episode_id']}:{message.offset}"


def signed(call: Call) -> bool:
    stamp = call.headers["X-Crossings-Timestamp"]
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + call.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v1={mac}", call.headers["X-Crossings-Signature"])


def keys(calls: list[Call]) -> list[str]:
    """Idempotency keys in order; an Alertmanager re-post of the open episodes has none."""
    return [c.headers["Idempotency-Key"] for c in calls if "Idempotency-Key" in c.headers]


def environment(bootstrap: str, home: Path, **extra: str) -> dict[str, str]:
    namespace = f"it-nf-{uuid.uuid4().hex[:8]}"
    secret_file = home / "secret"
    secret_file.write_text(SECRET)
    env = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_WEBHOOK_SECRET_FILE": str(secret_file),
        "CROSSINGS_NOTIFY_START": "earliest",
        "CROSSINGS_NOTIFY_WEB_PORT": str(free_port()),
        **extra,
    }
    ensure_topics(load_settings(env))
    return env


def test_a_receiver_that_keeps_failing_gets_its_messages_dead_lettered_once(kafka_bootstrap, tmp_path):
    status = {"500": 500, "400": 400}
    failing = Recorder(lambda call, index: status["500"]).start()
    refusing = Recorder(lambda call, index: status["400"]).start()
    down = Recorder(port=free_port())  # not listening yet: connection refused
    hooks = {
        "500": f"{failing.url}/hook",
        "refused": f"{down.url}/hook",
        "400": f"{refusing.url}/hook",
    }
    env = environment(
        kafka_bootstrap,
        tmp_path,
        CROSSINGS_WEBHOOK_URLS=",".join(hooks.values()),
        CROSSINGS_NOTIFY_GIVE_UP_SECONDS="2",
        CROSSINGS_NOTIFY_RETRY_MAX_SECONDS="0.5",
        CROSSINGS_NOTIFY_TIMEOUT_SECONDS="2",
    )
    settings = load_settings(env)
    targets = {name: f"http://127.0.0.1:{url.split(':')[2].split('/')[0]}" for name, url in hooks.items()}
    notify = NotifyProcess(env, tmp_path / "notify.log")
    first, later = STORY[:3], STORY[3:]
    try:
        notify.start()
        publish(kafka_bootstrap, settings.topics.alerts, first)
        undelivered = wait_for(
            "every message dead-lettered for each failing receiver",
            lambda: (
                (u := topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered))
                and len(u) >= 3 * len(first)
                and u
            ),
            60,
        )
        metrics = {
            (name, outcome): notify.metric(
                "crossings_notify_deliveries_total", target=target, outcome=outcome
            )
            for name, target in targets.items()
            for outcome in ("delivered", "gave_up", "rejected")
        }
        retries = {
            name: notify.metric("crossings_notify_retries_total", target=t) for name, t in targets.items()
        }
        assert notify.alive(), notify.log_tail()
        calls_while_down = {"500": failing.snapshot(), "400": refusing.snapshot()}
        # The receivers recover; the messages after that are delivered, the dead-lettered ones
        # are not sent again.
        status.update({"500": 204, "400": 204})
        down.start()
        publish(kafka_bootstrap, settings.topics.alerts, later)
        recorders = {"500": failing, "refused": down, "400": refusing}
        wait_for(
            "later messages delivered to every recovered receiver",
            lambda: all(
                len(keys(r.snapshot())) >= len(keys(calls_while_down.get(n, []))) + len(later)
                for n, r in recorders.items()
            ),
            60,
        )
        wait_for(
            "delivered counted",
            lambda: all(
                notify.metric("crossings_notify_deliveries_total", target=t, outcome="delivered")
                == len(later)
                for t in targets.values()
            ),
            10,
        )
        after = {n: r.snapshot() for n, r in recorders.items()}
        undelivered_after = topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered)
        assert notify.alive(), notify.log_tail()
    finally:
        code = notify.stop() if notify.process else 0
        for r in (failing, refusing, down):
            r.stop()
    assert code == 0, notify.log_tail()

    messages = topic_messages(kafka_bootstrap, settings.topics.alerts)
    assert [json.loads(m.value) for m in messages] == STORY
    dead_keys = [key(m) for m in messages[: len(first)]]
    live_keys = [key(m) for m in messages[len(first) :]]

    # Each message dead-lettered once per receiver, in order, with the original bytes and why.
    assert undelivered_after == undelivered, "dead letters written after the receivers recovered"
    by_target: dict[str, list] = {}
    for record in undelivered:
        headers = {k: v.decode() for k, v in record.headers}
        by_target.setdefault(headers["crossings.undelivered.target"], []).append((record, headers))
    assert set(by_target) == set(targets.values())
    reasons = {
        "500": r"gave_up: HTTP 500 after \d+ attempt\(s\)",
        "refused": r"gave_up: ClientConnectorError after \d+ attempt\(s\)",
        "400": r"rejected: HTTP 400 after 1 attempt\(s\)",
    }
    for name, target in targets.items():
        found = by_target[target]
        assert [h["Idempotency-Key"] for _, h in found] == dead_keys, name
        assert [r.value for r, _ in found] == [m.value for m in messages[: len(first)]]
        assert [r.key for r, _ in found] == [m.key for m in messages[: len(first)]]
        for _, h in found:
            assert re.fullmatch(reasons[name], h["crossings.undelivered.reason"]), h
            assert h["crossings.undelivered.sink"] == "webhook"
        assert [int(h["crossings.undelivered.offset"]) for _, h in found] == [
            m.offset for m in messages[: len(first)]
        ]
        # gave_up and rejected counted, nothing delivered while down
        outcome = "rejected" if name == "400" else "gave_up"
        assert metrics[(name, outcome)] == len(first), (name, metrics)
        assert metrics[(name, "delivered")] == 0
    # The 500 receiver was asked several times per message (backoff), the 400 one once.
    assert retries["500"] >= len(first) and retries["refused"] >= len(first)
    assert retries["400"] == 0
    assert keys(calls_while_down["400"]) == dead_keys
    assert set(keys(calls_while_down["500"])) == set(dead_keys)
    assert len(keys(calls_while_down["500"])) > len(dead_keys)
    # After recovery: exactly the later messages, once each, signed.
    for name, recorder_calls in after.items():
        new = recorder_calls[len(calls_while_down.get(name, [])) :]
        assert keys(new) == live_keys, name
        assert all(signed(c) for c in new)


@pytest.fixture
def alertmanager_binary(need_binary):
    return need_binary("prometheus-alertmanager", "prometheus-alertmanager")


def test_a_crash_between_delivery_and_commit_delivers_that_message_again(
    kafka_bootstrap, tmp_path, alertmanager_binary
):
    notified = Recorder().start()  # Alertmanager's own receiver
    alertmanager = Alertmanager(alertmanager_binary, tmp_path / "am", webhook=f"{notified.url}/am")
    held = STORY[2]
    # The alerts topic is fresh: STORY[i] gets offset i.
    held_key = f"{held['episode_id']}:2"
    hook_gate, am_gate = Gate(held_key), Gate(held_key)
    hook = Recorder(hook_gate).start()
    am_front = Recorder(am_gate, upstream=alertmanager.url).start()
    env = environment(
        kafka_bootstrap,
        tmp_path,
        CROSSINGS_WEBHOOK_URLS=f"{hook.url}/hook",
        CROSSINGS_ALERTMANAGER_URLS=am_front.url,
        CROSSINGS_NOTIFY_RESEND_SECONDS="600",  # only the re-post after a (re)start
        CROSSINGS_NOTIFY_TIMEOUT_SECONDS="60",
    )
    settings = load_settings(env)
    groups = {r.kind: group_id(settings, r) for r in settings.notify.receivers}
    notify = NotifyProcess(env, tmp_path / "notify.log")
    try:
        publish(kafka_bootstrap, settings.topics.alerts, CRASH_STORY)
        notify.start()
        wait_for(
            "both receivers holding the third message",
            lambda: hook_gate.held.is_set() and am_gate.held.is_set(),
            60,
        )
        notify.kill()
        committed_at_crash = {
            kind: committed_offset(kafka_bootstrap, g, settings.topics.alerts) for kind, g in groups.items()
        }
        active_at_crash = alertmanager.active()
        hook_gate.released.set()
        am_gate.released.set()
        notify.start()
        messages = topic_messages(kafka_bootstrap, settings.topics.alerts)
        everything = [key(m) for m in messages]
        wait_for(
            "every message delivered after the restart",
            lambda: (
                keys(hook.snapshot())[-1:] == everything[-1:]
                and keys(am_front.snapshot())[-1:] == everything[-1:]
            ),
            90,
        )
        wait_for(
            "Alertmanager notifying both resolves",
            lambda: any(a["status"] == "resolved" for a in notifications(notified)),
            30,
        )
        wait_for(
            "offsets committed to the end",
            lambda: all(
                committed_offset(kafka_bootstrap, g, settings.topics.alerts) == len(messages)
                for g in groups.values()
            ),
            30,
        )
        # The re-post of the open episodes after the restart has been made, and
        # Alertmanager has flushed all it was posted: a late repeat or notification would
        # have arrived (nothing is sent again past the committed offsets without a restart).
        wait_for(
            "the re-post after the restart",
            lambda: notify.metric("crossings_notify_resends_total", outcome="ok") >= 1,
            30,
        )
        alertmanager.flushed(notified)
        hook_calls, am_calls, told = hook.snapshot(), am_front.snapshot(), notifications(notified)
        active_after = alertmanager.active()
    finally:
        code = notify.stop() if notify.process else 0
        for r in (hook, am_front):
            r.stop()
        alertmanager.stop()
        notified.stop()
    assert code == 0, notify.log_tail()
    assert [json.loads(m.value) for m in messages] == CRASH_STORY

    # SIGKILLed after the receivers had the third message and before its commit.
    assert committed_at_crash == {"webhook": 2, "alertmanager": 2}
    assert set(active_at_crash) == {SURGE, CLOSED}
    # Webhook: the held message again, with the same key, body and alert id; no other repeat,
    # nothing lost.
    again = everything[:3] + everything[2:]
    assert keys(hook_calls) == again
    twice = [c for c in hook_calls if c.headers["Idempotency-Key"] == held_key]
    assert len(twice) == 2 and twice[0].body == twice[1].body == messages[2].value
    assert twice[0].headers["X-Crossings-Alert-Id"] == twice[1].headers["X-Crossings-Alert-Id"]
    assert all(signed(c) for c in hook_calls)
    # Alertmanager: the same (posted twice), plus the re-post of the open episodes (rebuilt
    # from the topic up to the committed offset, then kept up to date), the surge still open.
    assert keys(am_calls) == again
    reposts = [c.json() for c in am_calls if "Idempotency-Key" not in c.headers]
    assert reposts, "no re-post of the open episodes after the restart"
    assert all({a["labels"]["episode"] for a in posted} <= {SURGE, CLOSED} for posted in reposts)
    assert SURGE in {a["labels"]["episode"] for a in reposts[-1]}
    # ...and it holds one alert per episode (it knows them by labels) and told each
    # transition once: the repeat and the re-posts changed nothing it would notify.
    assert list(active_after) == [SURGE]
    assert active_after[SURGE]["annotations"]["alert_id"] == CRASH_STORY[-1]["alert_id"]
    transitions = [(a["labels"]["episode"], a["status"]) for a in told]
    assert sorted(transitions) == sorted([(SURGE, "firing"), (CLOSED, "firing"), (CLOSED, "resolved")])


def test_a_message_that_is_not_an_alert_is_dead_lettered_and_never_stops_notify(kafka_bootstrap, tmp_path):
    # Only the worker writes the alerts topic, but anyone with write access can: garbage,
    # JSON that is no alert, a tombstone. Each goes to the undelivered topic as it was, the
    # alerts around it are delivered, and a restart (which reads the topic back to rebuild
    # the open episodes for Alertmanager) passes over them too.
    hook = Recorder().start()
    alertmanager = Recorder(lambda call, index: 200).start()
    env = environment(
        kafka_bootstrap,
        tmp_path,
        CROSSINGS_WEBHOOK_URLS=f"{hook.url}/hook",
        CROSSINGS_ALERTMANAGER_URLS=alertmanager.url,
    )
    settings = load_settings(env)
    not_an_alert = json.dumps({**STORY[1], "status": "maybe"}).encode()
    bad = [b"\xff not json {", b'{"hello": "world"}', None, not_an_alert]
    publish(kafka_bootstrap, settings.topics.alerts, STORY[:1])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for value in bad:
            producer.send(settings.topics.alerts, key=b"someone", value=value, partition=0)
        producer.flush(30)
    finally:
        producer.close()
    publish(kafka_bootstrap, settings.topics.alerts, STORY[1:2])
    notify = NotifyProcess(env, tmp_path / "notify.log")
    try:
        notify.start()
        wait_for("both alerts delivered to the webhook", lambda: len(keys(hook.snapshot())) >= 2, 60)
        wait_for(
            "malformed messages dead-lettered once per receiver",
            lambda: len(topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered)) >= 2 * len(bad),
            60,
        )
        malformed = {
            kind: notify.metric("crossings_notify_deliveries_total", sink=kind, outcome="malformed")
            for kind in ("webhook", "alertmanager")
        }
        assert notify.stop() == 0, notify.log_tail()
        before = len(alertmanager.snapshot())
        notify.start()  # rebuilds the open episodes from the topic, garbage included
        wait_for(
            "a re-post of the open episodes after the restart",
            lambda: len(alertmanager.snapshot()) > before,
            30,
        )
        assert notify.alive(), notify.log_tail()
    finally:
        code = notify.stop() if notify.process else 0
        hook.stop()
        alertmanager.stop()
    assert code == 0, notify.log_tail()
    assert keys(hook.snapshot()) == [f"{STORY[0]['episode_id']}:0", f"{STORY[1]['episode_id']}:5"]
    assert malformed == {"webhook": len(bad), "alertmanager": len(bad)}
    undelivered = topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered)
    assert len(undelivered) == 2 * len(bad), "each once per receiver, none after the restart"
    for record in undelivered:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["crossings.undelivered.reason"].startswith("malformed: ")
        assert record.key == b"someone"
        assert int(headers["crossings.undelivered.offset"]) in range(1, 1 + len(bad))
        assert record.value == bad[int(headers["crossings.undelivered.offset"]) - 1]
    reasons = [
        dict((k, v.decode()) for k, v in r.headers)["crossings.undelivered.reason"] for r in undelivered
    ]
    assert any("not JSON" in r for r in reasons) and any("tombstone" in r for r in reasons)
    assert sum("schemas/alert.v1.json" in r for r in reasons) == 2 * 2  # per receiver
    # The re-post after the restart holds both open episodes, nothing from the garbage.
    assert {a["labels"]["episode"] for a in alertmanager.snapshot()[-1].json()} == {SURGE, CLOSED}


def test_a_notify_killed_while_dead_lettering_leaves_each_message_once(kafka_bootstrap, tmp_path):
    # Every message is refused (HTTP 400) and dead-lettered at once, so notify spends its
    # time writing dead letters and committing offsets, and SIGKILL lands among them. The
    # dead letter and the offset past its message are one Kafka transaction: after three
    # kills, each message is on the undelivered topic exactly once, in order.
    # (A regression guard: a kill seldom lands between the two steps, and one run against
    # the code that wrote them apart passed too; the test below makes that gap happen.)
    refusing = Recorder(lambda call, index: 400).start()
    env = environment(kafka_bootstrap, tmp_path, CROSSINGS_WEBHOOK_URLS=f"{refusing.url}/hook")
    settings = load_settings(env)
    episodes = [f"korday:entry:drop:2024-02-{10 + n // 24:02d}T{n % 24:02d}00" for n in range(240)]
    story = [alert(episode, "firing", n) for n, episode in enumerate(episodes)]
    publish(kafka_bootstrap, settings.topics.alerts, story)
    notify = NotifyProcess(env, tmp_path / "notify.log")
    rng = random.Random(7)

    def undelivered() -> list:
        return topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered)

    try:
        for kill in range(1, 4):
            notify.start()
            enough = 40 * kill
            wait_for(f"dead letters before kill {kill}", lambda n=enough: len(undelivered()) >= n, 120)
            time.sleep(rng.uniform(0, 0.05))
            notify.kill()
        notify.start()
        group = group_id(settings, settings.notify.receivers[0])
        wait_for(
            "every message dead-lettered and committed",
            lambda: committed_offset(kafka_bootstrap, group, settings.topics.alerts) == len(story),
            120,
        )
    finally:
        code = notify.stop() if notify.process else 0
        refusing.stop()
    assert code == 0, notify.log_tail()
    letters = undelivered()
    offsets = [int(dict(r.headers)["crossings.undelivered.offset"]) for r in letters]
    assert offsets == list(range(len(story))), "each message dead-lettered once, in order"
    assert [json.loads(r.value) for r in letters] == story
    assert len(keys(refusing.snapshot())) >= len(story)  # a message refused again after a kill is fine


def test_a_dead_letter_whose_offset_commit_fails_is_not_written_twice(kafka_bootstrap, tmp_path):
    # The failure between the two steps, made to happen: the offset commit of the first
    # attempt fails after its dead letter was sent. In one transaction, that attempt is
    # aborted as a whole and the retry writes the only dead letter a reader sees; written
    # apart, the first dead letter would stay and the message be dead-lettered again.
    env = environment(kafka_bootstrap, tmp_path, CROSSINGS_WEBHOOK_URLS="http://127.0.0.1:9/hook")
    settings = load_settings(env)
    publish(kafka_bootstrap, settings.topics.alerts, STORY[:1])
    record = AlertRecord.from_kafka(0, json.dumps(STORY[0]).encode())
    tp = TopicPartition(settings.topics.alerts, 0)

    async def go() -> bool:
        async with aiohttp.ClientSession() as session:
            sink = make_sink(settings, settings.notify.receivers[0])
            loop = ReceiverLoop(settings, sink, session, NotifyMetrics())
            await loop._open_producer(tp)
            producer = loop.producers[tp]
            real, failures = producer.send_offsets_to_transaction, [KafkaConnectionError("injected")]

            async def flaky(offsets, group):
                await real(offsets, group)
                if failures:
                    raise failures.pop()

            producer.send_offsets_to_transaction = flaky
            try:
                return await loop._undelivered(tp, b"k", record.value, 0, "rejected: injected", [])
            finally:
                await loop._close_producer(tp)

    assert asyncio.run(go()) is True
    letters = topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered)
    assert [r.value for r in letters] == [record.value], "one dead letter, not two"
    group = group_id(settings, settings.notify.receivers[0])
    assert committed_offset(kafka_bootstrap, group, settings.topics.alerts) == 1


def test_notify_start_latest_skips_the_backlog_and_a_425_is_retried(kafka_bootstrap, tmp_path):
    # CROSSINGS_NOTIFY_START=latest: a receiver's first start (no committed offset) begins at
    # the end of the topic, so what was there before is never sent; what comes after is.
    # The receiver answers that first delivery 425 Too Early: retried, then delivered.
    hook = Recorder(lambda call, index: 425 if index == 0 else 204).start()
    env = environment(
        kafka_bootstrap,
        tmp_path,
        CROSSINGS_WEBHOOK_URLS=f"{hook.url}/hook",
        CROSSINGS_NOTIFY_START="latest",
        CROSSINGS_NOTIFY_RETRY_MAX_SECONDS="1",
    )
    settings = load_settings(env)
    (receiver,) = settings.notify.receivers
    group = group_id(settings, receiver)
    publish(kafka_bootstrap, settings.topics.alerts, STORY[:1])  # the backlog
    notify = NotifyProcess(env, tmp_path / "notify.log")
    try:
        notify.start()
        (start,) = wait_for(
            "notify committing where it starts",
            lambda: (
                (o := committed_offset(kafka_bootstrap, group, settings.topics.alerts)) is not None and [o]
            ),
            60,
        )
        publish(kafka_bootstrap, settings.topics.alerts, STORY[1:2])
        wait_for(
            "the new message delivered and committed",
            lambda: committed_offset(kafka_bootstrap, group, settings.topics.alerts) == 2,
            60,
        )
        calls = hook.snapshot()
        counted = {
            outcome: notify.metric("crossings_notify_deliveries_total", outcome=outcome)
            for outcome in ("delivered", "rejected", "gave_up")
        }
        retries = notify.metric("crossings_notify_retries_total")
    finally:
        code = notify.stop() if notify.process else 0
        hook.stop()
    assert code == 0, notify.log_tail()
    assert start == 1, "latest: the receiver starts past the backlog (earliest would start at 0)"
    # In topic order: had the backlog been sent, it would have come before these.
    assert [json.loads(c.body) for c in calls] == [STORY[1], STORY[1]], "a 425, then the same again"
    assert counted == {"delivered": 1, "rejected": 0, "gave_up": 0}
    assert retries == 1
    assert topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered) == []


class _Injected(LookupError):
    """An error type no code path in notify expects."""


def test_a_receiver_whose_delivery_raises_fails_alone_and_is_restarted(
    kafka_bootstrap, tmp_path, monkeypatch
):
    # One receiver's delivery raises an exception nobody foresaw (here: while building its
    # headers). The other receiver still gets every alert exactly once while it does;
    # the failing one is restarted with backoff, reported by /readyz and the metrics, and
    # once the fault is gone it gets every alert too (nothing was posted before the
    # failure, so exactly once as well).
    steady, flaky = Recorder().start(), Recorder().start()
    web_port = free_port()
    env = environment(
        kafka_bootstrap,
        tmp_path,
        CROSSINGS_WEBHOOK_URLS=f"{steady.url}/hook,{flaky.url}/hook",
        CROSSINGS_NOTIFY_WEB_PORT=str(web_port),
    )
    settings = load_settings(env)
    flaky_target = f"http://127.0.0.1:{flaky.port}"
    broken = {"on": True}

    class BrokenSink(WebhookSink):
        def headers(self, record, body):
            if broken["on"]:
                raise _Injected(f"injected for {record.idempotency_key}")
            return super().headers(record, body)

    real_make_sink = runner.make_sink

    def make_sink(settings, receiver):
        sink = real_make_sink(settings, receiver)
        return BrokenSink(receiver, sink.secret) if receiver.target == flaky_target else sink

    monkeypatch.setattr(runner, "make_sink", make_sink)
    monkeypatch.setattr(runner, "RESTART_FIRST_SECONDS", 0.2, raising=False)
    monkeypatch.setattr(runner, "RESTART_MAX_SECONDS", 1.0, raising=False)
    publish(kafka_bootstrap, settings.topics.alerts, STORY)

    async def get(session: aiohttp.ClientSession, path: str) -> tuple[int, str]:
        async with session.get(f"http://127.0.0.1:{web_port}{path}") as response:
            return response.status, await response.text()

    async def until(what: str, check, notify_task: asyncio.Task, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            if notify_task.done():  # notify stopped: every receiver stopped with it
                raise AssertionError(f"notify stopped before {what}: {notify_task.exception()!r}")
            value = await check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not within {timeout}s")
            await asyncio.sleep(0.2)

    def metric(text: str, name: str, **labels: str) -> float:
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    async def scenario() -> dict:
        notify_task = asyncio.create_task(runner.run_notify(settings))
        seen: dict = {}
        async with aiohttp.ClientSession() as session:

            async def steady_has_all():
                return len(keys(steady.snapshot())) >= len(STORY)

            async def flaky_restarted_and_not_ready():
                status, body = await get(session, "/readyz")
                states = {r["target"]: r for r in json.loads(body)["receivers"]}
                return status == 503 and states[flaky_target]["restarts"] >= 2 and (status, states)

            try:
                await until("every alert delivered to the steady receiver", steady_has_all, notify_task)
                seen["readyz"] = await until(
                    "the flaky one restarted, /readyz 503", flaky_restarted_and_not_ready, notify_task
                )
                seen["flaky_calls_while_broken"] = len(flaky.snapshot())
                _, seen["metrics_broken"] = await get(session, "/metrics")
                broken["on"] = False

                async def flaky_has_all_and_ready():
                    status, _ = await get(session, "/readyz")
                    return status == 200 and len(keys(flaky.snapshot())) >= len(STORY)

                await until("the flaky receiver recovered", flaky_has_all_and_ready, notify_task)
                await asyncio.sleep(1)  # a late repeat would arrive now
                _, seen["metrics_after"] = await get(session, "/metrics")
            finally:
                signal.raise_signal(signal.SIGTERM)  # run_notify's own stop
                await asyncio.wait_for(notify_task, 30)
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        steady.stop()
        flaky.stop()
    everything = [key(m) for m in topic_messages(kafka_bootstrap, settings.topics.alerts)]
    assert len(everything) == len(STORY)
    assert keys(steady.snapshot()) == everything, "the steady receiver: every alert once, in order"
    assert keys(flaky.snapshot()) == everything, "the restarted receiver: every alert once, in order"
    assert seen["flaky_calls_while_broken"] == 0
    states = seen["readyz"][1]
    steady_target = f"http://127.0.0.1:{steady.port}"
    assert states[flaky_target]["running"] is False and states[flaky_target]["error"] == "_Injected"
    assert states[steady_target]["running"] is True and states[steady_target]["restarts"] == 0
    broken_metrics = seen["metrics_broken"]
    failures = "crossings_notify_receiver_failures_total"
    assert metric(broken_metrics, failures, target=flaky_target, error="_Injected") >= 2
    assert metric(broken_metrics, failures, target=steady_target) == 0
    assert metric(seen["metrics_after"], "crossings_notify_receiver_up", target=flaky_target) == 1
    assert metric(seen["metrics_after"], "crossings_notify_receiver_up", target=steady_target) == 1
