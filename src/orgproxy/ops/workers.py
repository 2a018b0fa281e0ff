"""``--workers N``: N processes serving one listening socket, so the daemon uses every core.

The process twistd starts makes the listening socket, serves on it like any other, and
starts N-1 more ``twistd orgproxy`` processes that adopt it, as it did itself
(``listening.py``); the kernel hands each new connection to whichever process accepts it
first. The first process forwards SIGHUP and SIGTERM to the others,
starts again one that dies, and at a stop tells them to stop as it stops itself, so that
all of them drain at once, within --shutdown-timeout. A worker that cannot start (it dies
at once, several times in a row) stops the daemon with the reason.

Each worker gets two pipes besides the socket (``firstprocess.py``): its standard input,
which ends when the first process does (and the worker with it), and ``REQUESTS_FD``, on
which it asks the first process for discovery. What the processes share otherwise goes
through the run directory (``rundir.py``).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from orgproxy.ops.firstprocess import REQUESTS_FD, RequestLines, discovery_asked
from orgproxy.ops.listening import SharedAccepts
from orgproxy.infra.logs import log

WORKER_FD = 3  # where a worker finds the listening socket
RESTART_DELAY = 1.0
# At a stop, a worker drains for --shutdown-timeout as the first process does, then needs
# a moment to close; one still running this long after the timeout is killed.
STOP_GRACE = 2.0
# A worker that ends within this many seconds of its start did not start at all ...
QUICK_DEATH = 5.0
# ... and after this many such ends in a row, the daemon gives up and stops.
STARTS_BEFORE_GIVING_UP = 5
# twistd's own options a worker runs with, as the first process got them. The others
# (daemonising, the pid file, the run directory, user and group, umask, chroot) have
# already been acted on by the first process, whose state the workers inherit.
CARRIED_TWISTD_OPTIONS = ("reactor", "logger", "prefix")
CARRIED_TWISTD_FLAGS = ("syslog",)
# Discovery is the first process's: a worker is not even given the admin key.
WITHHELD_FROM_WORKERS = frozenset({"OPENAI_ADMIN_KEY", "ANTHROPIC_ADMIN_KEY"})
DAEMON_LOG_FILE = "twistd.log"  # where twistd logs when it daemonises without --logfile


def _spelled(value: Any) -> str:
    """An option's value as it was given: twistd replaces --logger's with the function."""
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    return str(value)


def twistd_arguments(twistd_options: Mapping[str, Any] | None) -> list[str]:
    """twistd's own options for the workers' command lines: the first process's reactor
    and logging. Called as the service is made, before twistd changes to --rundir, where
    the workers start: the log file is named absolutely, as twistd opened it. A daemon
    logs to twistd.log by default, and the workers (never daemons) would log to standard
    output, which the daemon has closed: they are given a file too."""
    if twistd_options is None:
        return []
    carried = [f"--{name}={_spelled(twistd_options[name])}" for name in CARRIED_TWISTD_OPTIONS
               if twistd_options.get(name) is not None]
    carried += [f"--{name}" for name in CARRIED_TWISTD_FLAGS if twistd_options.get(name)]
    logfile = twistd_options.get("logfile")
    to_a_file = not (twistd_options.get("logger") or twistd_options.get("syslog"))
    if not logfile and not twistd_options.get("nodaemon") and to_a_file:
        logfile = DAEMON_LOG_FILE
    if logfile:
        carried.append(f"--logfile={logfile if logfile == '-' else os.path.abspath(logfile)}")
    return carried


def _own_log_file(argument: str, worker: int) -> str:
    """A worker's log file beside the first process's (orgproxy.log: orgproxy.worker1.log).
    twistd opens its log file to write at the end, not to append: two processes writing
    one file would overwrite each other's lines, and each would rotate it on its own."""
    if not argument.startswith("--logfile=") or argument == "--logfile=-":
        return argument
    stem, extension = os.path.splitext(argument.removeprefix("--logfile="))
    return f"--logfile={stem}.worker{worker}{extension}"


