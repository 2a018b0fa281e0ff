"""The daemon's log as an operator meets it: plain ``twistd orgproxy``, which daemonizes and
writes ``twistd.pid`` and ``twistd.log`` in the directory it is started in, with
``ORGPROXY_LOG_FORMAT=json``: one JSON object a line. (Which observer goes where, for every
twistd logging option: tests/ops/test_logs.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import READY, TWISTD, daemon_env, free_port
from tests.support.raw_http import call
from tests.support.tcp_upstream import FakeUpstream

USERS = "/v1/organization/users"


def wait_until(fact: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not fact():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # polling a file or a process for an observable fact


def test_plain_twistd_daemonizes_with_its_pid_and_json_log_in_the_current_directory(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    port = free_port()
    started = subprocess.run([TWISTD, "orgproxy", "--port", f"tcp:{port}:interface=127.0.0.1", "--upstream",
                              upstream.url], cwd=tmp_path, env=daemon_env({"ORGPROXY_LOG_FORMAT": "json"}),
                             capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout == "", "a daemon writes its log to twistd.log, not to the terminal"
    log = tmp_path / "twistd.log"
    wait_until(lambda: log.exists() and READY in log.read_text(), f"{READY!r} never appeared in {log}")
    pid = int((tmp_path / "twistd.pid").read_text())
    try:
        assert call(f"http://127.0.0.1:{port}", USERS).status == 200
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not (tmp_path / "twistd.pid").exists(), "the daemon never removed twistd.pid")
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is one JSON object
    assert any(r["message"].startswith(READY) for r in records)
    (access,) = [r for r in records if r.get("path") == USERS]
    assert (access["method"], access["status"], access["level"]) == ("GET", 200, "info")
    assert "Traceback" not in log.read_text()
