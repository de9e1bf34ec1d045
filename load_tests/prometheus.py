"""A real Prometheus server (the Debian package's binary) scraping local processes, for tests.

Started from the project's own ``deploy/prometheus/prometheus.yml`` with its rule files,
only the targets, the intervals and the paths changed, so what a test queries is what an
operator's Prometheus would record. Queried through its HTTP API, as Grafana does.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.settings import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"


def scrape_config(targets: Mapping[str, list[str]], interval: str = "1s") -> dict[str, Any]:
    """The committed config with ``targets`` per job name, ``interval`` for scrapes and rule
    evaluation, and absolute rule file paths (the copy is written elsewhere)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(CONFIG.parent / path) for path in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets.get(job["job_name"], [])}]
    return config


@dataclass
class PrometheusServer:
    binary: str
    home: Path
    port: int
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any], timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        config_path = self.home / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        log = (self.home / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"prometheus not ready within {timeout}s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        path = self.home / "prometheus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def api(self, path: str, params: Mapping[str, str | float]) -> Any:
        """``/api/v1/<path>``'s ``data``; an error answer raises with Prometheus' message."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise ValueError(f"{path} {dict(params)}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", {"query": expr})["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 2.0) -> list[dict[str, Any]]:
        return self.api("query_range", {"query": expr, "start": start, "end": end, "step": step})["result"]

    def label_values(self, query: str) -> list[str]:
        """Grafana's ``label_values(metric, label)``: the label's values on the metric's series."""
        found = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", query)
        if found is None:
            raise ValueError(f"not a label_values() query: {query!r}")
        selector, label = found.groups()
        series = self.api("series", {"match[]": selector, "start": time.time() - 3600})
        return sorted({s[label] for s in series if label in s})

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
