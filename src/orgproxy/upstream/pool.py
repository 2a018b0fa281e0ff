"""HTTP/1.1 to the upstream, lean: one request at a time on kept-alive connections, each
answer read whole and capped by ``parse.ResponseReader``, and no connection ever carries
one caller's answer to another.

Why not Twisted's ``Agent`` here: the proxy needs one thing from its client, to send the
caller's request as given and read one whole, capped answer, and on a small page the
Agent's generality (a URI parsed per request, ``Headers`` objects both ways, a state
machine per connection and per response, a body protocol, five Deferreds) was a third of
the daemon's CPU. This module does that one thing over the same endpoints the Agent
uses (TCP, verified TLS; ``agent.py``), so connecting, TLS and its errors are Twisted's.
Discovery, which is not on the request path, keeps using treq over an Agent.

Which connections are reused, and why. A kept-alive connection is a stream of bytes: the
next answer read on it is whatever the upstream (or anything between) writes next, and an
answer written late, after its request's answer seemed complete, is read as the answer to
the next request sent on it. So:

- **Keyed by credential.** Idle connections are kept per key, a digest of the request's
  credential headers (Authorization, x-api-key) and the headers that choose its answer
  (OpenAI-Organization, OpenAI-Project, anthropic-version, anthropic-beta): a connection
  carries only requests made with the same key, so even a late answer on it was meant for
  the same caller. The key is a digest: a secret is never kept as a dictionary key.
- **Reused only after an answer whose end is certain:** a Content-Length body read to its
  last byte, or a chunked body read to its last chunk and trailers, on HTTP/1.1 without
  ``Connection: close``. Not after an answer with no body by rule (a HEAD's, a 204, a
  304: an upstream that sends a body anyway sends it after what looked like the end), nor
  after informational answers (an upstream that sends a 100 nobody asked for does not
  agree with us on what comes next), nor a body read until close, nor one framed by both
  Transfer-Encoding and Content-Length (how answers are smuggled: the two ends may not
  agree on where it ends).
- **Any byte out of turn closes it:** bytes after an answer's end in the same read, or on
  an idle connection (before the next request is written), were asked for by no request.
- **Bounded:** at most ``KEPT_ALIVE`` idle connections in all (the longest idle closed to
  make room), ``KEPT_ALIVE_PER_KEY`` per key, none idle longer than ``IDLE_LIFETIME``; so
  many callers cannot hold unbounded idle sockets, nor one caller all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from orgproxy.upstream.parse import (
    CorruptEncoding,
    HeaderList,
    MalformedResponse,
    ResponseReader,
    ResponseTooLarge,
)

# Idle connections kept per upstream, in all: enough for a dashboard's burst of parallel
# calls (the daemon's file descriptors budget counts on this many: web/connections.py).
KEPT_ALIVE = 32
# ... and per credential, so that one caller's burst cannot close everyone else's.
KEPT_ALIVE_PER_KEY = 16
# Seconds a connection may sit idle and still be used: one idle longer is closed rather
# than trusted (a middlebox may have forgotten it without a word, and a request on it
# would wait for the timeout). Twisted's own pool keeps them 240 s; upstreams and load
# balancers often close theirs after 60.
IDLE_LIFETIME = 50.0
# Methods sent again, once, on a fresh connection when a kept-alive one turns out to have
# been closed by the upstream before it answered a byte (RFC 9110, 9.2.2: idempotent, and
# the proxy sends no body with them).
RETRIED_WHEN_STALE = frozenset({b"GET", b"HEAD", b"OPTIONS"})


def credential_key(headers: HeaderList, names: Collection[bytes]) -> bytes:
    """The pool key of a request: a digest of the headers ``names`` (lower case) as they
    are sent, each name with all its values in order. Unambiguous (each value after its
    length), so one key is one set of credential and scope headers. BLAKE2b (32 bytes): the
    standard library's own, without an OpenSSL call on every request."""
    parts = []
    for name, values in headers:
        lowered = name.lower()
        if lowered in names:
            parts.append(lowered)
            for value in values:
                parts.append(b"%d:" % len(value))
                parts.append(value)
    return hashlib.blake2b(b"".join(parts), digest_size=32).digest()


