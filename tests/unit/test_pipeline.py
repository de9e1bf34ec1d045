"""The whole per-event path (decode, dedup, count, detect, Parquet) on scenario traffic.

No broker here: plain dicts stand in for the Faust tables, so this checks the domain
outcome against the scenario's ground truth. tests/integration does the same through
Kafka and a real worker.
"""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta

import jsonschema
import pytest

from load_tests.backtest import backtest
from load_tests.scenario import ScenarioSpec
from streams import report
from streams.counts import parse_profile_key
from streams.schemas import load_json

SPEC = ScenarioSpec(days=38, checkpoints=("zhibek-zholy", "korday", "kazygurt"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    result = backtest(SPEC, root)
    return result.manifest, result.tables, root, result.outcomes, result.reasons, result.alerts


def test_counts_equal_the_scenario_ground_truth(run):
    manifest, tables, _, outcomes, _, _ = run
    counted = {}
    for key, profile in tables.profiles.items():
        checkpoint_id, direction, day = parse_profile_key(key)
        counted[(checkpoint_id, day.isoformat(), direction)] = profile["total"]
    assert counted == {key: n for key, n in manifest.expected_counts.items() if n}
    assert outcomes["counted"] == manifest.unique_events
    assert outcomes["duplicate"] == manifest.sent["duplicate"]
    assert outcomes["invalid"] == manifest.sent["invalid"]


def test_every_invalid_message_has_a_reason(run):
    manifest, *_, reasons, _ = run
    assert sum(reasons.values()) == manifest.sent["invalid"]
    assert len(reasons) >= 4


def test_parquet_history_matches_counts(run):
    manifest, _, root, *_ = run
    assert report.events_count(root) == manifest.unique_events
    reconciled = report.reconcile(root)
    assert reconciled["agree"], reconciled["days"][:5]
    assert reconciled["counted_total"] == manifest.unique_events


def test_jibek_joly_surge_is_raised_once_and_quantified(run):
    *_, alerts = run
    surge = next(a for a in SPEC.anomalies if a.name == "jibek-joly-spring-surge")
    jj = [a for a in alerts if a["checkpoint_id"] == "zhibek-zholy"]
    opened = [a for a in jj if a["status"] == "firing" and a["window"] != "full_day"]
    assert len(opened) == 1
    first = opened[0]
    assert (first["kind"], first["direction"]) == ("surge", "entry")
    assert surge.starts <= date.fromisoformat(first["local_day"]) <= surge.starts + timedelta(days=2)
    assert (first["drivers"][0]["nationality"], first["drivers"][0]["purpose"]) == ("UZB", "labour")
    plateau = [
        a
        for a in jj
        if a["window"] == "full_day"
        and date.fromisoformat(a["local_day"]) >= surge.starts + timedelta(days=4)
    ]
    assert plateau, "no daily update during the plateau"
    for update in plateau:
        assert update["episode_id"] == first["episode_id"]
        assert update["drivers"][0]["expected"] < 1600  # UZB labour was ~1,200 a day
        assert update["observed"] > 1.6 * update["expected"]
    # ~3,700 UZB labour (~4,000 UZB) a day on the plateau, weekday rhythm on top.
    assert 3200 <= statistics.median(u["drivers"][0]["observed"] for u in plateau) <= 4200


def test_quiet_period_raises_nothing(run):
    *_, alerts = run
    first_anomaly = min(a.starts for a in SPEC.anomalies)
    early = [a for a in alerts if date.fromisoformat(a["local_day"]) < first_anomaly]
    assert early == []


def test_closure_and_crackdown_are_drops(run):
    *_, alerts = run
    closure = next(a for a in SPEC.anomalies if a.checkpoint_id == "korday")
    korday = [a for a in alerts if a["checkpoint_id"] == "korday" and a["status"] == "firing"]
    assert {a["direction"] for a in korday if a["kind"] == "drop"} == {"entry", "exit"}
    for alert in korday:
        assert alert["local_day"] == closure.starts.isoformat()
    crackdown = [
        a
        for a in alerts
        if a["checkpoint_id"] == "kazygurt" and a["kind"] == "drop" and a["direction"] == "entry"
    ]
    assert crackdown and crackdown[0]["drivers"][0]["nationality"] == "TJK"


def test_alerts_are_raised_on_stream_time_not_wall_time(run):
    *_, alerts = run
    for alert in alerts:
        as_of = datetime.fromisoformat(alert["as_of"])
        assert as_of.year == 2024


def test_every_alert_matches_the_alert_schema(run):
    *_, alerts = run
    validator = jsonschema.Draft202012Validator(
        load_json("alert.v1.json"), format_checker=jsonschema.FormatChecker()
    )
    assert alerts
    for alert in alerts:
        validator.validate(alert)
