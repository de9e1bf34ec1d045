"""deploy/grafana: the committed dashboard is what deploy/grafana/dashboard.py builds with
grafana-foundation-sdk, it survives the SDK's own models, its layout is sound, it reads
only exported or recorded metrics, and the provisioning files point at it."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from samples import exported_metric_names

from streams.notify.metrics import NotifyMetrics
from streams.worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
JSON_PATH = GRAFANA / "dashboards" / "crossings.json"


def _generator():
    spec = importlib.util.spec_from_file_location("crossings_dashboard", GRAFANA / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed() -> dict:
    return json.loads(JSON_PATH.read_text())


def _targets(board: dict) -> list[tuple[str, dict]]:
    return [(panel["title"], target) for panel in board["panels"] for target in panel.get("targets", [])]


def test_committed_json_is_what_the_generator_builds():
    assert JSON_PATH.read_text() == _generator().render(), "run: .venv/bin/python deploy/grafana/dashboard.py"


def test_json_round_trips_through_the_sdk_models():
    """Decoded into grafana-foundation-sdk's Dashboard model and encoded again, nothing is lost
    or added: every field is one the schema knows."""
    board = _committed()
    again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
    assert again == board


def test_layout_panels_and_targets():
    board = _committed()
    assert board["uid"] == "crossings"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"datasource", "checkpoint", "direction"}
    used = {name for _, target in _targets(board) for name in re.findall(r"\$(\w+)", target["expr"])}
    assert used <= set(variables)
    assert {a["name"] for a in board["annotations"]["list"]} == {"Surge/drop episodes", "Pipeline alerts"}


def test_dashboard_reads_only_exported_or_recorded_metrics():
    worker = exported_metric_names(WorkerMetrics().registry)
    notify = exported_metric_names(NotifyMetrics().registry)
    recorded = {
        rule["record"]
        for group in yaml.safe_load((ROOT / "deploy/prometheus/rules/recording.yml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    board = _committed()
    exprs = [target["expr"] for _, target in _targets(board)]
    exprs += [a["expr"] for a in board["annotations"]["list"]]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    names = {
        name
        for expr in exprs
        for name in re.findall(r"(?<![\w:])[a-z_]+:[a-z_:0-9]+|(?<![\w:])crossings_[a-z_]+(?![\w:])", expr)
    }
    assert names - worker - notify - recorded == set()


def test_provisioning_points_at_prometheus_and_the_dashboard_folder():
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/crossings.yml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"]
