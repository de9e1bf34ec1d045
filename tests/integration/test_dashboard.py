"""The Grafana dashboard against a real Prometheus scraping a real worker and a real
``crossings notify`` during a scenario with a surge: every variable query and every panel
query returns data, through the committed scrape config and recording rules. Notify
delivers the surge's alerts to a webhook receiver that fails its first answers, so the
delivery panels (outcomes, retries, latency) have something to show.

Grafana itself is not installed: its part (substituting variables, asking Prometheus) is
done here the way it does it, through Prometheus' HTTP API.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from load_tests.harness import WorkerProcess, free_port, wait_committed
from load_tests.notify_harness import NotifyProcess, Recorder, topic_messages, wait_for
from load_tests.prometheus import PrometheusServer, scrape_config
from load_tests.scenario import DEFAULT_START, Scenario, ScenarioSpec, closure, labour_surge, replay
from streams.ops.topics import ensure_topics
from streams.settings import PROJECT_ROOT, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "dashboards" / "crossings.json"
ALERT_RULES = PROJECT_ROOT / "deploy" / "prometheus" / "rules" / "alerts.yml"

# Two checkpoints for 17 days (under half a minute of work here): past the detector's
# 14-day warm-up, so the band panels have a baseline to show;
# a UZB labour surge at Zhibek Zholy on the last two days, still open at the end (alerts for
# notify to deliver, an episode for the annotation), and Korday silent both ways on the last
# day (a post-level episode, direction "both", for the annotation too).
LAST_DAY = DEFAULT_START + timedelta(days=16)
SPEC = ScenarioSpec(
    days=17,
    checkpoints=("zhibek-zholy", "korday"),
    anomalies=(
        labour_surge(
            DEFAULT_START + timedelta(days=15),
            LAST_DAY,
            "UZB labour entries x3 for the last two days",
        ),
        closure("korday", LAST_DAY, LAST_DAY, "Korday silent on the last day"),
    ),
)

#: Panels on metrics of `crossings notify` (its own process, scraped as job crossings-notify).
NOTIFY_PANELS = {"Deliveries by outcome", "Delivery retries", "Delivery latency (p95)"}
#: A firing pipeline alert is something this healthy run must not have: valid PromQL is all
#: that annotation can be asked for.
EXPECTED_EMPTY_ANNOTATIONS = {"Pipeline alerts"}
#: The webhook receiver answers 503 to this many requests first: notify retries them.
FAILED_ANSWERS = 2


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, tmp_path_factory, need_binary):
    binary = need_binary("prometheus", "prometheus")
    namespace = f"it-dash-{free_port()}"
    home = Path(tmp_path_factory.mktemp("dash"))
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
    }
    settings = load_settings(env)
    ensure_topics(settings)
    receiver = Recorder(lambda call, index: 503 if index < FAILED_ANSWERS else 204).start()
    (home / "secret").write_text("dashboard-secret")
    notify_env = {
        **env,
        "CROSSINGS_WEBHOOK_URLS": f"{receiver.url}/hook",
        "CROSSINGS_WEBHOOK_SECRET_FILE": str(home / "secret"),
        "CROSSINGS_NOTIFY_START": "earliest",
        "CROSSINGS_NOTIFY_RETRY_MAX_SECONDS": "1",
        "CROSSINGS_NOTIFY_WEB_PORT": str(free_port()),
    }
    worker = WorkerProcess(env, free_port(), home / "worker.log")
    notify = NotifyProcess(notify_env, home / "notify.log")
    prometheus = PrometheusServer(binary, home / "prometheus", free_port())
    worker.start(timeout=180)
    try:
        notify.start()
        targets = {
            "crossings-worker": [f"127.0.0.1:{worker.web_port}"],
            "crossings-notify": [f"127.0.0.1:{notify_env['CROSSINGS_NOTIFY_WEB_PORT']}"],
        }
        prometheus.start(scrape_config(targets, interval="1s"))
        started = time.time()
        stats = replay(
            list(Scenario(SPEC).records()), kafka_bootstrap, settings.topics.events, progress=False
        )
        worker.wait_handled(stats.sent, timeout=300)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=120)
        alerts = topic_messages(kafka_bootstrap, settings.topics.alerts)
        assert alerts, "the surge raised no alert: nothing for notify to deliver"
        wait_for(
            "notify delivering every alert",
            lambda: notify.metric("crossings_notify_deliveries_total", outcome="delivered") == len(alerts),
            60,
        )
        yield prometheus, started
    finally:
        prometheus.stop()
        notify_code = notify.stop() if notify.process else 0
        receiver.stop()
        assert worker.stop() == 0, (home / "worker.log").read_text()[-3000:]
        assert notify_code == 0, notify.log_tail()


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _substitute(expr: str, values: dict[str, list[str]]) -> str:
    """Grafana's interpolation of a multi-value variable inside ``=~"..."``: a regex
    alternation of the values, regex characters escaped with a backslash that is itself
    escaped for the PromQL string (as Grafana's Prometheus datasource does)."""

    def escape(value: str) -> str:
        return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)

    return re.sub(r"\$(\w+)", lambda m: "(" + "|".join(map(escape, values[m.group(1)])) + ")", expr)


def _variables(prometheus: PrometheusServer) -> dict[str, list[str]]:
    return {
        variable["name"]: prometheus.label_values(variable["query"])
        for variable in _dashboard()["templating"]["list"]
        if variable["type"] == "query"
    }


