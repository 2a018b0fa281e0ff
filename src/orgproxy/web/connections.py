"""Client connections: how many may be open at once, and what is said when there are too
many.

Every open connection holds a file descriptor, and so does every upstream connection,
log file and the state store. Beyond the process's limit (``RLIMIT_NOFILE``) ``accept``
fails with EMFILE and nobody is served, so the connections are capped below it
(``--max-connections``): a connection beyond the cap is closed at once, while the ones
already open keep being served. Both conditions recur by the thousand under a flood, so
each is logged once per interval, with how often it happened, rather than once per
connection.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorTime, IStreamServerEndpoint
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import implementer, provider

from orgproxy._twisted_private import ACCEPT_ERROR_FORMATS, ACCEPT_REFUSED_FORMATS, log_accept_errors_to
from orgproxy.ops import metrics
from orgproxy.ops.logs import log

# File descriptors kept for all but client connections, beyond one per upstream request
# in flight: idle upstream connections kept alive (upstream/pool.py keeps up to 32 per
# upstream, discovery's agent 2), the state
# store and its journal, log files, inotify, the reactor's own pipes, the workers' pipes,
# alias files being read, standard streams, and slack.
RESERVED_DESCRIPTORS = 96
# The most file descriptors counted on when the limit is "unlimited".
UNLIMITED = 1 << 20
# Seconds between two log lines about one recurring condition.
LOG_INTERVAL = 60.0


def open_files_limit() -> int:
    """The process's soft limit on open file descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY or soft > UNLIMITED else soft


def default_max_connections(max_concurrency: int, limit: int) -> int:
    """Client connections that leave ``limit`` room for an upstream connection per request
    in flight (``--max-concurrency``) and the daemon's own files; at least a quarter of
    the limit, where the limit is too low to keep that room."""
    return max(limit // 4, limit - max_concurrency - RESERVED_DESCRIPTORS, 1)


class Throttled:
    """A recurring condition, said once per ``interval`` with how often it happened since
    it was last said (``say(times)``)."""

    def __init__(self, clock: IReactorTime, say: Callable[[int], None], interval: float = LOG_INTERVAL):
        self.clock = clock
        self.say = say
        self.interval = interval
        self.times = 0
        self.said_at: float | None = None

    def happened(self) -> None:
        self.times += 1
        now = self.clock.seconds()
        if self.said_at is None or now - self.said_at >= self.interval:
            times, self.times, self.said_at = self.times, 0, now
            self.say(times)


def said_over_capacity(limit: int) -> Callable[[int], None]:
    def say(times: int) -> None:
        log.warn("{times} new connections closed at once: {limit} connections are open, the most"
                 " --max-connections allows (said once a minute at most)", times=times, limit=limit)
    return say


def said_out_of_descriptors(times: int) -> None:
    log.error("{times} new connections closed at once: out of file descriptors (EMFILE: the limit is"
              " {limit}); raise it (LimitNOFILE=, ulimit -n) or lower --max-connections"
              " (said once a minute at most)", times=times, limit=open_files_limit())


def accept_errors_observer(throttled: Throttled) -> ILogObserver:
    """A listening port's log observer: its accept errors (EMFILE, ENFILE, ENOBUFS, ...)
    counted and said through ``throttled``, its other events passed on as they are."""
    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        format = event.get("log_format")
        if format in ACCEPT_REFUSED_FORMATS:
            metrics.count_connection_closed("out_of_descriptors")
            throttled.happened()
        elif format not in ACCEPT_ERROR_FORMATS:
            globalLogPublisher(event)
    return observe


@implementer(IStreamServerEndpoint)
class ThrottledAcceptErrors:
    """An endpoint whose port logs its accept errors through ``observer``."""

    def __init__(self, endpoint: IStreamServerEndpoint, observer: ILogObserver):
        self.endpoint = endpoint
        self.observer = observer

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.endpoint.listen(factory).addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        log_accept_errors_to(port, self.observer)
        return port

