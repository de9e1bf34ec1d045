"""deploy/prometheus: the config and rules pass promtool's checks and unit tests, every alert
has a case that fires, and every metric a rule reads is one some process exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from samples import exported_metric_names

from streams.notify.metrics import NotifyMetrics
from streams.worker.metrics import WorkerMetrics

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))

#: Exported by ``crossings notify`` (its own process and port), not by the worker.
NOTIFY_METRICS = exported_metric_names(NotifyMetrics().registry)


def _promtool(need_binary, *args: str) -> str:
    promtool = need_binary("promtool", "prometheus")
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_check_config(need_binary):
    assert "SUCCESS" in _promtool(need_binary, "check", "config", "prometheus.yml")


def test_promtool_check_rules(need_binary):
    assert RULE_FILES
    assert "SUCCESS" in _promtool(need_binary, "check", "rules", *map(str, RULE_FILES))


def test_promtool_test_rules(need_binary):
    assert TEST_FILES
    assert "SUCCESS" in _promtool(need_binary, "test", "rules", *map(str, TEST_FILES))


def _rules() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_every_alert_has_a_case_that_fires_and_a_readme_entry():
    fired = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts and alerts <= fired, alerts - fired
    readme = (ROOT / "README.md").read_text()
    assert {alert for alert in alerts if f"`{alert}`" not in readme} == set()


def test_rules_read_only_metrics_that_are_exported():
    """A typo in a metric name makes a rule silently empty: every crossings_* name a rule
    reads is the worker's (its registry) or crossings notify's, or a recording rule's."""
    exported = exported_metric_names(WorkerMetrics().registry)
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    # Names alone, not the middle of a recording rule's level:metric:operations.
    names = re.compile(r"(?<![:\w])crossings_[a-z_]+(?![:\w(|])")
    read = {name for rule in _rules() for name in names.findall(rule["expr"])}
    # The one regex selector spells three names in parts.
    read |= {f"crossings_events_{kind}_total" for kind in ("processed", "duplicate", "invalid")}
    assert read - exported - NOTIFY_METRICS - recorded == set()
    assert len(read) >= 10


def test_promtool_check_compose_config(need_binary, tmp_path):
    # As the compose stack mounts it: its config beside the shipped rules.
    shutil.copy(PROMETHEUS.parent / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").symlink_to(PROMETHEUS / "rules")
    promtool = need_binary("promtool", "prometheus")
    command = [promtool, "check", "config", "prometheus.yml"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