def worker_argv(twistd_options: Sequence[str], plugin_options: Sequence[str], worker: int) -> list[str]:
    """The command line of worker ``worker``: twistd in the foreground with no pid file,
    with ``twistd_options`` (see twistd_arguments; a log file its own), then orgproxy
    with ``plugin_options`` and the worker's own."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            *[_own_log_file(option, worker) for option in twistd_options],
            "--nodaemon", "--pidfile=", "orgproxy", *plugin_options, "--workers=1",
            f"--worker-fd={WORKER_FD}", f"--worker-number={worker}"]


class _Worker(ProcessProtocol):
    def __init__(self, pool: WorkerPool, number: int, started: float):
        self.pool = pool
        self.number = number
        self.started = started
        self.pid: int | None = None
        self.ended: Deferred[None] = Deferred()
        self.requests = RequestLines(lambda line: pool.requested(self, line))

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == REQUESTS_FD:
            self.requests.received(data)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.pool.ended(self, reason)


class WorkerPool(Service):
    """Starts the other workers on the listening socket, and keeps them running."""

    def __init__(self, reactor: Any, count: int, argv_for: Callable[[int], list[str]],
                 listening: SharedAccepts, shutdown_timeout: float, give_up: Callable[[str], None]):
        self.reactor = reactor
        self.count = count
        self.argv_for = argv_for
        self.listening = listening
        self.stop_timeout = shutdown_timeout + STOP_GRACE
        self.give_up = give_up  # stops the daemon, saying why
        self.workers: dict[int, _Worker] = {}
        self.quick_deaths: dict[int, int] = {}
        self.on_ended: list[Callable[[int], None]] = []  # told each ended worker's pid
        self.ending: list[Deferred[None]] = []  # the workers told to stop
        # provider -> its discovery's request, for when a worker saw an unknown id
        self.discovery_wanted: dict[str, Callable[[str], None]] = {}

    def startService(self) -> None:
        super().startService()
        for number in range(1, self.count):
            self.start_worker(number)

    def start_worker(self, number: int) -> None:
        if not self.running:
            return
        assert self.listening.port is not None, "the port listens before the workers start"
        worker = _Worker(self, number, self.reactor.seconds())
        fd = self.listening.port.fileno()  # type: ignore[attr-defined]
        argv = self.argv_for(number)
        # Standard input: a pipe whose end this process holds until it ends (see
        # firstprocess.py); REQUESTS_FD: a pipe the worker writes and this process reads.
        env = {name: value for name, value in os.environ.items() if name not in WITHHELD_FROM_WORKERS}
        self.reactor.spawnProcess(worker, argv[0], argv, env=env,
                                  childFDs={0: "w", 1: 1, 2: 2, WORKER_FD: fd, REQUESTS_FD: "r"})
        self.workers[number] = worker
        worker.pid = worker.transport.pid
        log.info("Started worker {number} (pid {pid})", event="worker_started", number=number, pid=worker.pid)

    def requested(self, worker: _Worker, line: bytes) -> None:
        wanted = self.discovery_wanted.get(discovery_asked(line) or "")
        if wanted is not None:
            wanted(f"worker {worker.number} saw an unknown id")

    def ended(self, worker: _Worker, reason: Failure) -> None:
        self.workers.pop(worker.number, None)
        if worker.pid is not None:
            for told in self.on_ended:
                told(worker.pid)
        if not self.running:
            return
        why = reason.getErrorMessage()
        if self.reactor.seconds() - worker.started < QUICK_DEATH:
            self.quick_deaths[worker.number] = self.quick_deaths.get(worker.number, 0) + 1
        else:
            self.quick_deaths[worker.number] = 1
        if self.quick_deaths[worker.number] >= STARTS_BEFORE_GIVING_UP:
            self.give_up(f"worker {worker.number} ended {STARTS_BEFORE_GIVING_UP} times in a row within"
                         f" {QUICK_DEATH:g} s of its start (last: {why}); see its lines above")
            return
        log.error("Worker {number} ended ({reason}); starting it again in {delay:g} s",
                  event="worker_ended", number=worker.number, reason=why, delay=RESTART_DELAY)
        self.reactor.callLater(RESTART_DELAY, self.start_worker, worker.number)

    def signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            if worker.transport is not None and worker.transport.pid is not None:
                worker.transport.signalProcess(signum)

    def on_sighup(self, _why: str) -> None:
        self.signal_all(signal.SIGHUP)

    def stopService(self) -> None:
        """Tell every worker to stop, at once, and kill any still running a moment after
        --shutdown-timeout. Not waited for here: the first process drains its own requests
        while the workers drain theirs (tap.py), and then waits for ``all_ended()``."""
        super().stopService()
        self.ending = [worker.ended for worker in self.workers.values()]
        if not self.ending:
            return
        self.signal_all(signal.SIGTERM)
        # A timer, not a timeout on the wait: cancelling a DeferredList cancels the
        # Deferreds in it, and it then fires as if everyone had ended.
        killer = self.reactor.callLater(self.stop_timeout, self.kill_stragglers)

        def ended(_: object) -> None:
            if killer.active():
                killer.cancel()
        self.all_ended().addCallback(ended)

    def all_ended(self) -> Deferred[Any]:
        """Fires once every worker running at the stop has ended."""
        return DeferredList(self.ending)

    def kill_stragglers(self) -> None:
        log.warn("Workers still running after {timeout:g} s; killing them", event="workers_killed",
                 timeout=self.stop_timeout)
        self.signal_all(signal.SIGKILL)
