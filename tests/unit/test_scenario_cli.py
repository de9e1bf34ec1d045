"""``python -m load_tests.scenario replay`` as the README runs it (issue 20, finding 7): its
help shows every default and says what each option does; before sending it says how many
records, for how long, and which anomalies the window holds (none in a short one)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from load_tests.scenario import ScenarioSpec
from load_tests.scenario.cli import _replay_plan, main


class _Producer:
    """Stands in for aiokafka.AIOKafkaProducer (what ``replay`` sends with): counts sends."""

    sent = 0

    def __init__(self, **config) -> None:
        _Producer.sent = 0

    async def start(self) -> None:
        return None

    async def send(self, topic, key=None, value=None, timestamp_ms=None):
        import asyncio

        _Producer.sent += 1
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def test_replay_help_shows_defaults_and_a_description_for_every_option() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "load_tests.scenario", "replay", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    ).stdout
    options = dict(re.findall(r"^  (--[a-z-]+)(?: [A-Z_]+)?\s+(.*)$", text, re.MULTILINE))
    assert set(options) >= {"--start", "--days", "--seed", "--rate", "--broker", "--topic", "--labels"}
    assert all(description.strip() for description in options.values()), options
    for option, default in [("--days", "42"), ("--start", "2024-02-05"), ("--broker", "KAFKA_BOOTSTRAP")]:
        assert f"(default: {default}" in options[option]
    assert "as fast as possible" in options["--rate"]
    assert "8.5 minutes at 500/s" in " ".join(text.split())


def test_the_plan_says_how_long_and_which_anomalies() -> None:
    plan = _replay_plan(ScenarioSpec(), 253_267, "127.0.0.1:9092", "crossings.events.v1", 500)
    assert "sending 253,267 records (2024-02-05 .. 2024-03-17, 42 days)" in plan
    assert "at 500/s: about 8 min 27 s" in plan
    assert "jibek-joly-spring-surge from 2024-03-04" in plan and "korday-closure" in plan


def test_a_short_window_says_it_has_no_anomaly() -> None:
    plan = _replay_plan(ScenarioSpec(days=7), 40_000, "b:9092", "t", None)
    assert "as fast as the broker takes them" in plan
    assert "anomalies: none in this window" in plan and "expect no alerts" in plan


def test_replay_says_what_it_sends_before_it_sends(monkeypatch, capsys) -> None:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", _Producer)
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("CROSSINGS_KAFKA_PORT", "9092")  # the default broker: where crossings looks
    assert main(["replay", "--days", "2", "--other-scale", "0.05", "--rate", "100000", "--no-progress"]) == 0
    said = capsys.readouterr().err.splitlines()
    assert said[0] == (
        f"sending {_Producer.sent:,} records (2024-02-05 .. 2024-02-06, 2 days) to crossings.events.v1 "
        "at 127.0.0.1:9092 at 100,000/s: about 0 min 00 s (Ctrl-C stops it)"
    )
    assert said[1].startswith("anomalies: none in this window")
    assert _Producer.sent > 100


@pytest.mark.parametrize("command", ["generate", "summary"])
def test_other_commands_show_defaults_too(command: str) -> None:
    text = subprocess.run(
        [sys.executable, "-m", "load_tests.scenario", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(default: 42)" in " ".join(text.split())
