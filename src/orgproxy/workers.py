"""``--workers N``: N processes serving one listening socket, so the daemon uses every core.

The process twistd starts listens, serves like any other, and starts N-1 more
``twistd orgproxy`` processes that adopt its listening socket (``adoptStreamPort``);
the kernel hands each new connection to whichever process accepts it first. Each
worker is a whole orgproxy (names, reloads, discovery). The first process forwards
SIGHUP and SIGTERM to the others, restarts one that dies, and at a stop waits for them.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol, ServerFactory
from twisted.python.failure import Failure

from orgproxy.logs import log

WORKER_FD = 3  # where a worker finds the listening socket
RESTART_DELAY = 1.0


def worker_argv(argv: Sequence[str], options: Any, worker: int) -> list[str]:
    """The command line of worker ``worker``: twistd's own options as given (but in the
    foreground, with no pid file), then this plugin's options with their values, then
    the worker's own."""
    try:
        plugin_at = list(argv).index("orgproxy")
    except ValueError:
        plugin_at = len(argv)
    twistd_options: list[str] = []
    skip_next = False
    for token in argv[1:plugin_at]:
        if skip_next:
            skip_next = False
        elif token in ("-n", "--nodaemon", "-d", "--daemon"):
            continue
        elif token in ("--pidfile", "-p"):
            skip_next = True
        elif not token.startswith("--pidfile="):
            twistd_options.append(token)
    plugin_options = [f"--{name}={value}" for name, value in options.given.items()
                      if name not in ("workers", "worker-fd", "worker-number")]
    plugin_options += [f"--{name}" for name, _, _ in options.optFlags if options[name]]
    return [sys.executable, argv[0], *twistd_options, "--nodaemon", "--pidfile=", "orgproxy",
            *plugin_options, "--workers=1", f"--worker-fd={WORKER_FD}", f"--worker-number={worker}"]


def share_accepts(port: Any) -> None:
    """Accept one connection per wake-up. Twisted accepts up to a hundred at once, so the
    first worker to wake would take a whole burst of connections (and, with keep-alive,
    their every request) while the others idle.

    Setting ``numberAccepts`` once is not enough: after a wake-up that accepted as many
    as it allowed, the port raises it by 20. So it is set again before every accept.
    """
    if not hasattr(port, "numberAccepts"):
        return
    accept = port.doRead

    def accept_one() -> Any:
        port.numberAccepts = 1
        return accept()

    port.doRead = accept_one


class AdoptedPortService(Service):
    """Serves on the listening socket a worker was given."""

    def __init__(self, reactor: Any, fd: int, factory: ServerFactory):
        self.reactor = reactor
        self.fd = fd
        self.factory = factory
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        family = socket.socket(fileno=os.dup(self.fd)).family
        self.port = self.reactor.adoptStreamPort(self.fd, family, self.factory)
        os.close(self.fd)  # the port holds its own copy
        share_accepts(self.port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        return self.port.stopListening() if self.port is not None else None


class _Worker(ProcessProtocol):
    def __init__(self, pool: WorkerPool, number: int):
        self.pool = pool
        self.number = number
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.pool.ended(self, reason)


class WorkerPool(Service):
    """Starts the other workers on the listening socket, and keeps them running."""

    def __init__(self, reactor: Any, count: int, argv: Sequence[str], options: Any,
                 listening: Any, stop_timeout: float):
        self.reactor = reactor
        self.count = count
        self.argv = list(argv)
        self.options = options
        self.listening = listening  # the service whose .port is the listening socket
        self.stop_timeout = stop_timeout
        self.workers: dict[int, _Worker] = {}

    def startService(self) -> None:
        super().startService()
        for number in range(1, self.count):
            self.start_worker(number)

    def start_worker(self, number: int) -> None:
        if not self.running:
            return
        worker = _Worker(self, number)
        fd = self.listening.port.fileno()
        self.reactor.spawnProcess(worker, sys.executable, worker_argv(self.argv, self.options, number),
                                  env=os.environ.copy(), childFDs={0: "w", 1: 1, 2: 2, WORKER_FD: fd})
        self.workers[number] = worker
        log.info("Started worker {number} (pid {pid})", number=number, pid=worker.transport.pid)

    def ended(self, worker: _Worker, reason: Failure) -> None:
        self.workers.pop(worker.number, None)
        if self.running:
            log.error("Worker {number} ended ({reason}); starting it again in {delay:g} s",
                      number=worker.number, reason=reason.getErrorMessage(), delay=RESTART_DELAY)
            self.reactor.callLater(RESTART_DELAY, self.start_worker, worker.number)

    def signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            if worker.transport is not None and worker.transport.pid is not None:
                worker.transport.signalProcess(signum)

    def on_sighup(self, _why: str) -> None:
        self.signal_all(signal.SIGHUP)

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        if not self.workers:
            return None
        self.signal_all(signal.SIGTERM)
        everyone = DeferredList([w.ended for w in self.workers.values()])
        everyone.addTimeout(self.stop_timeout, self.reactor)

        def kill_the_rest(failure: Failure) -> None:
            failure.trap(TimeoutError)
            log.warn("Workers still running after {timeout:g} s; killing them", timeout=self.stop_timeout)
            self.signal_all(signal.SIGKILL)
        return everyone.addErrback(kill_the_rest)


class ListeningService(Service):
    """Listens on an endpoint itself (rather than via strports) so that the port, and
    its socket, can be handed to the workers."""

    def __init__(self, endpoint: Any, factory: ServerFactory):
        self.endpoint = endpoint
        self.factory = factory
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        result: list[Any] = []
        self.endpoint.listen(self.factory).addBoth(result.append)
        if not result:
            raise CannotListenError(None, None, "the endpoint did not listen at once")
        if isinstance(result[0], Failure):
            result[0].raiseException()
        self.port = result[0]
        share_accepts(self.port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        return self.port.stopListening() if self.port is not None else None
