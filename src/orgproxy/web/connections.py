"""Client connections: how many may be open at once, which of them make room for a new
one, and what is said when there are too many.

Every open connection holds a file descriptor, and so does every upstream connection,
log file and the state store. Beyond the process's limit (``RLIMIT_NOFILE``) ``accept``
fails with EMFILE and nobody is served, so the connections are capped below it
(``--max-connections``), and so are one source address's (``--max-connections-per-source``).

A cap that only refused new connections would let anyone who opens them first and sends
a request slowly keep everyone else out for as long as they like. So at a cap, room is
made: the connection that has waited longest without a whole request to answer (a new
one, one trickling its head or body, one idle between requests) is closed for the new
one. Connections holding a whole request, or answering one, are never closed to make
room: the newest whole requests are the ones served. Only when every connection at the
cap is busy so is the new one closed at once.

These conditions recur by the thousand under a flood, so each is logged once per
interval, with how often it happened, rather than once per connection.
"""

from __future__ import annotations

import resource
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

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


def default_max_connections_per_source(max_connections: int) -> int:
    """A quarter of the cap: one address cannot hold every connection."""
    return max(max_connections // 4, 1)


class Waiting(Protocol):
    """A connection that may be closed to make room for a new one."""

    def make_room(self) -> None:
        """Close, for a newer connection."""


_UNCOUNTED: Any = object()  # what a connection no longer (or never) counted is found as


class Source:
    """One source address's connections: how many are open, and which wait for a request."""

    __slots__ = ("address", "open", "waiting")

    def __init__(self, address: str):
        self.address = address
        self.open = 0
        self.waiting: OrderedDict[Waiting, None] = OrderedDict()


class ClientConnections:
    """The open client connections: how many, how many from each source address, and which
    of them wait for a whole request (oldest first), to be closed at a cap for a new one.

    Every step is O(1): each queue of waiting connections is an ``OrderedDict`` (its
    oldest taken first, any one removed by key), so neither an accept nor a request
    scans the connections however many are open.
    """

    def __init__(self, limit: int | None = None, per_source: int | None = None):
        self.limit = limit
        self.per_source = per_source
        # Every connection counted, with its source (None: a UNIX socket's peer, counted
        # under the whole cap only); the waiting ones, oldest first, with theirs too.
        self.source_of: dict[Waiting, Source | None] = {}
        self.waiting: OrderedDict[Waiting, Source | None] = OrderedDict()
        self.sources: dict[str, Source] = {}

    def __len__(self) -> int:
        return len(self.source_of)

    def room_for(self, address: str | None) -> str | None:
        """Make room for a new connection from ``address``, closing the longest-waiting
        connection at a cap; the reason it cannot have one, if every connection at that
        cap holds a request."""
        source = self.sources.get(address) if address is not None else None
        if (source is not None and self.per_source is not None and source.open >= self.per_source
                and not self._close_longest_waiting(source.waiting)):
            return "max_connections_per_source"
        if self.limit is not None and len(self.source_of) >= self.limit \
                and not self._close_longest_waiting(self.waiting):
            return "max_connections"
        return None

    def opened(self, connection: Waiting, address: str | None) -> None:
        """Count a new connection, waiting for its first request."""
        source = None
        if address is not None:
            source = self.sources.get(address)
            if source is None:
                source = self.sources[address] = Source(address)
            source.open += 1
        self.source_of[connection] = source
        self.waiting_for_request(connection)

    def waiting_for_request(self, connection: Waiting) -> None:
        """The connection has no whole request (it answered its last): from now on it
        may be closed to make room, once the connections waiting before it have been."""
        source = self.source_of.get(connection, _UNCOUNTED)
        if source is _UNCOUNTED:
            return  # closed already to make room
        self.waiting[connection] = source
        if source is not None:
            source.waiting[connection] = None

    def holding_request(self, connection: Waiting) -> None:
        """The connection holds a whole request: it is never closed to make room."""
        source = self.waiting.pop(connection, None)
        if source is not None:
            del source.waiting[connection]

    def closed(self, connection: Waiting) -> None:
        """The connection is gone (or about to go): it counts no more."""
        source = self.source_of.pop(connection, _UNCOUNTED)
        if source is _UNCOUNTED:
            return
        self.waiting.pop(connection, None)
        if source is not None:
            source.waiting.pop(connection, None)
            source.open -= 1
            if not source.open:
                del self.sources[source.address]

    def _close_longest_waiting(self, waiting: OrderedDict[Waiting, Any] | None) -> bool:
        if not waiting:
            return False
        connection = next(iter(waiting))
        self.closed(connection)
        connection.make_room()
        return True


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
        log.warn("{times} new connections closed at once: {limit} connections are open (the most"
                 " --max-connections allows), or as many from their address as --max-connections-per-source"
                 " allows, and each holds a request (said once a minute at most)", times=times, limit=limit)
    return say


def said_made_room(limit: int, per_source: int | None) -> Callable[[int], None]:
    def say(times: int) -> None:
        log.warn("{times} connections without a whole request closed to make room for new ones:"
                 " {limit} connections (or {per_source} from one address) are open, the most"
                 " --max-connections (--max-connections-per-source) allows (said once a minute at most)",
                 times=times, limit=limit, per_source=per_source)
    return say


def said_outside_allow_from(times: int) -> None:
    log.info("{times} connections from addresses outside --allow-from closed at once"
             " (said once a minute at most)", times=times)


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

