"""The delivery stage's decisions: Alertmanager form, firing set, signatures, backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from pathlib import Path

import fastjsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.alert_type import alert_from_dict, alert_to_dict
from streams.notify.alertmanager import alert_name, to_alertmanager
from streams.notify.firing import FiringSet
from streams.notify.message import AlertRecord, MalformedAlert
from streams.notify.retry import RetryPolicy, Verdict, verdict
from streams.notify.signing import signature, signed_headers, verify
from streams.schemas import schemas_dir
from streams.settings import ConfigError, Secret, load_settings

validate_alert = fastjsonschema.compile(json.loads((schemas_dir() / "alert.v1.json").read_text()))


def message(status: str = "firing", *, kind: str = "surge", ratio: float = 2.5, as_of: str, **extra) -> dict:
    alert = {
        "version": 1,
        "alert_id": f"id-{status}-{as_of}",
        "episode_id": "zhibek-zholy:entry:surge:2024-03-04T0900",
        "status": status,
        "kind": kind,
        "checkpoint_id": "zhibek-zholy",
        "checkpoint_name": "Zhibek Zholy (Jibek Joly)",
        "direction": "entry",
        "local_day": "2024-03-04",
        "window": "running_day",
        "as_of": as_of,
        "raised_at": as_of,
        "observed": 3980 if status == "firing" else 1500,
        "expected": 1510.0,
        "ratio": ratio,
        "score": 9.1,
        "drivers": [
            {"nationality": "UZB", "purpose": "labour", "observed": 3400, "expected": 1050.0, "delta": 2350.0}
        ],
        "summary": "surge at Zhibek Zholy entry: 3,980 vs 1,510 expected",
        **extra,
    }
    validate_alert(alert)
    return alert


def typed(status: str = "firing", **fields):
    """The message as notify holds it: the typed alert."""
    return alert_from_dict(message(status, **fields))


OPENED = "2024-03-04T04:00:00+00:00"
UPDATED = "2024-03-04T19:00:00+00:00"
RESOLVED = "2024-03-06T04:00:00+00:00"


def test_alert_names_say_surge_drop_or_closed():
    assert alert_name(typed(as_of=OPENED)) == "CrossingSurge"
    assert alert_name(typed(as_of=OPENED, kind="drop", ratio=0.4)) == "CrossingDrop"
    assert alert_name(typed(as_of=OPENED, kind="drop", ratio=0.0)) == "CheckpointClosed"


def test_alertmanager_form_of_a_firing_and_a_resolved_message():
    firing = to_alertmanager(
        typed(as_of=OPENED),
        name="CrossingSurge",
        starts_at=OPENED,
        generator_template="http://g/{checkpoint}",
    )
    assert firing["labels"] == {
        "alertname": "CrossingSurge",
        "checkpoint": "zhibek-zholy",
        "direction": "entry",
        "severity": "warning",
        "episode": "zhibek-zholy:entry:surge:2024-03-04T0900",
    }
    assert "endsAt" not in firing  # Alertmanager keeps it alive while it is re-posted
    assert firing["startsAt"] == OPENED and firing["generatorURL"] == "http://g/zhibek-zholy"
    notes = firing["annotations"]
    assert notes["observed"] == "3980" and notes["expected"] == "1510.0"
    assert notes["top_groups"] == "UZB labour 3,400 vs 1,050 (+2,350)"
    assert "well above normal" in notes["description"] and "What to do" in notes["description"]
    assert all(isinstance(v, str) for v in notes.values())  # Alertmanager wants strings
    resolved = to_alertmanager(
        typed("resolved", as_of=RESOLVED),
        name="CrossingSurge",
        starts_at=OPENED,
        generator_template="http://g",
    )
    assert resolved["endsAt"] == RESOLVED and resolved["labels"] == firing["labels"]
    assert "back within their normal range" in resolved["annotations"]["description"]


def test_firing_set_keeps_name_and_start_of_the_episode_and_drops_it_on_resolve():
    firing = FiringSet()
    opened = firing.apply(typed(kind="drop", ratio=0.0, as_of=OPENED))
    assert opened.name == "CheckpointClosed"
    # The next day's figures are only a drop, but it is the same alert to Alertmanager.
    updated = firing.apply(typed(kind="drop", ratio=0.3, as_of=UPDATED, window="full_day"))
    assert (updated.name, updated.starts_at, updated.latest.as_of) == ("CheckpointClosed", OPENED, UPDATED)
    assert len(firing) == 1
    resolved = firing.apply(typed("resolved", kind="drop", ratio=0.95, as_of=RESOLVED))
    assert (resolved.name, resolved.starts_at) == ("CheckpointClosed", OPENED)
    assert len(firing) == 0
    assert resolved.posted("http://g")["endsAt"] == RESOLVED


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40))
def test_firing_set_holds_exactly_the_episodes_whose_last_message_fires(steps):
    """Against a brute-force oracle: the open episodes are those whose latest message is
    firing; rebuilding from any prefix and applying the rest gives the same set."""
    alerts = [
        message("resolved" if resolve else "firing", as_of=f"2024-03-0{1 + i % 9}T00:00:00+00:00")
        | {"episode_id": f"ep-{episode}"}
        for i, (episode, resolve) in enumerate(steps)
    ]
    firing = FiringSet()
    for alert in alerts:
        firing.apply(alert_from_dict(alert))
    last = {a["episode_id"]: a["status"] for a in alerts}
    assert {e.latest.episode_id for e in firing.open()} == {ep for ep, s in last.items() if s == "firing"}
    for episode in firing.open():
        newest = [a for a in alerts if a["episode_id"] == episode.latest.episode_id][-1]
        assert episode.latest == alert_from_dict(newest)


def test_idempotency_key_is_episode_and_offset():
    value = json.dumps(message(as_of=OPENED)).encode()
    record = AlertRecord.from_kafka(42, value)
    assert record.idempotency_key == "zhibek-zholy:entry:surge:2024-03-04T0900:42"


@given(secret=st.binary(min_size=1, max_size=64), stamp=st.integers(0, 2**40), body=st.binary(max_size=500))
def test_signature_is_hmac_sha256_of_timestamp_dot_body(secret, stamp, body):
    expected = hmac.new(secret, str(stamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = signed_headers(secret, stamp, body)
    assert headers["X-Crossings-Signature"] == f"v1={expected}"
    assert verify(secret, headers["X-Crossings-Timestamp"], headers["X-Crossings-Signature"], body, now=stamp)


@given(body=st.binary(min_size=1, max_size=200), flip=st.integers(0, 199))
def test_a_changed_body_secret_or_old_timestamp_does_not_verify(body, flip):
    secret, stamp = b"k", 1_700_000_000
    sig = signature(secret, stamp, body)
    changed = bytearray(body)
    changed[flip % len(body)] ^= 1
    assert not verify(secret, str(stamp), sig, bytes(changed), now=stamp)
    assert not verify(b"other", str(stamp), sig, body, now=stamp)
    assert not verify(secret, str(stamp), sig, body, now=stamp + 301)
    assert not verify(secret, None, sig, body, now=stamp)


@given(attempt=st.integers(1, 10_000), seed=st.integers(0, 2**32))
def test_backoff_grows_to_its_cap_with_jitter_inside_half_to_full_step(attempt, seed):
    policy = RetryPolicy(max_seconds=60.0, give_up_seconds=3600.0)
    delay = policy.delay(attempt, random.Random(seed))
    step = policy.step(attempt)
    assert step / 2 <= delay <= step <= 60.0
    assert step == min(60.0, 0.5 * 2 ** (attempt - 1)) if attempt < 60 else step == 60.0
    assert policy.step(attempt + 1) >= step


def test_give_up_is_measured_from_the_first_attempt():
    policy = RetryPolicy(max_seconds=60.0, give_up_seconds=600.0)
    assert not policy.gives_up(elapsed=500.0, next_delay=60.0)
    assert policy.gives_up(elapsed=590.0, next_delay=30.0)
    # A receiver down for ten minutes is asked a bounded number of times at the default cap.
    rng, elapsed, attempts = random.Random(1), 0.0, 0
    while elapsed < 600:
        attempts += 1
        elapsed += policy.delay(attempts, rng)
    assert attempts < 30


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (400, Verdict.REJECTED), (401, Verdict.REJECTED),
     (404, Verdict.REJECTED), (408, Verdict.RETRY), (425, Verdict.RETRY), (429, Verdict.RETRY),
     (500, Verdict.RETRY), (503, Verdict.RETRY), (302, Verdict.RETRY)],
)  # fmt: skip
def test_what_an_answer_means(status, expected):
    assert verdict(status) is expected


def test_notify_settings_read_urls_and_the_secret_from_a_file(tmp_path: Path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    settings = load_settings(
        {
            "CROSSINGS_ALERTMANAGER_URLS": "http://am-1:9093/, http://am-2:9093",
            "CROSSINGS_WEBHOOK_URLS": "https://hooks.example/x/T0KEN?sig=abc",
            "CROSSINGS_WEBHOOK_SECRET_FILE": str(secret_file),
            "CROSSINGS_NOTIFY_RESEND_SECONDS": "30",
        }
    )
    notify = settings.notify
    assert [r.url for r in notify.alertmanagers] == ["http://am-1:9093", "http://am-2:9093"]
    assert notify.webhook_secret == Secret("s3cret")
    assert notify.resend_seconds == 30.0 and notify.give_up_seconds == 3600.0
    hook = notify.webhooks[0]
    assert hook.target == "https://hooks.example"
    # Neither the secret nor the URL's token shows in the settings' repr (logs, tracebacks).
    shown = repr(settings)
    assert "s3cret" not in shown and "T0KEN" not in shown and "sig=abc" not in shown
    assert len({r.id for r in notify.receivers}) == 3


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CROSSINGS_WEBHOOK_URLS": "https://h/x"}, "CROSSINGS_WEBHOOK_SECRET"),
        ({"CROSSINGS_WEBHOOK_SECRET": "s"}, "CROSSINGS_WEBHOOK_URLS"),
        ({"CROSSINGS_ALERTMANAGER_URLS": "am:9093"}, "CROSSINGS_ALERTMANAGER_URLS"),
        ({"CROSSINGS_WEBHOOK_URLS": "ftp://h/x", "CROSSINGS_WEBHOOK_SECRET": "s"}, "CROSSINGS_WEBHOOK_URLS"),
        (
            {
                "CROSSINGS_WEBHOOK_URLS": "https://h/x",
                "CROSSINGS_WEBHOOK_SECRET": "s",
                "CROSSINGS_WEBHOOK_SECRET_FILE": "f",
            },
            "CROSSINGS_WEBHOOK_SECRET",
        ),
        ({"CROSSINGS_NOTIFY_GIVE_UP_SECONDS": "0"}, "CROSSINGS_NOTIFY_GIVE_UP_SECONDS"),
        ({"CROSSINGS_NOTIFY_RESEND_SECONDS": "often"}, "CROSSINGS_NOTIFY_RESEND_SECONDS"),
        ({"CROSSINGS_NOTIFY_START": "middle"}, "CROSSINGS_NOTIFY_START"),
        ({"CROSSINGS_NOTIFY_GENERATOR_URL": "http://g/{nope}"}, "CROSSINGS_NOTIFY_GENERATOR_URL"),
    ],
)
def test_bad_notify_settings_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name) as error:
        load_settings(env)
    assert "s3cret" not in str(error.value)


VALID = json.dumps(message(as_of=OPENED)).encode()
REQUIRED = json.loads((schemas_dir() / "alert.v1.json").read_text())["required"]


@given(
    st.one_of(
        st.none(),
        st.binary(max_size=300),
        st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n]),  # cut short
        st.sampled_from(REQUIRED).map(
            lambda field: json.dumps({k: v for k, v in json.loads(VALID).items() if k != field}).encode()
        ),
        st.sampled_from(["status", "kind", "window", "observed"]).map(
            lambda field: json.dumps({**json.loads(VALID), field: "maybe"}).encode()
        ),
    )
)
def test_a_message_that_is_not_an_alert_is_malformed_with_its_reason(value):
    # Never another exception (which would stop notify at the same offset for ever).
    with pytest.raises(MalformedAlert) as raised:
        AlertRecord.from_kafka(7, value)
    assert str(raised.value).startswith(("not JSON", "not an alert", "the message has no value"))


def test_an_alert_of_the_schema_is_read():
    record = AlertRecord.from_kafka(7, VALID)
    assert record.value == VALID
    # A message without the optional fields (as of v1) reads them as None.
    assert alert_to_dict(record.alert) == {
        "cause": None,
        "scope": None,
        "band": None,
        "notes": None,
    } | json.loads(VALID)
    assert record.idempotency_key == "zhibek-zholy:entry:surge:2024-03-04T0900:7"


def test_a_receiver_exports_its_counters_at_zero_before_its_first_message():
    """A counter series that first appears at 3 shows no increase to ``rate()``; a receiver
    that failed twice and then delivered would look to CrossingsDeliveryFailing like retries
    without deliveries. Every outcome and the retries are exported at 0 from the start."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from streams.notify.metrics import OUTCOMES, NotifyMetrics
    from streams.notify.runner import ReceiverLoop, make_sink

    env = {"CROSSINGS_WEBHOOK_URLS": "https://hooks.example/x", "CROSSINGS_WEBHOOK_SECRET": "s"}
    settings = load_settings(env)
    metrics = NotifyMetrics()
    receiver = settings.notify.receivers[0]
    ReceiverLoop(settings, make_sink(settings, receiver), session=None, metrics=metrics)  # type: ignore[arg-type]
    exposed = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for sample in family.samples
    }
    receiver_labels = [("sink", "webhook"), ("target", receiver.target)]
    expected = {
        ("crossings_notify_deliveries_total", tuple(sorted([*receiver_labels, ("outcome", o)]))): 0.0
        for o in OUTCOMES
    }
    expected[("crossings_notify_retries_total", tuple(receiver_labels))] = 0.0
    assert {key: exposed.get(key) for key in expected} == expected
