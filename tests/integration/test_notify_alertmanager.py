"""``crossings notify`` against a real Alertmanager and a webhook receiver.

A worker counts a short scenario with a surge at Zhibek Zholy and a closure at Korday,
fed in two phases: up to the evening when every episode is open, then the rest (when they
resolve). The webhook receiver is not listening at first (notify must retry, then deliver
everything once it is up), and notify is restarted between the phases (its firing set must
come back from the alerts topic and keep the open episodes alive in Alertmanager).
Alertmanager routes every alert to a webhook receiver of its own (``send_resolved``, 1 s
group timers), so the test hears Alertmanager itself notify each episode firing, then
resolved, and nothing in between.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest

from load_tests.harness import WorkerProcess, free_port, wait_committed
from load_tests.notify_harness import (
    Alertmanager,
    Call,
    NotifyProcess,
    Recorder,
    committed_offset,
    notifications,
    topic_messages,
    wait_for,
)
from load_tests.scenario import DEFAULT_START, Scenario, ScenarioSpec, closure, labour_surge, replay
from streams.notify.runner import group_id
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

SURGE_DAY = DEFAULT_START + timedelta(days=17)  # past the detector's 14-day warm-up
CLOSURE_DAY = SURGE_DAY + timedelta(days=1)
#: 20 days: 17 of baseline (the detector warms up for 14), a two-day UZB labour surge at Zhibek Zholy, Korday
#: closed on the surge's second day, both back to normal on the last day.
SPEC = ScenarioSpec(
    days=20,
    checkpoints=("zhibek-zholy", "korday"),
    anomalies=(
        labour_surge(SURGE_DAY, CLOSURE_DAY, "UZB labour entries x3 for two days"),
        closure("korday", CLOSURE_DAY, CLOSURE_DAY, "Korday closed for a day"),
    ),
)
#: Records that reached Kafka before this (simulated) time make phase 1: every episode
#: has opened and had its full-day update (hour 18 UTC, the last of the local day at
#: UTC+5), none has resolved yet (the surge resolves with the next local day, at 20 UTC
#: once its first hour closes). Were phase 1 to include that resolve, notify could post
#: it in the same batch as the closure and Alertmanager would never hold both.
PHASE_2_FROM = datetime(CLOSURE_DAY.year, CLOSURE_DAY.month, CLOSURE_DAY.day, 19, 30, tzinfo=UTC)
SECRET = "test-signing-secret-\u00e9"


def binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found:
        return found
    if os.environ.get("CROSSINGS_REQUIRE_SYSTEM_PACKAGES"):
        pytest.fail(
            "prometheus-alertmanager is not installed: "
            "run deploy/ci/system-packages.sh prometheus-alertmanager"
        )
    pytest.skip(
        "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager, or "
        "deploy/ci/system-packages.sh prometheus-alertmanager); "
        "CROSSINGS_REQUIRE_SYSTEM_PACKAGES=1 makes this a failure"
    )


def signed(call: Call) -> bool:
    """The check the README tells webhook receivers to make, as of the call's arrival."""
    stamp, sig = call.headers["X-Crossings-Timestamp"], call.headers["X-Crossings-Signature"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + call.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v1={expected}", sig) and abs(call.at - int(stamp)) < 300


@pytest.fixture(scope="module")
def run(kafka_bootstrap, tmp_path_factory):
    home = tmp_path_factory.mktemp("notify")
    namespace = f"it-notify-{free_port()}"
    secret_file = home / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    # Alertmanager's own receiver: what Alertmanager tells people (firing, then resolved).
    notified = Recorder().start()
    alertmanager = Alertmanager(binary(), home, webhook=f"{notified.url}/alertmanager")
    receiver = Recorder()  # the signed webhook; not listening at first
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        "CROSSINGS_ALERTMANAGER_URLS": alertmanager.url,
        "CROSSINGS_WEBHOOK_URLS": f"http://127.0.0.1:{receiver.port}/hooks/crossings?token=abc",
        "CROSSINGS_WEBHOOK_SECRET_FILE": str(secret_file),
        "CROSSINGS_NOTIFY_START": "earliest",
        "CROSSINGS_NOTIFY_RESEND_SECONDS": "2",
        "CROSSINGS_NOTIFY_RETRY_MAX_SECONDS": "1",
        "CROSSINGS_NOTIFY_GIVE_UP_SECONDS": "600",
        "CROSSINGS_NOTIFY_WEB_PORT": str(free_port()),
    }
    settings = load_settings(env)
    ensure_topics(settings)
    records = list(Scenario(SPEC).records())
    cut = next(i for i, r in enumerate(records) if r.arrival_ts >= PHASE_2_FROM.timestamp())
    worker = WorkerProcess(env, free_port(), home / "worker.log")
    notify = NotifyProcess(env, home / "notify.log")
    seen: dict = {}
    try:
        worker.start(timeout=180)
        notify.start()
        replay(records[:cut], kafka_bootstrap, settings.topics.events, progress=False)
        # Phase 1: the webhook receiver is down; Alertmanager gets each episode as it opens.
        try:
            seen["open"] = wait_for(
                "two open episodes in Alertmanager (the surge, the closure)",
                lambda: len(alertmanager.active()) == 2 and alertmanager.active(),
                240,
            )
            wait_for(
                "Alertmanager notifying each open episode",
                lambda: {a["labels"]["episode"] for a in notifications(notified)} >= set(seen["open"]),
                30,
            )
        except TimeoutError as failure:
            raise TimeoutError(
                f"{failure}; alerts topic: {trail(kafka_bootstrap, settings.topics.alerts)}; "
                f"active: {sorted(alertmanager.active())}; "
                f"notify log: {(home / 'notify.log').read_text()[-2000:]}; "
                f"worker log: {(home / 'worker.log').read_text()[-2000:]}"
            ) from failure
        wait_for(
            "webhook retries while its receiver is down",
            lambda: notify.metric("crossings_notify_retries_total", sink="webhook") >= 3,
            60,
        )
        assert receiver.calls == []
        receiver.start()
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=120)
        phase_1 = len(topic_messages(kafka_bootstrap, settings.topics.alerts))
        wait_for("phase 1 webhooks", lambda: len(receiver.calls) >= phase_1, 60)
        seen["before_restart"] = counters(notify)
        # Restart notify: the open episodes come back from the topic and are re-posted.
        assert notify.stop() == 0
        restarted = time.time()
        notify.start()
        # Episodes open by the topic when notify restarts (both: phase 1 stops before
        # any resolves); the gauge climbs while the topic is read back: wait for all.
        last_status: dict[str, str] = {}
        for message in topic_messages(kafka_bootstrap, settings.topics.alerts):
            alert = json.loads(message.value)
            last_status[alert["episode_id"]] = alert["status"]
        seen["open_at_restart"] = {e for e, status in last_status.items() if status == "firing"}
        seen["firing_after_restart"] = wait_for(
            "open episodes rebuilt",
            lambda: (n := notify.metric("crossings_notify_firing")) == len(seen["open_at_restart"]) and n,
            60,
        )
        seen["reposted"] = wait_for(
            "open episodes re-posted after the restart",
            lambda: (
                (a := alertmanager.active())
                and all(_stamp(x["updatedAt"]) > restarted for x in a.values())
                and a
            ),
            30,
        )
        # Phase 2: everything resolves.
        phase_2 = time.time()
        replay(records[cut:], kafka_bootstrap, settings.topics.events, progress=False)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=240)
        seen["after"] = wait_for(
            "no open episode in Alertmanager", lambda: alertmanager.active() == {} or None, 60
        )
        seen["resolve_seconds"] = time.time() - phase_2
        messages = topic_messages(kafka_bootstrap, settings.topics.alerts)
        wait_for("every webhook", lambda: len(receiver.calls) >= len(messages), 60)
        wait_for(
            "Alertmanager notifying each resolve",
            lambda: sum(a["status"] == "resolved" for a in notifications(notified)) >= 2,
            30,
        )
        # Anything doubled would have arrived by now: every receiver's group has committed
        # past the last message (none is sent again without a restart), and Alertmanager
        # has flushed what it was posted (a re-post or a repeat would be in an older group).
        last = {}  # partition -> the offset past its last message (transaction markers follow)
        for m in messages:
            last[m.partition] = max(last.get(m.partition, 0), m.offset + 1)
        wait_for(
            "offsets committed past every message",
            lambda: all(
                committed_offset(kafka_bootstrap, group_id(settings, r), settings.topics.alerts, p) == end
                for r in settings.notify.receivers
                for p, end in last.items()
            ),
            60,
        )
        alertmanager.flushed(notified)
        seen["notified"] = notifications(notified)
        seen["after_restart"] = counters(notify)
        seen["messages"] = messages
        seen["undelivered"] = topic_messages(kafka_bootstrap, settings.topics.alerts_undelivered)
        seen["calls"] = list(receiver.calls)
    finally:
        codes = {"notify": notify.stop() if notify.process else 0, "worker": worker.stop()}
        receiver.stop()
        alertmanager.stop()
        notified.stop()
    assert codes == {"notify": 0, "worker": 0}, notify.log_tail()
    return seen


