"""A real Prometheus (Debian's ``prometheus`` package, which ``make test`` installs) scraping one
target every second, for the tests where what Prometheus makes of orgproxy's series and of the
rules in ``etc/prometheus/`` is the point.

    with PrometheusServer(tmp_path, daemon.url, rule_files=[RULES]) as prometheus:
        prometheus.wait_scraped()
        prometheus.wait_for("api_key_name:orgproxy_cost_month_to_date_usd:sum")
        for labels, value in prometheus.instant("sum(orgproxy_cost_month_to_date_usd)"): ...

Its configuration is generated (a scrape job for the target, with the client token as
``authorization`` where one is given; scrape and rule evaluation every second), its storage is
in the test's directory, and it listens on a free loopback port. Readiness and the first scrape
are Prometheus's own doing: they are polled through its HTTP API until a deadline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.support.daemon import free_port

PROMETHEUS = "/usr/bin/prometheus"
JOB = "orgproxy"
DEADLINE = 30.0  # seconds allowed for Prometheus to start, scrape, or evaluate what is waited for
POLL = 0.1  # seconds between two looks at Prometheus's API
Sample = tuple[dict[str, str], float]
T = TypeVar("T")


def scrape_config(target: str, rule_files: Sequence[Path], token_file: Path | None,
                  metrics_path: str = "/metrics") -> dict[str, Any]:
    """The configuration (as YAML's JSON subset): one job, ``target`` as host:port."""
    job: dict[str, Any] = {"job_name": JOB, "metrics_path": metrics_path, "scrape_interval": "1s",
                           "scrape_timeout": "1s", "static_configs": [{"targets": [target]}]}
    if token_file is not None:
        job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files], "scrape_configs": [job]}


class PrometheusServer:
    """Prometheus scraping ``target`` (a URL or host:port) every second, with ``rule_files``;
    its files under ``directory``. ``token``: the client token it sends as ``Authorization:
    Bearer`` (orgproxy's ``--client-token-file``), written to a file as in etc/prometheus/."""

    def __init__(self, directory: Path, target: str, rule_files: Sequence[Path] = (),
                 token: str | None = None) -> None:
        self.directory = directory
        self.target = urllib.parse.urlsplit(target).netloc or target
        self.rule_files = list(rule_files)
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "prometheus.log"

    def start(self) -> PrometheusServer:
        if not Path(PROMETHEUS).is_file():
            raise AssertionError(f"{PROMETHEUS} is missing: apt-get install prometheus (as make test does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        token_file = None
        if self.token is not None:
            token_file = self.directory / "client-token"
            token_file.write_text(self.token + "\n", encoding="utf-8")
            token_file.chmod(0o600)
        config = self.directory / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(self.target, self.rule_files, token_file), indent=2),
                          encoding="utf-8")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        try:
            self.poll("Prometheus ready", lambda: self._ready() or None)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory / "data", ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- Prometheus's HTTP API --------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful answer of ``/api/v1/<path>``."""
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def instant(self, query: str) -> list[Sample]:
        """An instant query's vector now: (labels, value) per series; a scalar is one sample
        with no labels."""
        data = self.api("query", query=query)
        if data["resultType"] == "vector":
            return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        raise AssertionError(f"{query}: a {data['resultType']}, not an instant vector")

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]

    # --- waiting for Prometheus -------------------------------------------------------------

    def wait_scraped(self) -> dict[str, Any]:
        """The target, once Prometheus has scraped it successfully."""
        def scraped() -> dict[str, Any] | None:
            for target in self.targets():
                if target["labels"].get("job") == JOB and target["health"] == "up":
                    return target
            return None
        return self.poll(f"a successful scrape of {self.target}", scraped)

    def wait_for(self, query: str) -> list[Sample]:
        """The query's first non-empty answer (a recording rule has been evaluated, say)."""
        return self.poll(f"an answer to {query}", lambda: self.instant(query) or None)

    def poll(self, what: str, look: Callable[[], T | None]) -> T:
        """``look()``'s first answer that is not None, polled until ``DEADLINE``; the process
        dying or the deadline passing fails, with Prometheus's log."""
        deadline = time.monotonic() + DEADLINE
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"Prometheus exited ({self.process.returncode}) waiting for {what}:\n"
                                     + self.log.read_text(errors="replace"))
            try:
                found = look()
            except (urllib.error.URLError, ConnectionError):
                found = None  # not listening yet
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {DEADLINE} s; Prometheus said:\n"
                                     + self.log.read_text(errors="replace"))
            time.sleep(POLL)  # waiting on another process, whose progress we cannot be told of

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False  # 503 while it starts
