"""``--workers``, in the test process: the workers' command line as twistd would run it,
and the pool that starts, restarts, signals and stops them, on a fake reactor that records
the processes it is asked to spawn."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.scripts.twistd import ServerOptions

from orgproxy.ops.firstprocess import REQUESTS_FD
from orgproxy.ops.listening import SharedAccepts
from orgproxy.ops.workers import (
    QUICK_DEATH,
    RESTART_DELAY,
    STARTS_BEFORE_GIVING_UP,
    STOP_GRACE,
    WORKER_FD,
    WorkerPool,
    twistd_arguments,
    worker_argv,
)
from tests.support.answers import TOKEN
from tests.support.spawning import LISTENING_FD, Spawned, SpawningReactor


# --- the command line ------------------------------------------------------------------------

def twistd(*argv: str) -> ServerOptions:
    """twistd's options as ``twistd argv...`` parses them (the plugin's are its subOptions)."""
    options = ServerOptions()
    options.parseOptions(list(argv))
    return options


def command_line(options: ServerOptions, worker: int = 1) -> list[str]:
    return worker_argv(twistd_arguments(options), options.subOptions.worker_arguments(), worker)


def as_twistd_parses_it(argv: list[str]) -> ServerOptions:
    """The worker's own twistd options, parsed as the worker will."""
    assert argv[:3] == [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    return twistd(*argv[3:])


def test_a_daemons_workers_run_in_the_foreground_with_no_pid_file_in_the_run_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # twistd installs the reactor named by --reactor as it parses it: record it instead.
    installed: list[str] = []
    monkeypatch.setattr("twisted.application.app.installReactor", installed.append)
    options = twistd("-d", "/srv/op", "--logfile", "x.log", "--reactor", "poll", "orgproxy", "--workers", "2",
                     "--aliases", "aliases.toml", "--state-dir", "state")
    worker = as_twistd_parses_it(command_line(options))
    assert not options["nodaemon"] and worker["nodaemon"]
    assert worker["pidfile"] == ""  # the first process holds the pid file
    assert worker["rundir"] == "."  # it starts there already: the first process's directory
    assert "--rundir" not in " ".join(command_line(options))
    # The first process's reactor and log file: opened before twistd changed to /srv/op,
    # so named absolutely, as twistd opened it.
    assert worker["reactor"] == "poll" and installed == ["poll", "poll"]
    # Its own log file beside the first's: twistd's are not opened to append, and two
    # processes writing one would overwrite each other's lines.
    assert worker["logfile"] == str(tmp_path / "x.worker1.log")
    # orgproxy's own options, with the files named absolutely too, and the worker's own.
    plugin = worker.subOptions
    assert plugin["aliases"] == str(tmp_path / "aliases.toml")
    assert plugin["state-dir"] == str(tmp_path / "state")
    assert plugin["workers"] == 1
    assert (plugin["worker-fd"], plugin["worker-number"]) == (str(WORKER_FD), 1)


def test_a_daemon_without_a_log_file_has_its_workers_log_to_its_twistd_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker never daemonises, so it would log to standard output: the daemon's, closed.
    monkeypatch.chdir(tmp_path)
    worker = as_twistd_parses_it(command_line(twistd("orgproxy", "--workers", "2")))
    assert worker["logfile"] == str(tmp_path / "twistd.worker1.log")


@pytest.mark.parametrize(("argv", "logging"), [
    (["-n", "orgproxy"], {"logfile": None, "logger": None, "syslog": False}),
    (["-n", "--logfile", "-", "orgproxy"], {"logfile": "-", "logger": None, "syslog": False}),
    (["--syslog", "--prefix", "op", "orgproxy"], {"logfile": None, "logger": None, "syslog": True, "prefix": "op"}),
    (["-n", "--logger", "orgproxy.infra.logs.json_lines", "orgproxy"],
     {"logfile": None, "logger": "orgproxy.infra.logs.json_lines", "syslog": False}),
], ids=["foreground", "stdout", "syslog", "logger"])
def test_workers_log_where_the_first_process_logs(argv: list[str], logging: dict[str, Any]) -> None:
    worker = as_twistd_parses_it(command_line(twistd(*argv, "--workers", "2")))
    logger = worker["logger"]
    seen = {"logfile": worker["logfile"], "syslog": bool(worker["syslog"]),
            "logger": None if logger is None else f"{logger.__module__}.{logger.__qualname__}"}
    if "prefix" in logging:
        seen["prefix"] = worker["prefix"]
    assert seen == logging


def test_each_worker_is_told_its_number_and_has_a_log_file_of_its_own() -> None:
    options = twistd("-n", "--logfile", "/var/log/orgproxy/orgproxy", "orgproxy", "--workers", "3")
    workers = [as_twistd_parses_it(command_line(options, number)) for number in (1, 2)]
    assert [w.subOptions["worker-number"] for w in workers] == [1, 2]
    assert [w["logfile"] for w in workers] == ["/var/log/orgproxy/orgproxy.worker1", "/var/log/orgproxy/orgproxy.worker2"]


# --- the pool ------------------------------------------------------------------------------

class FakePort:
    def fileno(self) -> int:
        return LISTENING_FD


class Pool:
    """A WorkerPool on a SpawningReactor, with what it gave up on."""

    def __init__(self, count: int, shutdown_timeout: float = 10.0):
        self.reactor = SpawningReactor()
        listening = SharedAccepts(endpoint=None)  # type: ignore[arg-type]
        listening.port = FakePort()  # type: ignore[assignment]
        self.gave_up: list[str] = []
        self.pool = WorkerPool(self.reactor, count, lambda number: ["python", f"worker-{number}"], listening,
                               shutdown_timeout, self.gave_up.append)
        self.pool.startService()

    def restarted(self) -> Spawned:
        """Let the restart delay pass; the worker started again."""
        before = len(self.reactor.spawned)
        self.reactor.advance(RESTART_DELAY)
        assert len(self.reactor.spawned) == before + 1, "no worker was started again"
        return self.reactor.spawned[-1]


def test_it_starts_the_other_workers_on_the_listening_socket(logged: list[dict[str, Any]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", TOKEN)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-withheld")
    pool = Pool(count=3)
    spawned = pool.reactor.spawned
    assert [s.args for s in spawned] == [["python", "worker-1"], ["python", "worker-2"]]
    for s in spawned:
        # Standard input, a pipe this process holds (its end is the worker's), and a pipe
        # for the worker's requests (discovery).
        assert s.child_fds == {0: "w", 1: 1, 2: 2, WORKER_FD: LISTENING_FD, REQUESTS_FD: "r"}
        # The first process's environment, but for the admin keys: discovery is its alone.
        assert s.env == {k: v for k, v in os.environ.items() if k not in ("OPENAI_ADMIN_KEY", "ANTHROPIC_ADMIN_KEY")}
        assert TOKEN not in repr(s.env) and "sk-ant-admin01-withheld" not in repr(s.env)
    started = [(e["number"], e["pid"]) for e in logged if e.get("event") == "worker_started"]
    assert started == [(1, 1000), (2, 1001)]


def test_a_worker_that_dies_is_started_again_after_a_delay(logged: list[dict[str, Any]]) -> None:
    pool = Pool(count=2)
    (first,) = pool.reactor.spawned
    pool.reactor.advance(QUICK_DEATH + 60)  # it ran a while
    first.end(ProcessTerminated(signal=signal.SIGKILL))
    pool.reactor.advance(RESTART_DELAY - 0.01)
    assert len(pool.reactor.spawned) == 1, "started again before the delay"
    pool.reactor.advance(0.01)
    assert pool.reactor.spawned[-1].args == ["python", "worker-1"]
    assert pool.gave_up == []
    (ended,) = [e for e in logged if e.get("event") == "worker_ended"]
    assert ended["number"] == 1 and "signal 9" in ended["reason"]


def test_workers_that_keep_dying_at_once_stop_the_daemon_with_the_reason() -> None:
    pool = Pool(count=2)
    worker = pool.reactor.spawned[0]
    for _ in range(STARTS_BEFORE_GIVING_UP - 1):
        worker.end(ProcessTerminated(exitCode=2))
        worker = pool.restarted()
    assert pool.gave_up == []
    worker.end(ProcessTerminated(exitCode=2))
    (reason,) = pool.gave_up
    assert "worker 1" in reason and "exit code 2" in reason and f"{STARTS_BEFORE_GIVING_UP} times" in reason
    assert pool.reactor.getDelayedCalls() == [], "a restart is still scheduled"


def test_a_worker_that_ran_a_while_starts_its_count_of_quick_deaths_afresh() -> None:
    pool = Pool(count=2)
    worker = pool.reactor.spawned[0]
    for _ in range(STARTS_BEFORE_GIVING_UP - 1):
        worker.end()
        worker = pool.restarted()
    pool.reactor.advance(QUICK_DEATH)  # this start worked
    for _ in range(STARTS_BEFORE_GIVING_UP - 1):
        worker.end()
        worker = pool.restarted()
    assert pool.gave_up == []


def test_a_workers_request_for_discovery_reaches_the_first_processs_discovery() -> None:
    pool = Pool(count=3)
    wanted: list[str] = []
    anthropic_wanted: list[str] = []
    pool.pool.discovery_wanted = {"openai": wanted.append, "anthropic": anthropic_wanted.append}
    first, second = pool.reactor.spawned
    second.protocol.childDataReceived(REQUESTS_FD, b"discover open")
    second.protocol.childDataReceived(REQUESTS_FD, b"ai\nnonsense\ndiscover nobody\n")
    first.protocol.childDataReceived(1, b"discover openai\n")  # not its requests' pipe
    first.protocol.childDataReceived(REQUESTS_FD, b"discover anthropic\n")
    assert wanted == ["worker 2 saw an unknown id"]
    assert anthropic_wanted == ["worker 1 saw an unknown id"]


def test_each_worker_that_ends_is_told_by_its_pid() -> None:
    pool = Pool(count=3)
    ended: list[int] = []
    pool.pool.on_ended.append(ended.append)
    first, second = pool.reactor.spawned
    second.end()
    pool.reactor.advance(RESTART_DELAY)
    pool.pool.stopService()
    for worker in pool.reactor.alive():
        worker.end(ProcessDone(0))
    assert pool.pool.all_ended().called
    assert ended == [1001, 1000, 1002]  # the restarted one has a pid of its own


def test_sighup_is_forwarded_to_every_worker() -> None:
    pool = Pool(count=3)
    pool.pool.on_sighup("SIGHUP")
    assert [s.process.signals for s in pool.reactor.spawned] == [[signal.SIGHUP], [signal.SIGHUP]]


def test_a_stop_sends_sigterm_and_waits_for_every_worker() -> None:
    pool = Pool(count=3)
    pool.pool.stopService()
    stopped = pool.pool.all_ended()
    assert [s.process.signals for s in pool.reactor.spawned] == [[signal.SIGTERM], [signal.SIGTERM]]
    done: list[Any] = []
    stopped.addCallback(done.append)
    first, second = pool.reactor.spawned
    first.end(ProcessDone(0))
    assert not done, "the stop finished with a worker still running"
    second.end(ProcessDone(0))
    assert done
    pool.reactor.advance(RESTART_DELAY)
    assert len(pool.reactor.spawned) == 2, "a worker ending at a stop was started again"
    assert pool.reactor.getDelayedCalls() == []


def test_workers_still_running_a_moment_after_the_shutdown_timeout_are_killed() -> None:
    pool = Pool(count=3, shutdown_timeout=7)
    pool.pool.stopService()
    stopped = pool.pool.all_ended()
    done: list[Any] = []
    stopped.addCallback(done.append)
    first, straggler = pool.reactor.spawned
    first.end(ProcessDone(0))
    pool.reactor.advance(7 + STOP_GRACE - 0.1)  # draining, then closing
    assert straggler.process.signals == [signal.SIGTERM]
    pool.reactor.advance(0.1)
    assert straggler.process.signals == [signal.SIGTERM, signal.SIGKILL]
    assert first.process.signals == [signal.SIGTERM]  # the one that ended is not signalled again
    assert not done, "the stop finished with a worker still running"
    straggler.end(ProcessTerminated(signal=signal.SIGKILL))
    assert done
    assert pool.reactor.getDelayedCalls() == []


def test_a_stop_with_no_workers_is_immediate() -> None:
    pool = Pool(count=1)
    assert pool.reactor.spawned == []
    pool.pool.stopService()
    assert pool.pool.all_ended().called
