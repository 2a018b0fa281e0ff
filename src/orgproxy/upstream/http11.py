"""HTTP/1.1 to the upstream, lean: one request at a time on kept-alive connections, and
each answer read whole, capped, by a small parser.

Why not Twisted's ``Agent`` here: the proxy needs one thing from its client, to send the
caller's request as given and read one whole, capped answer, and on a small page the
Agent's generality (a URI parsed per request, ``Headers`` objects both ways, a state
machine per connection and per response, a body protocol, five Deferreds) was a third of
the daemon's CPU. This module does that one thing over the same endpoints the Agent
uses (TCP, verified TLS; ``agent.py``), so connecting, TLS and its errors are Twisted's.
Discovery, which is not on the request path, keeps using treq over an Agent.

The parser follows RFC 9112: a response's body is framed by the request's method and the
status (HEAD, 1xx, 204 and 304 have none), then Transfer-Encoding (chunked, or read until
the connection closes), then Content-Length (repeated only with one value), else until
close. What it cannot trust (a head past ``MAX_HEAD_BYTES``, a malformed status line or
header, conflicting lengths, bad chunk framing) fails the exchange as
``MalformedResponse`` and drops the connection; nothing from it reaches the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from orgproxy.upstream.failures import MalformedResponse, ResponseTooLarge
from orgproxy.upstream.gunzip import CorruptEncoding, Inflater

HeaderList = list[tuple[bytes, list[bytes]]]

# The status line and headers of one response, at most: OpenAI's are under 2 KiB.
MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line (with extensions), or one trailer line, at most.
MAX_CHUNK_LINE = 4096
# Informational answers (100 Continue, 103 Early Hints) before the final one, at most.
MAX_INFORMATIONAL = 8
# A body whose length is announced and at least this large is copied, as it arrives, into
# one buffer of that length (and a little more: see ResponseReader.body) rather than kept
# in the pieces it came in.
ONE_BUFFER_BYTES = 1 << 20
SPARE_BYTES = 64 * 1024
# Idle connections kept per upstream: enough for a dashboard's burst of parallel calls.
KEPT_ALIVE = 32
# Seconds a connection may sit idle and still be used: one idle longer is closed rather
# than trusted (a middlebox may have forgotten it without a word, and a request on it
# would wait for the timeout). Twisted's own pool keeps them 240 s; upstreams and load
# balancers often close theirs after 60.
IDLE_LIFETIME = 50.0
# Methods sent again, once, on a fresh connection when a kept-alive one turns out to have
# been closed by the upstream before it answered a byte (RFC 9110, 9.2.2: idempotent, and
# the proxy sends no body with them).
RETRIED_WHEN_STALE = frozenset({b"GET", b"HEAD", b"OPTIONS"})

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: ([^\r\n]*))?\r?")
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # a header name (RFC 9110, 5.6.2)
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\r\n\x00]*?)[ \t]*\r?\n")
_HEADER_LINES = re.compile(rb"(?:" + _TOKEN + rb":[^\r\n\x00]*\r?\n)*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?")

_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class Head:
    """A response's status line and headers: names in lower case, each name's values in
    the order received, names in the order first seen."""

    __slots__ = ("status", "phrase", "http11", "headers", "by_name")

    def __init__(self, status: int, phrase: bytes, http11: bool, headers: HeaderList,
                 by_name: dict[bytes, list[bytes]]):
        self.status = status
        self.phrase = phrase
        self.http11 = http11
        self.headers = headers
        self.by_name = by_name  # the same lists as ``headers``, by name

    def values(self, name: bytes) -> list[bytes]:
        return self.by_name.get(name, [])

    def tokens(self, name: bytes) -> list[bytes]:
        """A comma-separated header's tokens, lower-cased (Connection, Transfer-Encoding)."""
        values = self.by_name.get(name)
        if values is None:
            return []
        return [token.strip().lower() for value in values for token in value.split(b",") if token.strip()]


