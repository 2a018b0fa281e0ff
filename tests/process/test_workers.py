"""--workers with real processes: a daemon in its run directory and its worker both serve
one socket, are signalled together, and a worker that dies is started again; the two are
one daemon (one count in /metrics, one walk of the Admin API per interval, names and
unknown ids shared); they stop together within --shutdown-timeout, and a worker does not
outlive its first process. (The command line, the pool, the metrics, the sharing, in
memory: tests/ops/test_workers.py, tests/infra/test_metrics.py, tests/names/test_shared.py,
tests/names/test_unknown_shared.py, tests/ops/test_firstprocess.py.)

Few daemons, each for a whole story: each process start is a second of the suite's time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TOKEN, assert_clean_output
from tests.support.daemon import SERVING, TWISTD, Daemon, daemon_env, event_of, free_port, matches
from tests.support.fake_admin import WEB_SHOP, sample_org, user_owner
from tests.support.raw_http import call
from tests.support.tcp_upstream import FakeUpstream, TcpAdmin, hold, reply

COSTS = "/v1/organization/costs"
USAGE = "/v1/organization/usage/completions"
HELD = "/v1/organization/usage/embeddings"
PRODUCTION_KEY = "key_Ws1kProdSrvA9"  # "Production server", in the sample organization
T = TypeVar("T")


def worker_pids(events: list[dict[str, Any]]) -> dict[int, int]:
    """Worker number -> pid, from the events the first process logs as it starts them."""
    return {e["number"]: e["pid"] for e in events if e.get("event") == "worker_started"}


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie (an orphan's end waits for whoever reaps it)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP): it accepts nothing until it continues."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class LogFile:
    """A daemon's log file of JSON lines (--log-format json), read as it grows."""

    def __init__(self, path: Path):
        self.path = path

    def text(self) -> str:
        return self.path.read_text() if self.path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        return [record for record in map(event_of, self.text().splitlines()) if record is not None]

    def wait_for(self, event: str, after: int = 0, within: float = 20.0, **fields: Any) -> None:
        """Until an event from the ``after``-th on has this identifier and these fields."""
        deadline = time.monotonic() + within
        while not [record for record in self.events()[after:] if matches(record, event, fields)]:
            assert time.monotonic() < deadline, f"no event {event!r} with {fields} in {self.path}:\n{self.text()}"
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
         "--watch", "off", "--workers", "2", "--log-format", "json"],
        cwd=start, env=daemon_env(), capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stdout + started.stderr
    log, worker_log = LogFile(start / "orgproxy.log"), LogFile(start / "orgproxy.worker1.log")
    pids: list[int] = []
    try:
        log.wait_for(SERVING, namespace="orgproxy")
        worker_log.wait_for(SERVING, namespace="orgproxy.worker1")
        first = int((start / "orgproxy.pid").read_text())
        (worker,) = worker_pids(log.events()).values()
        pids = [first, worker]
        assert list(rundir.iterdir()) == []  # nothing lands in the run directory

        # Each answers alone while the other is paused.
        with paused(first):
            assert call(url, "/health", timeout=10).json()["pid"] == worker
        with paused(worker):
            assert call(url, "/health", timeout=10).json()["pid"] == first

        # SIGHUP to the daemon reaches its worker.
        aliases.write_text('[api_keys]\nkey_1234567890abcdef = "renamed-everywhere"\n')
        before, worker_before = len(log.events()), len(worker_log.events())
        os.kill(first, signal.SIGHUP)
        log.wait_for("aliases_reloaded", after=before, namespace="orgproxy", why="SIGHUP")
        worker_log.wait_for("aliases_reloaded", after=worker_before, namespace="orgproxy.worker1", why="SIGHUP")
        for pid in pids:
            with paused(pid):
                answer = call(url, COSTS + "?start_time=1", timeout=10)
                assert answer.json()["data"][0]["api_key_name"] == "renamed-everywhere"

        # A worker that dies is started again, and serves.
        before, worker_before = len(log.events()), len(worker_log.events())
        os.kill(worker, signal.SIGKILL)
        log.wait_for("worker_ended", after=before, number=1)
        worker_log.wait_for(SERVING, after=worker_before, namespace="orgproxy.worker1")
        (restarted,) = worker_pids(log.events()[before:]).values()
        pids.append(restarted)
        with paused(first):
            assert call(url, "/health", timeout=10).json()["pid"] == restarted

        # SIGTERM to the daemon stops both.
        os.kill(first, signal.SIGTERM)
        wait_gone(pids)
        assert [e for e in worker_log.events() if matches(e, "sigterm", {"namespace": "orgproxy.worker1"})]
        for text in (log.text(), worker_log.text()):
            assert "Traceback" not in text and TOKEN not in text
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- one daemon ---------------------------------------------------------------------------------

