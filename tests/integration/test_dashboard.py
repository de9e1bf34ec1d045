"""The Grafana dashboard against a real Prometheus scraping a real worker during a scenario:
every variable query and every panel query returns data (the notify panels excepted: that
process is not run here), through the committed scrape config and recording rules.

Grafana itself is not installed: its part (substituting variables, asking Prometheus) is
done here the way it does it, through Prometheus' HTTP API.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from load_tests.harness import WorkerProcess, free_port, wait_committed
from load_tests.prometheus import PrometheusServer, scrape_config
from load_tests.scenario import Scenario, ScenarioSpec, replay
from streams.ops.topics import ensure_topics
from streams.settings import PROJECT_ROOT, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "dashboards" / "crossings.json"

# Eight days of two checkpoints (~26k events): enough history for a baseline, so the band
# gauges are set (five earlier days with traffic), and short enough for ~1 minute of work.
# 17 days: past the detector's 14-day warm-up, so the band panels have a baseline to show.
SPEC = ScenarioSpec(days=17, checkpoints=("zhibek-zholy", "korday"))

#: Panels on metrics of `crossings notify`, a separate process this test does not run:
#: their queries must be valid PromQL, but they have no data here.
NOTIFY_PANELS = {"Deliveries by outcome", "Delivery retries", "Delivery latency (p95)"}
#: Annotations need something to annotate: an open surge/drop episode (this short scenario
#: has none) or a firing pipeline alert (none should fire). Valid PromQL is all we ask.
EXPECTED_EMPTY_ANNOTATIONS = {"Surge/drop episodes", "Pipeline alerts"}


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
    worker = WorkerProcess(env, free_port(), home / "worker.log")
    prometheus = PrometheusServer(binary, home / "prometheus", free_port())
    worker.start(timeout=180)
    try:
        targets = {
            "crossings-worker": [f"127.0.0.1:{worker.web_port}"],
            "crossings-notify": [],  # not run here (NOTIFY_PANELS)
        }
        prometheus.start(scrape_config(targets, interval="1s"))
        started = time.time()
        stats = replay(
            list(Scenario(SPEC).records()), kafka_bootstrap, settings.topics.events, progress=False
        )
        worker.wait_handled(stats.sent, timeout=300)
        wait_committed(kafka_bootstrap, settings.app_id, settings.topics.events, timeout=120)
        yield prometheus, started
    finally:
        prometheus.stop()
        assert worker.stop() == 0, (home / "worker.log").read_text()[-3000:]


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
    """Every panel target that returns nothing (notify panels excluded); raises on bad PromQL."""
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
            if not result and panel["title"] not in NOTIFY_PANELS:
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
    # The expected-empty panels exist, and the notify ones read notify's metrics.
    titles = {panel["title"] for panel in _dashboard()["panels"]}
    assert titles >= NOTIFY_PANELS


def test_band_panel_shows_observed_inside_a_positive_band(stack):
    """The band the dashboard draws is real numbers: expected between lower and upper."""
    prometheus, _ = stack
    for direction in ("entry", "exit"):
        selector = f'{{checkpoint="zhibek-zholy",direction="{direction}"}}'
        lower, expected, upper = (
            float(prometheus.query(f"crossings_band_{name}{selector}")[0]["value"][1])
            for name in ("lower", "expected", "upper")
        )
        assert 0 <= lower <= expected <= upper
        assert upper > 0


def test_annotations_are_valid_promql(stack):
    prometheus, _ = stack
    values = _variables(prometheus)
    annotations = _dashboard()["annotations"]["list"]
    assert {a["name"] for a in annotations} == EXPECTED_EMPTY_ANNOTATIONS
    for annotation in annotations:
        prometheus.query(_substitute(annotation["expr"], values))  # raises on an error answer


def test_no_pipeline_alert_fires_on_a_healthy_run(stack):
    prometheus, _ = stack
    assert prometheus.query('ALERTS{alertname=~"Crossings.*", alertstate="firing"}') == []