class PooledExchange:
    """One request on its way: the connection it has, the reader of its answer, and the
    Deferred its caller waits on (cancelling it drops the connection)."""

    def __init__(self, pool: ConnectionPool, key: bytes, method: bytes, request: bytes, limit: int):
        self.pool = pool
        self.key = key
        self.method = method
        self.request = request
        self.limit = limit
        self.connection: UpstreamConnection | None = None
        self.reader = ResponseReader(method, limit)
        self.result: Deferred[ResponseReader] = Deferred(self.cancel)
        self.retried = False
        self.connecting: Deferred[Any] | None = None

    def start(self, fresh: bool = False) -> None:
        """Send the request on an idle connection of its key, or on a new one (always,
        when ``fresh``)."""
        connection = None if fresh else self.pool.take_idle(self.key)
        if connection is not None:
            self.send_on(connection, reused=True)
            return
        self.connecting = self.pool.connect()
        self.connecting.addCallbacks(self.connected, self.could_not_connect)

    def connected(self, connection: UpstreamConnection) -> None:
        self.connecting = None
        connection.key = self.key
        self.send_on(connection, reused=False)

    def could_not_connect(self, failure: Failure) -> None:
        self.connecting = None
        if not self.result.called:  # (else cancelled, and this is the cancellation)
            self.result.errback(failure)

    def send_on(self, connection: UpstreamConnection, reused: bool) -> None:
        self.connection = connection
        connection.exchange = self
        connection.reused = reused
        connection.transport.write(self.request)

    def received(self, connection: UpstreamConnection, data: bytes) -> None:
        try:
            complete = self.reader.feed(data)
        except (MalformedResponse, ResponseTooLarge, CorruptEncoding) as e:
            self.end(connection, reuse=False)
            self.result.errback(Failure(e))
            return
        if complete:
            self.end(connection, reuse=self.reader.keep_alive)
            self.result.callback(self.reader)

    def lost(self, connection: UpstreamConnection, reason: Failure) -> None:
        self.connection = None
        if self.result.called:
            return
        reader = self.reader
        if connection.reused and not reader.received_any and not self.retried and \
                self.method in RETRIED_WHEN_STALE:
            # The upstream closed an idle connection as this request went out on it.
            self.retried = True
            self.reader = ResponseReader(self.method, self.limit)
            self.start(fresh=True)
            return
        try:
            # A body read until close ends with a clean close, not with an error.
            complete = reason.check(ConnectionDone) is not None and reader.connection_closed()
        except CorruptEncoding as e:  # a gzip body read until close, cut short
            self.result.errback(Failure(e))
            return
        if complete:
            self.result.callback(reader)
        else:
            self.result.errback(reason if not reason.check(ConnectionDone) else Failure(ConnectionLost(
                "the upstream closed the connection before its answer was complete")))

    def end(self, connection: UpstreamConnection, reuse: bool) -> None:
        connection.exchange = None
        self.connection = None
        if reuse:
            self.pool.put_idle(connection)
        else:
            connection.transport.loseConnection()

    def cancel(self, _: Deferred[ResponseReader]) -> None:
        """The caller gave up (its client left, or the deadline passed): drop the
        connection, the answer is not worth the rest of its bytes."""
        if not self.result.called:
            self.result.errback(Failure(CancelledError()))
        if self.connecting is not None:
            self.connecting.cancel()
        connection = self.connection
        if connection is not None:
            connection.exchange = None
            self.connection = None
            connection.transport.abortConnection()


