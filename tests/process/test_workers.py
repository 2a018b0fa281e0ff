"""--workers with real processes: a daemon in its run directory and its worker both serve
one socket, are signalled together, and a worker that dies is started again. (The
command line, the pool's restarts and stops, in memory: tests/ops/test_workers.py.)

One daemon for the whole story: each process start is a second of the suite's time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import TOKEN
from tests.support.daemon import TWISTD, daemon_env, free_port
from tests.support.raw_http import call
from tests.support.tcp_upstream import FakeUpstream, reply

COSTS = "/v1/organization/costs"
SERVING = "orgproxy serving on"


def worker_pids(output: str) -> dict[int, int]:
    """Worker number -> pid, from the lines the first process logs as it starts them."""
    return {int(m[1]): int(m[2]) for m in re.finditer(r"Started worker (\d+) \(pid (\d+)\)", output)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP): it accepts nothing until it continues."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class LogFile:
    """A daemon's log file, read as it grows."""

    def __init__(self, path: Path):
        self.path = path

    def text(self) -> str:
        return self.path.read_text() if self.path.exists() else ""

    def wait_for(self, text: str, after: int = 0, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text()[after:]:
            assert time.monotonic() < deadline, f"{text!r} never appeared in {self.path}:\n{self.text()}"
            time.sleep(0.02)  # polling a file for an observable fact


def wait_gone(pids: list[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[pid for pid in pids if alive(pid)]}"
        time.sleep(0.02)  # polling for processes that are not our children to end


def test_a_daemon_in_a_run_directory_and_its_worker_serve_reload_restart_and_stop_together(
        upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> None:
    # `twistd -d RUNDIR orgproxy --workers 2`, daemonised, with its log file named
    # relative to where it was started: the worker must start (not die at once, again
    # and again), log beside the daemon's log, and serve.
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": "key_1234567890abcdef"}]}))
    start, rundir = tmp_path / "start", tmp_path / "run"
    start.mkdir(), rundir.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = subprocess.run(
        [TWISTD, "-d", str(rundir), "--logfile", "orgproxy.log", "--pidfile", "orgproxy.pid", "orgproxy",
         "--port", f"tcp:{port}:interface=127.0.0.1", "--upstream", upstream.url, "--aliases", str(aliases),
         "--watch", "off", "--workers", "2"],
        cwd=start, env=daemon_env(), capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stdout + started.stderr
    log, worker_log = LogFile(start / "orgproxy.log"), LogFile(start / "orgproxy.worker1.log")
    pids: list[int] = []
    try:
        log.wait_for(f"[orgproxy#info] {SERVING}")
        worker_log.wait_for(f"[orgproxy.worker1#info] {SERVING}")
        first = int((start / "orgproxy.pid").read_text())
        (worker,) = worker_pids(log.text()).values()
        pids = [first, worker]
        assert list(rundir.iterdir()) == []  # nothing lands in the run directory

        # Each answers alone while the other is paused.
        with paused(first):
            assert call(url, "/health", timeout=10).json()["pid"] == worker
        with paused(worker):
            assert call(url, "/health", timeout=10).json()["pid"] == first

        # SIGHUP to the daemon reaches its worker.
        aliases.write_text('[api_keys]\nkey_1234567890abcdef = "renamed-everywhere"\n')
        before, worker_before = len(log.text()), len(worker_log.text())
        os.kill(first, signal.SIGHUP)
        log.wait_for("[orgproxy#info] Alias file reloaded (SIGHUP)", after=before)
        worker_log.wait_for("[orgproxy.worker1#info] Alias file reloaded (SIGHUP)", after=worker_before)
        for pid in pids:
            with paused(pid):
                answer = call(url, COSTS + "?start_time=1", timeout=10)
                assert answer.json()["data"][0]["api_key_name"] == "renamed-everywhere"

        # A worker that dies is started again, and serves.
        before, worker_before = len(log.text()), len(worker_log.text())
        os.kill(worker, signal.SIGKILL)
        log.wait_for("Worker 1 ended", after=before)
        worker_log.wait_for(f"[orgproxy.worker1#info] {SERVING}", after=worker_before)
        (restarted,) = worker_pids(log.text()[before:]).values()
        pids.append(restarted)
        with paused(first):
            assert call(url, "/health", timeout=10).json()["pid"] == restarted

        # SIGTERM to the daemon stops both.
        os.kill(first, signal.SIGTERM)
        wait_gone(pids)
        assert "[orgproxy.worker1#info] SIGTERM" in worker_log.text()
        for text in (log.text(), worker_log.text()):
            assert "Traceback" not in text and TOKEN not in text
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