def parse_head(block: bytes) -> Head:
    """The status line and headers of ``block`` (up to, not including, the blank line)."""
    status_end = block.find(b"\n")
    status_line = _STATUS_LINE.fullmatch(block if status_end < 0 else block[:status_end])
    if status_line is None:
        raise MalformedResponse("its status line is not HTTP/1.x")
    headers: HeaderList = []
    by_name: dict[bytes, list[bytes]] = {}
    if status_end >= 0:
        fields = block[status_end + 1:] + b"\n"
        # Every line a header, checked at once: a token, a colon, a value without CR
        # (but at its end), LF or NUL; no obsolete line folding, no space before the
        # colon (RFC 9112, 5.1 and 5.2).
        if _HEADER_LINES.fullmatch(fields) is None:
            raise MalformedResponse("a header line is malformed")
        for name, value in _HEADER_LINE.findall(fields):
            name = name.lower()
            known = by_name.get(name)
            if known is None:
                by_name[name] = known = []
                headers.append((name, known))
            known.append(value)
    return Head(int(status_line.group(2)), status_line.group(3) or b"", status_line.group(1) == b"1", headers,
                by_name)


def framing(method: bytes, head: Head) -> tuple[int, int]:
    """How the body of ``head``'s response is delimited (RFC 9112, 6.3), and its length
    when Content-Length gives it."""
    if method == b"HEAD" or head.status in (204, 304) or head.status < 200:
        return _NO_BODY, 0
    codings = head.tokens(b"transfer-encoding")
    if codings:
        return (_CHUNKED if codings[-1] == b"chunked" else _UNTIL_CLOSE), 0
    lengths = head.values(b"content-length")
    if lengths:
        values = {value.strip() for length in lengths for value in length.split(b",")}
        if len(values) != 1:
            raise MalformedResponse("it gives conflicting Content-Lengths")
        (value,) = values
        if not value.isdigit() or len(value) > 18:
            raise MalformedResponse("its Content-Length is not a number")
        return _LENGTH, int(value)
    return _UNTIL_CLOSE, 0