def _empty_queries(prometheus: PrometheusServer, started: float) -> list[str]:
    """Every panel target that returns nothing; raises on bad PromQL."""
    values = _variables(prometheus)
    empty = []
    now = time.time()
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = _substitute(target["expr"], values)
            if target.get("instant"):
                result = prometheus.query(expr)
            else:
                result = prometheus.query_range(expr, started, now)
            if not result:
                empty.append(f"{panel['title']} [{target['refId']}]: {expr}")
    return empty


def test_every_variable_returns_values(stack):
    prometheus, _ = stack
    values = _variables(prometheus)
    assert set(values) == {"checkpoint", "direction"}
    assert {"zhibek-zholy", "korday"} <= set(values["checkpoint"])
    assert values["direction"] == ["entry", "exit"]


def test_every_panel_query_returns_data(stack):
    """Recording rules need a few evaluations (1 s here) before a rate has two points: the
    queries are asked again until each has data, or the time is up."""
    prometheus, started = stack
    deadline = time.monotonic() + 90
    empty = _empty_queries(prometheus, started)
    while empty and time.monotonic() < deadline:
        time.sleep(3)
        empty = _empty_queries(prometheus, started)
    assert empty == [], prometheus.log_tail()
    titles = {panel["title"] for panel in _dashboard()["panels"]}
    assert titles >= NOTIFY_PANELS


def test_notify_panels_show_the_deliveries_and_retries(stack):
    """Not just any data: the delivery panels show notify's webhook deliveries and the
    retries of the answers that failed, from the crossings-notify job."""
    prometheus, _ = stack
    up = prometheus.query('up{job="crossings-notify"}')
    assert [float(s["value"][1]) for s in up] == [1.0]
    delivered = prometheus.query('crossings_notify_deliveries_total{outcome="delivered"}')
    assert [s["metric"]["sink"] for s in delivered] == ["webhook"]
    assert float(delivered[0]["value"][1]) > 0
    retries = prometheus.query("crossings_notify_retries_total")
    assert sum(float(s["value"][1]) for s in retries) == FAILED_ANSWERS


METRIC = {
    "lower": "crossings_band_lower",
    "expected": "crossings_band_expected",
    "upper": "crossings_band_upper",
    "today": "crossings_today_crossings",
}


def test_band_panel_shows_observed_inside_a_positive_band_and_the_surge_above_it(stack):
    """The band the dashboard draws is real numbers, expected between lower and upper, and
    the observed count it is drawn around is where the scenario put it: Jibek Joly's exits
    (normal) inside the band, its entries (the UZB labour surge, x3) above it."""
    prometheus, _ = stack
    where = {}
    for direction in ("entry", "exit"):
        selector = f'{{checkpoint="zhibek-zholy",direction="{direction}"}}'
        lower, expected, upper, observed = (
            float(prometheus.query(f"{METRIC[name]}{selector}")[0]["value"][1])
            for name in ("lower", "expected", "upper", "today")
        )
        assert 0 <= lower <= expected <= upper, (direction, lower, expected, upper)
        assert upper > 0
        where[direction] = (lower, observed, upper)
    lower, observed, upper = where["exit"]
    assert lower <= observed <= upper, where
    lower, observed, upper = where["entry"]
    assert observed > upper, where


def test_annotations_are_valid_promql_and_the_open_episodes_are_annotated(stack):
    prometheus, _ = stack
    values = _variables(prometheus)
    annotations = {a["name"]: a for a in _dashboard()["annotations"]["list"]}
    assert set(annotations) == EXPECTED_EMPTY_ANNOTATIONS | {"Surge/drop episodes"}
    for name in EXPECTED_EMPTY_ANNOTATIONS:
        prometheus.query(_substitute(annotations[name]["expr"], values))  # raises on an error answer
    episodes = prometheus.query(_substitute(annotations["Surge/drop episodes"]["expr"], values))
    assert sorted(
        (s["metric"]["checkpoint"], s["metric"]["direction"], s["metric"]["kind"]) for s in episodes
    ) == [
        ("korday", "both", "drop"),
        ("zhibek-zholy", "entry", "surge"),
    ]


def test_no_pipeline_alert_fires_on_a_healthy_run(stack):
    """No pipeline alert's condition holds, asked of each rule's expression itself: a rule
    with a ``for:`` longer than this run would never reach ``firing`` (nor ``pending``
    before its first evaluation), so ALERTS alone could only catch the one rule without."""
    prometheus, _ = stack
    rules = [
        rule
        for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert len(rules) >= 7
    # The stack's webhook answers 503 at first (notify retries): until a delivery's counter
    # has two samples in Prometheus, CrossingsDeliveryFailing's "retries unless deliveries"
    # holds for a scrape or two. A healthy run settles: every condition is empty within a
    # minute, far inside every rule's `for:`.
    deadline = time.monotonic() + 90
    while True:
        holding = {rule["alert"]: result for rule in rules if (result := prometheus.query(rule["expr"]))}
        if not holding or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert holding == {}
    # Neither pending nor firing, once the rules have been evaluated on the settled run.
    deadline = time.monotonic() + 60
    while (alerts := prometheus.query('ALERTS{alertname=~"Crossings.*"}')) and time.monotonic() < deadline:
        time.sleep(3)
    assert alerts == []
