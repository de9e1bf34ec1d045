"""Real receivers and a real ``crossings notify`` process, for the delivery tests.

- ``Recorder``: a small HTTP server that records every POST (path, headers, body) and
  answers as its ``respond`` function says (a status; it may block first, to hold a
  delivery in flight); with ``upstream`` it first forwards the request there (a gate in
  front of a real Alertmanager, which then holds what was posted).
- ``Alertmanager``: the Debian package's binary on a free port, optionally routing every
  alert to a webhook receiver of its own (``send_resolved``, short group timers), so a
  test sees Alertmanager *notify* firing and resolved.
- ``NotifyProcess``: ``python -m streams.cli notify`` with an environment; stop (SIGTERM),
  kill (SIGKILL) and its metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from load_tests.harness import free_port, scrape


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.3) -> Any:
    """``check()``'s first truthy value; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s")
        time.sleep(every)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@dataclass(frozen=True)
class Call:
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """An HTTP receiver: records each POST, then answers ``respond(call, index)`` (an HTTP
    status; the function may block). ``upstream``: forward each POST there first."""

    def __init__(
        self,
        respond: Callable[[Call, int], int] | None = None,
        *,
        port: int | None = None,
        upstream: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.respond = respond or (lambda call, index: 204)
        self.upstream = upstream
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = Call(self.path, dict(self.headers.items()), body, time.time())
                status = recorder._upstream(call) if recorder.upstream else None
                with recorder._lock:
                    recorder.calls.append(call)
                    index = len(recorder.calls) - 1
                answer = recorder.respond(call, index)
                status = answer if status is None or answer >= 300 else status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client went away while the answer was held

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def _upstream(self, call: Call) -> int:
        headers = {k: v for k, v in call.headers.items() if k.lower() in ("content-type", "idempotency-key")}
        request = urllib.request.Request(f"{self.upstream}{call.path}", data=call.body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


#: Labels the alerts a test posts to Alertmanager itself (see ``Alertmanager.flushed``).
BARRIER_LABEL = "crossings_test_barrier"


class Alertmanager:
    """A real Alertmanager. With ``webhook``, its route sends every alert (grouped by the
    episode label, so one group per episode) to that URL, resolved ones too."""

    def __init__(self, binary: str, workdir: Path, webhook: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "alertmanager.yml"
        if webhook is None:
            config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
        else:
            config.write_text(
                "route:\n"
                "  receiver: test\n"
                "  group_by: [episode]\n"
                "  group_wait: 1s\n"
                "  group_interval: 1s\n"
                "  repeat_interval: 4h\n"
                "receivers:\n"
                "  - name: test\n"
                "    webhook_configs:\n"
                f"      - url: {webhook}\n"
                "        send_resolved: true\n"
            )
        self.log_path = workdir / "alertmanager.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'am-data'}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for("alertmanager ready", self._ready, 30)

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def active(self) -> dict[str, dict]:
        """Active alerts by their episode label (not the tests' own barriers)."""
        return {
            a["labels"]["episode"]: a
            for a in get_json(f"{self.url}/api/v2/alerts")
            if BARRIER_LABEL not in a["labels"]
        }

    def flushed(self, notified: Recorder, timeout: float = 30) -> None:
        """Return once Alertmanager has told ``notified`` (its webhook) of a new alert
        posted now: the point after which a notification it owed for what it already held
        (a doubled firing or resolve) would have to have arrived. Such a change sits in an
        older group, flushed at its next ``group_interval`` tick; this new group's first
        flush waits ``group_wait`` (as long) from now, so it comes after."""
        name = f"barrier-{time.monotonic_ns()}"
        alert = {"labels": {"alertname": "TestBarrier", "episode": name, BARRIER_LABEL: "1"}}
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps([alert]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status

        def told() -> bool:
            return any(
                a["labels"].get("episode") == name
                for call in notified.snapshot()
                for a in call.json()["alerts"]
            )

        wait_for("Alertmanager notifying the barrier alert", told, timeout, every=0.1)

    def all_alerts(self) -> list[dict]:
        """Every alert Alertmanager holds (one per label set), active or not."""
        return get_json(f"{self.url}/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


def notifications(recorder: Recorder) -> list[dict]:
    """What an Alertmanager told its webhook, in order: each alert of each notification
    (``status`` firing or resolved, ``labels``, ``startsAt``, ``endsAt``...), but the
    tests' own barriers (:meth:`Alertmanager.flushed`)."""
    return [
        alert
        for call in recorder.snapshot()
        for alert in call.json()["alerts"]
        if BARRIER_LABEL not in alert["labels"]
    ]


class NotifyProcess:
    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env, self.log_path = dict(env), log_path
        self.metrics_url = f"http://127.0.0.1:{env['CROSSINGS_NOTIFY_WEB_PORT']}/metrics"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "notify"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.log_tail()
            try:
                scrape(self.metrics_url, timeout=2)
                return True
            except OSError:
                return False

        wait_for("notify /metrics", up, timeout)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def stop(self) -> int:
        """SIGTERM (SIGKILL if it hangs); the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no commit, no goodbye to the group."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


def topic_messages(bootstrap: str, topic: str) -> list:
    """Every committed record of partition 0 of ``topic``, in order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=3000,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return list(consumer)
    finally:
        consumer.close()


def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int | None:
    """The offset ``group`` committed on ``topic``'s partition (None: none), read without
    joining the group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close()


@dataclass
class Gate:
    """A ``Recorder``'s ``respond`` that holds its answer to the first request carrying
    ``Idempotency-Key: key`` (recorded, and forwarded upstream if the recorder has one:
    the receiver has it, the sender has not heard so) until ``released``; every other
    request is answered ``status`` at once."""

    key: str
    status: int = 204
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def __call__(self, call: Call, index: int) -> int:
        if call.headers.get("Idempotency-Key") == self.key and not self.held.is_set():
            self.held.set()
            self.released.wait(120)
        return self.status