class ResponseReader:
    """One response, read from the bytes of a connection as they come; pure.

    ``feed`` returns True once the response is complete; ``connection_closed`` says
    whether the connection's end completes it (a body read until close). Either raises
    MalformedResponse, ResponseTooLarge or CorruptEncoding when the response cannot be
    taken. The body kept is at most ``limit`` bytes, after gzip is undone.
    """

    def __init__(self, method: bytes, limit: int):
        self.method = method
        self.limit = limit
        self.buffer = b""  # bytes of the head, or of chunk framing, not yet taken
        self.head: Head | None = None
        self.framing = _NO_BODY
        self.remaining = 0  # of the body (Content-Length) or of the current chunk
        self.in_trailers = False
        self.trailer_bytes = 0
        self.informational = 0
        self.encoded_size = 0  # body bytes as they came, before gzip is undone
        self.after_chunk = False  # a chunk's data is read, its CRLF is not yet
        self.chunks: list[bytes] = []
        self.whole: memoryview | None = None  # the one buffer, for a large announced body
        self.size = 0
        self.inflater: Inflater | None = None
        self.received_any = False
        self.complete = False
        self.leftover = False  # bytes after the end of the response: the connection is not reused

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        head = self.head
        if head is None or not head.http11 or self.framing == _UNTIL_CLOSE or self.leftover:
            return False
        if b"close" in head.tokens(b"connection"):
            return False
        # Both framings at once is how responses are smuggled: never trusted twice.
        return not (head.values(b"transfer-encoding") and head.values(b"content-length"))

    def feed(self, data: bytes) -> bool:
        if data:
            self.received_any = True
        if self.complete:
            self.leftover = self.leftover or bool(data)
            return True
        if self.head is None:
            data = self._read_head(data)
            if self.head is None:
                return False
        if self.framing == _LENGTH:
            return self._read_length(data)
        if self.framing == _CHUNKED:
            return self._read_chunked(data)
        if self.framing == _UNTIL_CLOSE:
            self._take(data)
            return False
        return self._done(data)

    def connection_closed(self) -> bool:
        if self.complete:
            return True
        if self.head is not None and self.framing == _UNTIL_CLOSE:
            self._finish()
            return True
        return False

    def _read_head(self, data: bytes) -> bytes:
        while True:
            # Searched from where the last search stopped (less the blank line's first
            # bytes): a head sent a byte at a time is not searched afresh each time.
            start = max(len(self.buffer) - 3, 0)
            buffer = self.buffer + data if self.buffer else data
            end = _END_OF_HEAD.search(buffer, start)
            if end is None:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise MalformedResponse(f"its headers pass {MAX_HEAD_BYTES} bytes")
                self.buffer = buffer
                return b""
            if end.start() > MAX_HEAD_BYTES:
                raise MalformedResponse(f"its headers pass {MAX_HEAD_BYTES} bytes")
            head = parse_head(buffer[:end.start()])
            self.buffer, data = b"", buffer[end.end():]
            if head.status < 200:
                if head.status == 101:
                    raise MalformedResponse("it switched protocols, which was never asked")
                self.informational += 1
                if self.informational > MAX_INFORMATIONAL:
                    raise MalformedResponse(f"it sent more than {MAX_INFORMATIONAL} informational answers")
                continue  # 100 Continue, 103 Early Hints: the answer is still to come
            self.head = head
            self.framing, self.remaining = framing(self.method, head)
            if self.framing == _LENGTH and self.remaining > self.limit:
                raise ResponseTooLarge()
            if self.framing != _NO_BODY and head.tokens(b"content-encoding") == [b"gzip"]:
                self.inflater = Inflater(self.limit)
            elif self.framing == _LENGTH and self.remaining >= ONE_BUFFER_BYTES:
                self.whole = memoryview(bytearray(self.remaining + SPARE_BYTES))
            return data

    def _read_length(self, data: bytes) -> bool:
        if len(data) < self.remaining:
            self.remaining -= len(data)
            self._take(data)
            return False
        self._take(data[:self.remaining] if len(data) > self.remaining else data)
        data, self.remaining = data[self.remaining:], 0
        return self._done(data)

    def _read_chunked(self, data: bytes) -> bool:
        while True:
            if self.remaining:
                piece = data[:self.remaining]
                self.remaining -= len(piece)
                self._take(piece)
                data = data[len(piece):]
                if self.remaining:
                    return False
                self.after_chunk = True
            line = self._line(data)
            if line is None:
                return False
            data = line[1]
            if self.after_chunk:
                if line[0]:
                    raise MalformedResponse("a chunk is longer than its size says")
                self.after_chunk = False
            elif self.in_trailers:
                if not line[0]:
                    return self._done(data)  # the trailers (dropped) are over
                self.trailer_bytes += len(line[0]) + 2  # with its line end
                if self.trailer_bytes > MAX_HEAD_BYTES:
                    raise MalformedResponse(f"its trailers pass {MAX_HEAD_BYTES} bytes")
            else:
                size = _CHUNK_SIZE.fullmatch(line[0])
                if size is None:
                    raise MalformedResponse("a chunk's size line is malformed")
                self.remaining = int(size.group(1), 16)
                if self.remaining == 0:
                    self.in_trailers = True
                elif self.inflater is None and self.size + self.remaining > self.limit:
                    raise ResponseTooLarge()

    def _line(self, data: bytes) -> tuple[bytes, bytes] | None:
        """The next line of chunk framing (without its end) and what follows it, or None
        (and ``data`` kept) until the line is whole."""
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > MAX_CHUNK_LINE:
                raise MalformedResponse("a chunk's framing line is too long")
            self.buffer = buffer
            return None
        if end > MAX_CHUNK_LINE:
            raise MalformedResponse("a chunk's framing line is too long")
        self.buffer = b""
        line = buffer[:end]
        return (line[:-1] if line.endswith(b"\r") else line), buffer[end + 1:]

    def _take(self, data: bytes) -> None:
        if not data:
            return
        if self.inflater is not None:
            # The cap holds for the compressed bytes too: a stream that inflates to little
            # or nothing is not read for ever.
            self.encoded_size += len(data)
            if self.encoded_size > self.limit:
                self.chunks.clear()
                raise ResponseTooLarge()
            for piece in self.inflater.inflate(data):
                self._keep(piece)
        else:
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        start = self.size
        self.size += len(data)
        if self.size > self.limit:
            self.chunks.clear()
            self.whole = None
            raise ResponseTooLarge()
        if self.whole is not None:
            self.whole[start:self.size] = data
        else:
            self.chunks.append(data)

    def _done(self, rest: bytes) -> bool:
        self.leftover = bool(rest)
        self._finish()
        return True

    def _finish(self) -> None:
        if self.inflater is not None:
            self.inflater.check_complete()
        self.complete = True

    def body(self) -> bytes:
        """The whole body, once: the reader lets go of its pieces, so that a large body is
        held once, not twice, while it is amended and written."""
        whole, self.whole = self.whole, None
        if whole is not None:
            # Copied out of the buffer, which then goes: a free block a little larger than
            # the body, where the JSON parser's own copy of it (the body and 64 bytes)
            # fits next, rather than on top of the heap. Pieces joined would leave
            # scattered gaps instead, and the heap would grow by a body's size.
            body = bytes(whole[:self.size])
            whole.release()
            return body
        chunks, self.chunks = self.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Exchange:
    """One request on its way: the connection it has, the reader of its answer, and the
    Deferred its caller waits on (cancelling it drops the connection)."""

    def __init__(self, pool: ConnectionPool, method: bytes, request: bytes, limit: int):
        self.pool = pool
        self.method = method
        self.request = request
        self.limit = limit
        self.connection: UpstreamConnection | None = None
        self.reader = ResponseReader(method, limit)
        self.result: Deferred[ResponseReader] = Deferred(self.cancel)
        self.retried = False
        self.connecting: Deferred[Any] | None = None

    def start(self, fresh: bool = False) -> None:
        """Send the request on an idle connection, or on a new one (always, when ``fresh``)."""
        connection = None if fresh else self.pool.take_idle()
        if connection is not None:
            self.send_on(connection, reused=True)
            return
        self.connecting = self.pool.connect()
        self.connecting.addCallbacks(self.connected, self.could_not_connect)

    def connected(self, connection: UpstreamConnection) -> None:
        self.connecting = None
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
    """One connection to the upstream: idle in the pool, or carrying one exchange."""

    def __init__(self, pool: ConnectionPool):
        self.pool = pool
        self.exchange: Exchange | None = None
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
    """Connections to one upstream endpoint, kept alive between requests: the last one
    idle is the first one used (the warmest, and the least likely to have timed out)."""

    def __init__(self, endpoint: IStreamClientEndpoint, clock: IReactorTime, kept_alive: int = KEPT_ALIVE,
                 idle_lifetime: float = IDLE_LIFETIME):
        self.endpoint = endpoint
        self.clock = clock
        self.kept_alive = kept_alive
        self.idle_lifetime = idle_lifetime
        self.idle: list[UpstreamConnection] = []  # the longest idle first
        self.factory = Factory.forProtocol(lambda: UpstreamConnection(self))
        self.factory.noisy = False  # no "Starting factory" line per connection

    def connect(self) -> Deferred[UpstreamConnection]:
        return self.endpoint.connect(self.factory)  # type: ignore[no-any-return]

    def take_idle(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if self.clock.seconds() - connection.idle_since > self.idle_lifetime:
                # This one idled too long, and every one left idled longer: all closed.
                for stale in (connection, *idle):
                    stale.transport.loseConnection()
                idle.clear()
                return None
            return connection
        return None

    def put_idle(self, connection: UpstreamConnection) -> None:
        if connection.closed:
            return
        if len(self.idle) >= self.kept_alive:
            connection.transport.loseConnection()
        else:
            connection.idle_since = self.clock.seconds()
            self.idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)

    def close(self) -> Deferred[None]:
        """Close the idle connections; fires once each has closed."""
        closing, self.idle = self.idle, []
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