class UpstreamConnection(Protocol):
    """One connection to the upstream: idle in the pool, or carrying one exchange, always
    for the one credential key it was opened for."""

    def __init__(self, pool: ConnectionPool):
        self.pool = pool
        self.key = b""
        self.exchange: PooledExchange | None = None
        self.reused = False  # the exchange it carries went out on a kept-alive connection
        self.idle_since = 0.0
        self.closed = False
        self.on_close: list[Callable[[], None]] = []

    def dataReceived(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.received(self, data)
        else:
            # Bytes no request asked for, on an idle connection: it cannot be trusted.
            self.pool.forget(self)
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.lost(self, reason)
        for closed in self.on_close:
            closed()


class ConnectionPool:
    """Connections to one upstream endpoint, kept alive between requests of the same
    credential key: of a key's, the last one idle is the first one used (the warmest, and
    the least likely to have timed out)."""

    def __init__(self, endpoint: IStreamClientEndpoint, clock: IReactorTime, kept_alive: int = KEPT_ALIVE,
                 idle_lifetime: float = IDLE_LIFETIME, kept_alive_per_key: int = KEPT_ALIVE_PER_KEY):
        self.endpoint = endpoint
        self.clock = clock
        self.kept_alive = kept_alive
        self.kept_alive_per_key = kept_alive_per_key
        self.idle_lifetime = idle_lifetime
        self.idle: dict[bytes, list[UpstreamConnection]] = {}  # by key, the longest idle first
        self.idle_order: dict[UpstreamConnection, None] = {}  # every idle one, the longest idle first
        self.factory = Factory.forProtocol(lambda: UpstreamConnection(self))
        self.factory.noisy = False  # no "Starting factory" line per connection

    def connect(self) -> Deferred[UpstreamConnection]:
        return self.endpoint.connect(self.factory)  # type: ignore[no-any-return]

    @property
    def idle_count(self) -> int:
        return len(self.idle_order)

    def take_idle(self, key: bytes) -> UpstreamConnection | None:
        idle = self.idle.get(key)
        while idle:
            connection = idle.pop()
            del self.idle_order[connection]
            if self.clock.seconds() - connection.idle_since > self.idle_lifetime:
                # This one idled too long, and every one of its key left idled longer.
                for stale in (connection, *idle):
                    self.idle_order.pop(stale, None)
                    stale.transport.loseConnection()
                idle.clear()
            else:
                if not idle:
                    del self.idle[key]
                return connection
        self.idle.pop(key, None)
        return None

    def put_idle(self, connection: UpstreamConnection) -> None:
        if connection.closed:
            return
        now = self.clock.seconds()
        while self.idle_order:
            # Those idle too long, whoever's they are (keys nobody used since): closed.
            longest = next(iter(self.idle_order))
            if now - longest.idle_since <= self.idle_lifetime:
                break
            self.forget(longest)
            longest.transport.loseConnection()
        idle = self.idle.setdefault(connection.key, [])
        if len(idle) >= self.kept_alive_per_key:
            connection.transport.loseConnection()
            return
        if len(self.idle_order) >= self.kept_alive:
            # Room made by closing the longest idle of all, whoever's it is.
            longest = next(iter(self.idle_order))
            self.forget(longest)
            longest.transport.loseConnection()
            idle = self.idle.setdefault(connection.key, [])
        connection.idle_since = now
        idle.append(connection)
        self.idle_order[connection] = None

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self.idle_order:
            del self.idle_order[connection]
            idle = self.idle[connection.key]
            idle.remove(connection)
            if not idle:
                del self.idle[connection.key]

    def close(self) -> Deferred[None]:
        """Close the idle connections; fires once each has closed."""
        closing = list(self.idle_order)
        self.idle, self.idle_order = {}, {}
        done: Deferred[None] = Deferred()
        left = [len(closing)]

        def one_closed() -> None:
            left[0] -= 1
            if left[0] == 0:
                done.callback(None)
        if not closing:
            done.callback(None)
        for connection in closing:
            connection.on_close.append(one_closed)
            connection.transport.loseConnection()
        return done


def request_bytes(method: bytes, target: bytes, host: bytes, headers: HeaderList, body: bytes | None) -> bytes:
    """The request as it goes on the wire. Header names and values come from a request
    Twisted parsed line by line; a CR or LF that reached one anyway becomes a space here
    (as Twisted's own ``Headers`` does), so that no header can start another."""
    head = _head(method, target, host, headers, body)
    if not head.count(b"\r") == head.count(b"\n") == head.count(b"\r\n"):
        def clean(value: bytes) -> bytes:
            return value.replace(b"\r", b" ").replace(b"\n", b" ")
        head = _head(clean(method), clean(target), clean(host),
                     [(clean(name), [clean(value) for value in values]) for name, values in headers], body)
    return head + body if body else head


def _head(method: bytes, target: bytes, host: bytes, headers: HeaderList, body: bytes | None) -> bytes:
    lines = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    for name, values in headers:
        for value in values:
            lines += (name, b": ", value, b"\r\n")
    if body is not None:
        lines.append(b"Content-Length: %d\r\n" % len(body))
    lines.append(b"Accept-Encoding: gzip\r\n\r\n")
    return b"".join(lines)