def trail(bootstrap: str, topic: str) -> list[tuple[str, ...]]:
    """The alerts topic in short, for a failure message."""
    found = []
    for message in topic_messages(bootstrap, topic):
        alert = json.loads(message.value)
        found.append(
            (alert["as_of"], alert["status"], alert["checkpoint_id"], alert["direction"], alert["window"])
        )
    return found


def counters(notify: NotifyProcess) -> dict[str, float]:
    """Delivery outcomes and retries per sink since this notify process started."""
    found = {}
    for sink in ("webhook", "alertmanager"):
        for outcome in ("delivered", "gave_up", "rejected"):
            found[f"{sink}:{outcome}"] = notify.metric(
                "crossings_notify_deliveries_total", sink=sink, outcome=outcome
            )
        found[f"{sink}:retries"] = notify.metric("crossings_notify_retries_total", sink=sink)
    for outcome in ("ok", "failed"):
        found[f"resends:{outcome}"] = notify.metric("crossings_notify_resends_total", outcome=outcome)
    return found


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_each_episode_fires_in_alertmanager_with_labels_and_words(run):
    episodes = {json.loads(m.value)["episode_id"] for m in run["messages"]}
    assert set(run["open"]) == episodes
    names = {
        a["labels"]["checkpoint"] + ":" + a["labels"]["direction"]: a["labels"]["alertname"]
        for a in run["open"].values()
    }
    assert names == {
        "zhibek-zholy:entry": "CrossingSurge",
        # Korday closed both ways at once: one post-level alert for the post, not one per direction.
        "korday:both": "CheckpointClosed",
    }
    for alert in run["open"].values():
        assert alert["status"]["state"] == "active"
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"] and "What to do" in alert["annotations"]["description"]
        assert alert["generatorURL"].startswith("http://127.0.0.1:")
    surge = next(a for a in run["open"].values() if a["labels"]["alertname"] == "CrossingSurge")
    assert surge["annotations"]["top_groups"].startswith("UZB labour")
    first = {}
    for m in run["messages"]:
        first.setdefault(json.loads(m.value)["episode_id"], json.loads(m.value))
    assert _stamp(surge["startsAt"]) == _stamp(first[surge["labels"]["episode"]]["as_of"])