def started_with_its_worker(daemon: Daemon) -> tuple[int, int]:
    """(first process's pid, worker's pid), once both serve."""
    daemon.wait_for(SERVING, namespace="orgproxy")
    daemon.wait_for(SERVING, namespace="orgproxy.worker1")
    (worker,) = worker_pids(daemon.events).values()
    return daemon.process.pid, worker


def eventually(check: Callable[[], T], timeout: float = 20.0) -> T:
    """``check()``'s first true answer, asked until then (for facts another process makes true)."""
    deadline = time.monotonic() + timeout
    while not (answer := check()):
        assert time.monotonic() < deadline, "never came true"
        time.sleep(0.05)  # polling another process for an observable fact
    return answer


def proxied_counted(daemon: Daemon) -> float:
    """orgproxy_requests_total of proxied 200s, in the scrape one process answered."""
    text = call(daemon.url, "/metrics", timeout=10).body.decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "orgproxy_requests_total" and sample.labels["route"] == "proxy")


def unknown_reported(daemon: Daemon, not_by: int) -> dict[tuple[str, str], int]:
    """/orgproxy/unknown, answered by the process other than ``not_by`` (paused meanwhile)."""
    with paused(not_by):
        data = call(daemon.url, "/orgproxy/unknown", timeout=10).json()["data"]
    return {(row["field"], row["id"]): row["count"] for row in data}


def with_discovery(upstream: FakeUpstream) -> TcpAdmin:
    admin = TcpAdmin(upstream, sample_org())
    admin.org.page_size = 100  # a walk of a few pages
    return admin


def test_two_processes_count_walk_name_and_report_as_one_daemon(upstream: FakeUpstream, tmp_path: Path) -> None:
    admin = with_discovery(upstream)
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": PRODUCTION_KEY, "user_id": "user-seenByTheWorker"}]}))
    upstream.on(USAGE, reply(body={"data": [{"api_key_id": PRODUCTION_KEY, "user_id": "user-seenByTheFirst"}]}))
    daemon = Daemon(["--upstream", upstream.url, "--workers", "2", "--discovery-interval", "1", "--watch", "off",
                     "--state-dir", str(tmp_path / "state")], cwd=tmp_path, env={"OPENAI_ADMIN_KEY": TOKEN})
    pids: list[int] = []
    try:
        first, worker = pids[:] = started_with_its_worker(daemon)
        daemon.wait_for("discovery_done", namespace="orgproxy", provider="OpenAI", why="start")
        sent = {"worker": 0, "first": 0}

        def name_via_the_worker() -> str:
            sent["worker"] += 1
            with paused(first):
                return call(daemon.url, COSTS + "?start_time=1", timeout=10).json()["data"][0]["api_key_name"]

        def name_via_the_first() -> str:
            sent["first"] += 1
            with paused(worker):
                return call(daemon.url, USAGE + "?start_time=1", timeout=10).json()["data"][0]["api_key_name"]

        # The first process's walk names the worker's answers too (the worker walks not).
        eventually(lambda: name_via_the_worker() == "Production server")
        assert name_via_the_first() == "Production server"

        # Requests spread over both; every scrape, whichever process answers it, counts them
        # all, once each process has written its batch of counts (within a second).
        for _ in range(3):
            name_via_the_worker(), name_via_the_first()
        eventually(lambda: proxied_counted(daemon) == sent["worker"] + sent["first"])
        for pid in (first, worker, first, worker):
            with paused(pid):
                assert proxied_counted(daemon) == sent["worker"] + sent["first"]

        # The unknown ids each process saw, in the report of either.
        expected = {("user_id", "user-seenByTheWorker"): sent["worker"],
                    ("user_id", "user-seenByTheFirst"): sent["first"]}
        for pid in (first, worker):
            eventually(lambda: unknown_reported(daemon, not_by=pid) == expected)

        # One walk per interval: the first process's. (With a walk per process, the fake
        # would see twice the walks the first process made, and the worker would log its own.)
        eventually(lambda: len(admin.walks()) >= 2)
    finally:
        code = daemon.stop()
    walks_logged = [e for e in daemon.events
                    if e.get("event") in ("discovery_done", "discovery_failed") and e.get("provider") == "OpenAI"]
    assert walks_logged and all(e["namespace"] == "orgproxy" for e in walks_logged), walks_logged
    assert len(walks_logged) <= len(admin.walks()) <= len(walks_logged) + 1  # one cut short by the stop
    wait_gone(pids)
    assert code == 0, daemon.output
    assert_clean_output(daemon)
    shared = [path for path in (tmp_path / "state" / "run").rglob("*") if path.is_file()]
    assert shared and not [path for path in shared if TOKEN.encode() in path.read_bytes()]


