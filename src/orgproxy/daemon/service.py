"""The daemon's service: its parts started and stopped in order. A stop lets requests in
flight finish (here and in every worker at once) before the pools close; the daemon stops
itself, once, on SIGTERM, when a worker's first process is gone, or when something it
cannot work without keeps failing."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, TimeoutError, succeed
from twisted.internet.error import CannotListenError, ReactorNotRunning
from twisted.logger import ILogObserver
from twisted.python.components import Componentized

from orgproxy.infra import metrics
from orgproxy.infra.logs import log
from orgproxy.infra.signals import SignalHandler
from orgproxy.names.current import CurrentNames
from orgproxy.names.history import History
from orgproxy.ops.workers import WorkerPool
from orgproxy.plural import counted
from orgproxy.web.proxy import InFlight


class DaemonStop:
    """How the daemon stops itself: by stopping the reactor, once, saying why."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.stopping = False

    def requested(self) -> None:
        """SIGTERM."""
        if self.stopping:
            return  # a second SIGTERM (the supervisor's to the group, and ours to workers)
        self.stopping = True
        log.info("SIGTERM: no longer accepting connections; shutting down", event="sigterm")
        self.stop_reactor()

    def first_process_gone(self) -> None:
        """A worker's first process ended (however: kill -9 too): stop as on SIGTERM."""
        if self.stopping:
            return
        self.stopping = True
        log.warn("The first process is gone: no longer accepting connections; shutting down",
                 event="first_process_gone")
        self.stop_reactor()

    def give_up(self, reason: str) -> None:
        """Stop the daemon for good: something it cannot work without keeps failing."""
        log.critical("Stopping: {reason}", event="giving_up", reason=reason)
        self.stopping = True
        self.stop_reactor()

    def stop_reactor(self) -> None:
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass  # already stopping for another reason


class OrgproxyService(MultiService):
    """The listening port, the alias reloader, discovery and the workers, started and
    stopped in order (see the module's docstring)."""

    def __init__(self, *, port: str, upstreams: tuple[str, str], reactor: Any, stop: DaemonStop,
                 current: CurrentNames, history: History | None, discovers: bool, in_flight: InFlight,
                 shutdown_timeout: float, workers: WorkerPool | None = None,
                 connections: Sequence[Callable[[], Deferred[Any]]] = (), notes: Sequence[str] = (),
                 log_observer: ILogObserver | None = None):
        super().__init__()
        self.port = port
        self.upstreams = upstreams  # OpenAI's and Anthropic's, as said at start
        self.reactor = reactor
        self.stop = stop
        self.current = current
        self.history = history  # None in a worker: the first process keeps it
        self.discovers = discovers  # whether this process learns names from an Admin API
        self.in_flight = in_flight
        self.shutdown_timeout = shutdown_timeout
        self.workers = workers  # the first process's pool, with --workers
        self.connections = connections  # each closes a pool of kept-alive upstream connections
        self.notes = notes  # what start-up found worth a warning
        # The log observer to offer twistd (see logs.text_lines), or None for twistd's own.
        self.log_observer = log_observer
        # twistd's own SIGTERM handler makes the process end by re-raising the signal,
        # which supervisors report as a crash; a requested stop ends with status 0.
        self.sigterm = SignalHandler(reactor, signal.SIGTERM, stop.requested)

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd starts logging after makeService, with an ILogObserver component of
        # the application where there is one (the way a .tac file chooses its observer).
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)

    def privilegedStartService(self) -> None:
        # The port is bound here (strports raises at once rather than logging and serving
        # nothing); a port in use ends the start-up with one line instead of a traceback.
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(f"orgproxy: cannot listen on {self.port}: {e.socketError}") from None

    def startService(self) -> None:
        super().startService()
        self.reactor.callWhenRunning(self.reactor_running)

    def reactor_running(self) -> None:
        # Only now has the reactor installed its own signal handlers, which ours replace;
        # the "serving" line comes last, so whoever waits for it can also signal us.
        self.sigterm.install()
        for note in self.notes:
            log.warn("{note}", event="start_note", note=note)
        by_source = self.current.names.by_source
        remembered = by_source.get("history", 0)
        if self.history is not None:
            log.info("{names} remembered in {path}", event="names_remembered",
                     names=counted(remembered, "name"), count=remembered, path=self.history.path)
        else:  # a worker: the first process learns names, and remembers them
            learned = remembered + by_source.get("discovered", 0)
            log.info("{names} learned and remembered by the first process", event="names_of_first_process",
                     names=counted(learned, "name"), count=learned)
        if self.current.source is not None:
            aliased = by_source.get("aliases", 0)
            log.info("{names} from {path}", event="names_from_aliases", names=counted(aliased, "name"), count=aliased,
                     path=self.current.source)
        elif self.discovers or self.history is None:
            log.info("No alias file (--aliases or ORGPROXY_ALIASES): names come from discovery"
                     " and the history", event="no_alias_file")
        elif not remembered:
            log.warn("No alias file (--aliases or ORGPROXY_ALIASES) and no discovery: running with"
                     " no names; every id is named \"unknown\"", event="no_names")
        openai, anthropic = self.upstreams
        log.info("orgproxy serving on {port}, forwarding /v1/organization/ to {upstream}"
                 " and /v1/organizations/ to {anthropic_upstream}", event="serving", port=self.port,
                 upstream=openai, anthropic_upstream=anthropic)

    def stopService(self) -> Deferred[None]:
        # The SIGTERM handler stays until the end: a second SIGTERM during the stop (a
        # supervisor signalling the whole group) must not reach twistd's, which would
        # stop the reactor again.
        self.stop.stopping = True
        return Deferred.fromCoroutine(self.stop_in_order())

    async def stop_in_order(self) -> None:
        # The port stops accepting, the reloader stops, and the workers are told to stop
        # (the pool does not wait for them); this process drains while they do, so that
        # the whole daemon stops within one --shutdown-timeout.
        await super().stopService()
        draining = Deferred.fromCoroutine(self.drain(self.shutdown_timeout))
        await DeferredList([draining, self.workers.all_ended() if self.workers is not None else succeed(None)])
        metrics.flush()  # what the last requests counted (with workers, for the others' scrapes)
        await DeferredList([close() for close in self.connections])
        if self.history is not None:
            self.history.close()

    async def drain(self, timeout: float) -> None:
        in_flight = self.in_flight
        if not in_flight.count:
            return
        log.info("Waiting up to {timeout:g} s for {requests} in flight", event="draining", timeout=timeout,
                 count=in_flight.count, requests=counted(in_flight.count, "request"))
        try:
            await in_flight.idle().addTimeout(timeout, self.reactor)
        except TimeoutError:
            log.warn("{requests} still in flight after {timeout:g} s; stopping anyway",
                     event="drain_timed_out",
                     count=in_flight.count, requests=counted(in_flight.count, "request"), timeout=timeout)