def test_a_restarted_notify_keeps_the_open_episodes_alive(run):
    assert run["firing_after_restart"] == len(run["open_at_restart"]) == 2
    assert set(run["reposted"]) == run["open_at_restart"]


def test_every_episode_is_resolved_in_alertmanager_by_its_resolve_message(run):
    statuses = [json.loads(m.value)["status"] for m in run["messages"]]
    trail = [
        (
            json.loads(m.value)["episode_id"][:8],
            json.loads(m.value)["status"],
            json.loads(m.value)["window"],
            json.loads(m.value)["checkpoint_id"],
            json.loads(m.value)["direction"],
            json.loads(m.value)["kind"],
        )
        for m in run["messages"]
    ]
    assert statuses.count("resolved") == 2, trail
    # Gone from the active alerts within seconds: an endsAt was posted (a firing alert
    # left alone would stay active for resolve_timeout, 5 minutes).
    assert run["after"] is True
    assert run["resolve_seconds"] < 150  # from the start of phase 2; resolve_timeout is 300 s


def test_every_alert_message_reaches_the_webhook_once_signed(run):
    calls, messages = run["calls"], run["messages"]
    assert all(signed(call) for call in calls)
    assert {call.path for call in calls} == {"/hooks/crossings?token=abc"}
    keys = [call.headers["Idempotency-Key"] for call in calls]
    assert len(keys) == len(set(keys)), "a message was delivered twice"
    assert keys == [f"{json.loads(m.value)['episode_id']}:{m.offset}" for m in messages]  # topic order
    assert [call.body for call in calls] == [m.value for m in messages]
    assert [call.headers["X-Crossings-Alert-Id"] for call in calls] == [
        json.loads(m.value)["alert_id"] for m in messages
    ]


def test_delivery_outcomes_are_counted_and_nothing_was_dead_lettered(run):
    before, after, n = run["before_restart"], run["after_restart"], len(run["messages"])
    assert run["undelivered"] == []
    assert before["webhook:retries"] >= 3  # the receiver was down
    assert before["webhook:delivered"] + after["webhook:delivered"] == n
    assert before["alertmanager:delivered"] + after["alertmanager:delivered"] == n
    assert all(v == 0 for k, v in (before | after).items() if k.endswith(("gave_up", "rejected")))
    # The open episodes were re-posted while open (every 2 s, and at once after the restart),
    # and Alertmanager took each re-post.
    assert before["resends:ok"] >= 1 and after["resends:ok"] >= 1
    assert before["resends:failed"] == after["resends:failed"] == 0


def test_alertmanager_notifies_each_episode_firing_once_then_resolved_once(run):
    """Alertmanager's own receiver (send_resolved) hears of each episode twice: firing when
    it opens, resolved when its resolve message arrives, never again in between (notify's
    re-posts every 2 s and its restart keep the same labels, so no new alert and no new
    notification), with the episode's start and the resolve's event time."""
    messages = [json.loads(m.value) for m in run["messages"]]
    first = {}
    for alert in messages:
        first.setdefault(alert["episode_id"], alert)
    resolves = {a["episode_id"]: a for a in messages if a["status"] == "resolved"}
    assert set(resolves) == set(first)
    for episode in first:
        told = [a for a in run["notified"] if a["labels"]["episode"] == episode]
        assert [a["status"] for a in told] == ["firing", "resolved"], episode
        firing, resolved = told
        assert _stamp(firing["startsAt"]) == _stamp(first[episode]["as_of"])
        assert _stamp(resolved["endsAt"]) == _stamp(resolves[episode]["as_of"])
        assert resolved["labels"] == firing["labels"]