def test_an_unknown_key_a_worker_sees_sets_off_one_walk_whose_names_reach_both(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    admin = with_discovery(upstream)
    made_this_morning = "key_MadeThisMorning01"
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": made_this_morning}]}))
    daemon = Daemon(["--upstream", upstream.url, "--workers", "2", "--watch", "off",
                     "--state-dir", str(tmp_path / "state")], cwd=tmp_path, env={"OPENAI_ADMIN_KEY": TOKEN})
    pids: list[int] = []
    try:
        first, worker = pids[:] = started_with_its_worker(daemon)
        daemon.wait_for("discovery_done", namespace="orgproxy", provider="OpenAI", why="start")
        admin.add_key(WEB_SHOP, {"id": made_this_morning, "name": "Made this morning",
                                 "owner": user_owner(admin.org.users[0])})

        def name(answered_by_the_worker: bool) -> str:
            with paused(first if answered_by_the_worker else worker):
                return call(daemon.url, COSTS + "?start_time=1", timeout=10).json()["data"][0]["api_key_name"]

        assert name(answered_by_the_worker=True) == "unknown"
        daemon.wait_for("discovery_done", namespace="orgproxy", provider="OpenAI", why="worker 1 saw an unknown id")
        eventually(lambda: name(answered_by_the_worker=True) == "Made this morning")
        assert name(answered_by_the_worker=False) == "Made this morning"
        assert len(admin.walks()) == 2  # at start, and the one the worker asked for
    finally:
        code = daemon.stop()
    wait_gone(pids)
    assert code == 0, daemon.output
    assert_clean_output(daemon)


def held_request(port: int) -> socket.socket:
    """A request sent and not read: the fake upstream holds it."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(f"GET {HELD}?start_time=1 HTTP/1.1\r\nHost: orgproxy\r\n"
                       f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    return connection


def test_workers_end_with_their_first_process_and_all_drain_at_once(upstream: FakeUpstream, tmp_path: Path) -> None:
    shutdown_timeout = 1
    upstream.on(HELD, hold(limit=30))
    port = free_port()
    args = ["--upstream", upstream.url, "--workers", "2", "--watch", "off", "--state-dir", str(tmp_path / "state"),
            "--shutdown-timeout", str(shutdown_timeout)]
    pids: list[int] = []
    held: list[socket.socket] = []
    try:
        # kill -9 of the first process: its worker stops serving and ends (it would go on
        # as an orphan, holding the port), and a new daemon can listen on the port.
        killed = Daemon(args, cwd=tmp_path, port=port)
        pids[:] = started_with_its_worker(killed)
        killed.process.kill()
        killed.wait_exit()
        wait_gone(pids[1:], timeout=10)
        assert killed.logged("first_process_gone", namespace="orgproxy.worker1", level="warn")
        daemon = Daemon(args, cwd=tmp_path, port=port)
        first, worker = pids[:] = started_with_its_worker(daemon)

        # A request held upstream in each process; then SIGTERM. All drain at once: each
        # process has begun to wait before the other gives up waiting, not one after the other.
        for other in (worker, first):
            before = len(upstream.received_so_far())
            with paused(other):
                held.append(held_request(port))
                eventually(lambda: len(upstream.received_so_far()) == before + 1)
        daemon.process.send_signal(signal.SIGTERM)
        code = daemon.wait_exit(timeout=30)
        wait_gone(pids)
        assert code == 0, daemon.output
        for namespace in ("orgproxy", "orgproxy.worker1"):
            assert daemon.logged("draining", namespace=namespace, timeout=shutdown_timeout, count=1)
        # The worker's events reach the first process's log as it logs them: one order.
        drains = [(record["event"], record.get("namespace")) for record in daemon.events
                  if record.get("event") in ("draining", "drain_timed_out")]
        for one, other in (("orgproxy", "orgproxy.worker1"), ("orgproxy.worker1", "orgproxy")):
            assert drains.index(("draining", one)) < drains.index(("drain_timed_out", other)), drains
        assert_clean_output(daemon)
    finally:
        for connection in held:
            connection.close()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
