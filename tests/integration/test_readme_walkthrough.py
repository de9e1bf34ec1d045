"""The README's "Running it yourself", run as written in a fresh CROSSINGS_HOME (issue 20,
"Done means"): every command's output is non-empty and the outputs agree with each other
(the reports, ``sql``, a ``replay`` of the lake into a second folder, a ``backtest`` of it).

Run as written but for three things a test must change: the broker's port (a port of the
test's own, through CROSSINGS_KAFKA_PORT, and in the scenario's ``--broker``), the
scenario's pace (``--rate 500`` would take 8.5 minutes: 31 days as fast as possible, the
Jibek Joly surge included) and ``notify`` (it needs receivers; not run).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from load_tests.harness import HANDLED, free_broker_port, free_port, scrape

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def walkthrough() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running it yourself", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.partition("  #")[0].strip() for line in block.splitlines() if line.strip()]


def readme_command(prefix: str) -> str:
    """The first command of the README (any section) starting with ``prefix``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for line in readme.splitlines():
        if line.startswith(prefix):
            return line.partition("  #")[0].strip()
    raise AssertionError(f"no command {prefix!r} in the README")


def test_the_readme_walkthrough_gives_outputs_that_agree(tmp_path: Path) -> None:
    # The broker's controller listener takes port + 1: both must be free (CI once found
    # port + 1 taken with a plain free_port()), and the worker's web port is neither.
    home, port = tmp_path / "home", free_broker_port()
    web_port = free_port()
    while web_port in (port, port + 1):
        web_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CROSSINGS_", "KAFKA_BOOTSTRAP"))},
        "CROSSINGS_HOME": str(home),
        "CROSSINGS_KAFKA_PORT": str(port),
        "CROSSINGS_WEB_PORT": str(web_port),
    }
    bootstrap = f"127.0.0.1:{port}"

    def argv(command: str) -> list[str]:
        words = shlex.split(command.replace("127.0.0.1:9092", bootstrap))
        if words[0].startswith(".venv/bin/"):
            words[0] = str(BIN / words[0].removeprefix(".venv/bin/"))
        return words

    said: dict[str, str] = {}

    def run(command: str, timeout: float = 600) -> str:
        result = subprocess.run(
            argv(command), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
        assert result.stdout.strip() or result.stderr.strip(), command
        said[command] = result.stderr
        return result.stdout

    commands = walkthrough()
    assert commands[0] == "make setup"  # done: this is the project's own environment
    up, topics, worker, notify, scenario, report, report_alerts, down = commands[1:]
    assert "kafka up" in up and "worker" in worker and "notify" in notify and "kafka down" in down
    worker_log = (tmp_path / "worker.log").open("w")
    running: subprocess.Popen | None = None
    try:
        run(up)
        created = run(topics)
        assert len([line for line in created.splitlines() if ": " in line]) == 5, created
        running = subprocess.Popen(
            argv(worker), env=env, cwd=tmp_path, stdout=worker_log, stderr=subprocess.STDOUT
        )
        assert "--rate 500" in scenario
        command = scenario.replace("--rate 500", "--days 31") + " --no-progress"
        run(command, timeout=900)
        sent = int(re.search(r"^sent ([\d,]+) records", said[command], re.MULTILINE)[1].replace(",", ""))

        def daily_total() -> int | None:
            result = subprocess.run(
                argv(report + " daily --format json"), env=env, capture_output=True, text=True
            )
            return sum(row["total"] for row in json.loads(result.stdout)) if result.returncode == 0 else None

        deadline, last = time.monotonic() + 900, None
        while True:  # until the worker has counted everything and committed it
            assert running.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            try:
                totals = scrape(f"http://127.0.0.1:{web_port}/metrics")
            except OSError:  # not serving yet
                totals = {}
            handled = sum(totals.get(name, 0) for name in HANDLED)
            counted = totals.get("crossings_events_processed_total", 0)
            total = daily_total()
            if handled == sent and total == counted and total == last:
                break
            last = total
            assert time.monotonic() < deadline, "the worker did not count the scenario in 15 min"
            time.sleep(5)
        # While the worker runs, the lake (DuckLake, the default) already holds every row it
        # committed: the raw events agree with the counts, nothing waits to be shown.
        live = run(report)
        assert "Not shown yet" not in live and "Crossings per local day" in live
        live_agree = re.search(r"agree \(([\d,]+) checkpoint-days, ([\d,]+) crossings\)", live)
        assert live_agree and int(live_agree[2].replace(",", "")) == counted, live
        running.send_signal(signal.SIGINT)  # Ctrl-C
        assert running.wait(120) == 0
        running = None

        everything = run(report)
        assert "Not shown yet" not in everything and "MISMATCH" not in everything
        agree = re.search(r"agree \(([\d,]+) checkpoint-days, ([\d,]+) crossings\)", everything)
        assert agree, everything
        total = int(agree[2].replace(",", ""))
        daily = json.loads(run(report + " daily --format json"))
        assert total == sum(row["total"] for row in daily) > 100_000
        alerts = json.loads(run(report_alerts))
        assert alerts and {a["checkpoint_id"] for a in alerts} == {"zhibek-zholy"}
        assert any(a["kind"] == "surge" for a in alerts)
        sql = json.loads(run('.venv/bin/crossings sql "SELECT count(*) AS n FROM events" --format json'))
        assert sql == [{"n": total}]

        # The README's replay of a lake into another folder: the same counts and alerts.
        replay = readme_command(".venv/bin/crossings replay --parquet")
        replayed = run(
            replay.replace(".local/data", str(home / "data")).replace("/tmp/lake2", str(tmp_path / "lake2"))
        )
        assert f"replayed {total:,} records" in replayed and f"{total:,} counted" in replayed
        again = json.loads(run(report + f" daily --format json --data {tmp_path / 'lake2'}"))
        assert again == daily
        replayed_alerts = json.loads(run(report_alerts + f" --data {tmp_path / 'lake2'}"))
        first_surge = min(a["local_day"] for a in alerts if a["kind"] == "surge")
        assert first_surge == min(a["local_day"] for a in replayed_alerts if a["kind"] == "surge")

        # A backtest of the lake finds the surge the worker raised.
        episodes = [
            json.loads(line)
            for line in run(
                f".venv/bin/crossings backtest {home / 'data'} --format json --no-progress"
            ).splitlines()
        ]
        assert any(e["checkpoint"] == "zhibek-zholy" and e["kind"] == "surge" for e in episodes), episodes
    finally:
        if running is not None and running.poll() is None:
            running.kill()
        worker_log.close()
        subprocess.run(argv(down), env=env, cwd=tmp_path, capture_output=True, timeout=120)
