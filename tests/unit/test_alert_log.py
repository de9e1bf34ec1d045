"""The worker's log line for an alert says its status once (not "ALERT RESOLVED resolved:")."""

from __future__ import annotations

from types import SimpleNamespace

from streams.domain.alert import alert_log_line


def test_an_alert_log_line_names_its_status_once():
    said = "surge at Korday (entry): 4,100 vs 1,200 expected"
    resolved = SimpleNamespace(status="resolved", summary=f"resolved: {said}")
    firing = SimpleNamespace(status="firing", summary=said)
    assert alert_log_line(resolved) == "alert resolved: surge at Korday (entry): 4,100 vs 1,200 expected"
    assert alert_log_line(firing) == "alert firing: surge at Korday (entry): 4,100 vs 1,200 expected"
