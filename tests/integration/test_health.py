"""The worker's health checks over HTTP, on a real worker: ``/healthz`` does not answer
while the event loop that runs the stream is stuck, and ``/readyz`` answers 503 while the
consumer group has not given the worker its partitions.

A stuck loop is made, not waited for: the worker process imports a ``sitecustomize`` (on
its PYTHONPATH, nowhere else) whose SIGWINCH handler holds the main thread, the one that
runs the worker's event loop, for as long as a file of the test's exists.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from load_tests.harness import WorkerProcess, free_port
from load_tests.notify_harness import wait_for
from streams.ops.topics import ensure_topics
from streams.settings import load_settings

pytestmark = pytest.mark.integration

SITECUSTOMIZE = '''
import os
import signal
import time
from pathlib import Path


def _hold(signum, frame):
    """Hold the main thread (the worker's event loop) while the hold file exists."""
    hold = Path(os.environ["CROSSINGS_TEST_HOLD_FILE"])
    held = hold.with_suffix(".held")
    held.touch()
    while hold.exists():
        time.sleep(0.05)
    held.unlink()


if os.environ.get("CROSSINGS_TEST_HOLD_FILE"):
    signal.signal(signal.SIGWINCH, _hold)
'''


def answer(url: str, timeout: float = 3.0) -> tuple[int, dict] | None:
    """(status, JSON body), or None if nothing answered within ``timeout``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (TimeoutError, urllib.error.URLError) as error:
        if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, TimeoutError):
            raise
        return None


class Worker(WorkerProcess):
    def url(self, path: str) -> str:
        return self.metrics_url.replace("/metrics", path)

    def hold(self, hold_file: Path) -> None:
        """Stop the worker's event loop until ``hold_file`` is removed."""
        hold_file.touch()
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGWINCH)
        wait_for("the worker's loop held", hold_file.with_suffix(".held").exists, 30, every=0.05)


@pytest.fixture
def env(kafka_bootstrap, namespace, tmp_path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CROSSINGS_HOME": str(tmp_path),
        "CROSSINGS_APP_ID": namespace,
        "CROSSINGS_TOPIC_NAMESPACE": namespace,
        "CROSSINGS_COMMIT_INTERVAL": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "CROSSINGS_TEST_HOLD_FILE": str(tmp_path / "hold"),
    }
    ensure_topics(load_settings(env))
    return env


def test_healthz_does_not_answer_while_the_event_loop_is_stuck(env, tmp_path):
    worker = Worker(env, free_port(), tmp_path / "worker.log")
    hold = Path(env["CROSSINGS_TEST_HOLD_FILE"])
    worker.start(timeout=180)
    try:
        assert answer(worker.url("/healthz")) == (200, {"alive": True})
        worker.hold(hold)
        stuck = answer(worker.url("/healthz"))
        hold.unlink()
        wait_for(
            "/healthz answering again", lambda: answer(worker.url("/healthz")) == (200, {"alive": True}), 60
        )
    finally:
        hold.unlink(missing_ok=True)
        code = worker.stop()
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert stuck is None, f"/healthz answered {stuck} while the loop was held"


def test_readyz_is_503_until_the_group_gives_the_worker_its_partitions(env, tmp_path, folder_pg_lake):
    # A first worker is ready. It is held while a second joins the group: the rebalance
    # cannot finish without the first, so the second has no assignment and says so (503);
    # once the first is let go the group settles and both are ready.
    # Two workers, one lake: DuckLake with a PostgreSQL catalog (the default's SQLite
    # catalog takes one writing process and refuses a second at start).
    env = {**env, **folder_pg_lake}
    first = Worker(env, free_port(), tmp_path / "worker-a.log")
    second = Worker({**env, "CROSSINGS_TEST_HOLD_FILE": ""}, free_port(), tmp_path / "worker-b.log")
    hold = Path(env["CROSSINGS_TEST_HOLD_FILE"])
    first.start(timeout=180)
    try:
        wait_for("the first worker ready", lambda: answer(first.url("/readyz"))[0] == 200, 120)
        first.hold(hold)
        second.start(timeout=180)
        waiting = answer(second.url("/readyz"))
        hold.unlink()
        for worker in (first, second):
            wait_for("both workers ready", lambda w=worker: answer(w.url("/readyz"))[0] == 200, 180)
        ready = answer(second.url("/readyz"))
    finally:
        hold.unlink(missing_ok=True)
        codes = [second.stop(), first.stop()]
    assert codes == [0, 0], (tmp_path / "worker-b.log").read_text()[-3000:]
    assert waiting is not None
    status, body = waiting
    assert status == 503, body
    assert body["ready"] is False and body["reason"], body
    assert ready is not None and ready[1]["ready"] is True
