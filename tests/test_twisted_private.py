"""Each of Twisted's private names orgproxy uses (``orgproxy._twisted_private``), checked
where it is used: a Twisted upgrade that renames, moves or stops calling one fails here,
loudly, rather than quietly changing what the daemon answers."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web import http
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from orgproxy._twisted_private import (
    ACCEPT_ERROR_FORMATS,
    ACCEPT_REFUSED_FORMATS,
    BadRequestHook,
    accept_one_per_wakeup,
    header_bytes_received,
    headers_received,
    is_reading_request_line,
    leave_shared_socket_open,
    log_accept_errors_to,
    quiet_pool,
)


def connected(channel: http.HTTPChannel) -> http.HTTPChannel:
    channel.makeConnection(StringTransport())
    return channel


# --- _HTTPChannel__first_line: a line too long is a 414 on the request line, 431 after ----

class RecordsLongLines(http.HTTPChannel):
    MAX_LENGTH = 64

    def __init__(self) -> None:
        super().__init__()
        self.long_line_on_request_line: list[bool] = []

    def lineLengthExceeded(self, line: bytes) -> None:
        self.long_line_on_request_line.append(is_reading_request_line(self))
        self.loseConnection()


def test_the_channel_keeps_its_first_line_state_where_it_is_read() -> None:
    channel = connected(http.HTTPChannel())
    # Read with getattr's default in production: check that the name really exists.
    assert channel._HTTPChannel__first_line  # type: ignore[attr-defined]
    assert is_reading_request_line(channel) is True
    channel.dataReceived(b"GET /v1/organization/costs HTTP/1.1\r\n")
    assert channel._HTTPChannel__first_line == 0  # type: ignore[attr-defined]
    assert is_reading_request_line(channel) is False


def test_a_long_request_line_and_a_long_header_line_are_told_apart() -> None:
    on_request_line = connected(RecordsLongLines())
    on_request_line.dataReceived(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n")
    assert on_request_line.long_line_on_request_line == [True]

    in_headers = connected(RecordsLongLines())
    in_headers.dataReceived(b"GET / HTTP/1.1\r\nX-Long: " + b"b" * 100 + b"\r\n")
    assert in_headers.long_line_on_request_line == [False]


# --- _receivedHeaderSize and _respondToBadRequestAndDisconnect ------------------------------

class RecordsRefusals(BadRequestHook):
    totalHeadersSize = 200

    def __init__(self) -> None:
        super().__init__()
        self.refused_with_header_bytes: list[int] = []

    def refuse_malformed(self) -> None:
        self.refused_with_header_bytes.append(header_bytes_received(self))
        self.loseConnection()


def test_the_channel_counts_header_bytes_where_they_are_read() -> None:
    channel = connected(http.HTTPChannel())
    assert channel._receivedHeaderSize == 0  # type: ignore[attr-defined]
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert header_bytes_received(channel) == len(b"GET / HTTP/1.1") + len(b"Host: x")
    assert channel._receivedHeaderSize == header_bytes_received(channel)  # type: ignore[attr-defined]


def test_the_channel_counts_headers_where_they_are_read() -> None:
    channel = connected(http.HTTPChannel())
    assert channel._receivedHeaderCount == 0  # type: ignore[attr-defined]
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n")
    # A header is counted once the next line shows it is not folded on.
    assert headers_received(channel) == 2 == channel._receivedHeaderCount  # type: ignore[attr-defined]


def test_too_many_headers_reach_the_hook_with_their_count() -> None:
    class CountsRefusals(http.HTTPChannel):
        maxHeaders = 5
        refused_with: list[int] = []

        def _respondToBadRequestAndDisconnect(self) -> None:
            self.refused_with.append(headers_received(self))
            self.loseConnection()
    channel = connected(CountsRefusals())
    channel.dataReceived(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10)))
    assert channel.refused_with == [6]


def test_a_malformed_request_reaches_the_hook_not_twisteds_bare_400() -> None:
    channel = connected(RecordsRefusals())
    channel.dataReceived(b"NONSENSE\r\n\r\n")
    assert channel.refused_with_header_bytes == [len(b"NONSENSE")]
    assert b"400 Bad Request" not in channel.transport.value()


def test_headers_over_the_limit_reach_the_hook_with_their_size() -> None:
    channel = connected(RecordsRefusals())
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"z" * 40) for i in range(6))
    channel.dataReceived(head)
    (received,) = channel.refused_with_header_bytes
    assert received > RecordsRefusals.totalHeadersSize


def test_the_hook_must_be_given_an_answer() -> None:
    # A subclass that forgets refuse_malformed fails loudly, not with Twisted's 400.
    channel = connected(BadRequestHook())
    with pytest.raises(NotImplementedError):
        channel.dataReceived(b"NONSENSE\r\n\r\n")


# --- HTTPConnectionPool._factory ------------------------------------------------------------

class RecordsConnects:
    def __init__(self) -> None:
        self.factories: list[Any] = []
        self.pending: list[Deferred[Any]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        self.factories.append(factory)
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d


def test_the_pool_makes_connections_with_its_factory_class() -> None:
    pool = HTTPConnectionPool(MemoryReactorClock())
    assert pool._factory is _HTTP11ClientFactory  # the name quiet_pool replaces
    assert quiet_pool(pool) is pool
    endpoint = RecordsConnects()
    attempt = pool.getConnection(("http", b"openai.test", 80), endpoint)
    (factory,) = endpoint.factories
    assert isinstance(factory, _HTTP11ClientFactory) and factory.noisy is False
    assert _HTTP11ClientFactory.noisy is True  # quiet by our class, not by Twisted's default
    attempt.addErrback(lambda failure: None)
    attempt.cancel()


# --- a listening port's numberAccepts, set before each doRead --------------------------------

class _QuietReactor:
    """Just enough reactor for a real listening port whose reads the test drives itself."""

    def addReader(self, _: object) -> None: ...
    def removeReader(self, _: object) -> None: ...
    def addWriter(self, _: object) -> None: ...
    def removeWriter(self, _: object) -> None: ...


class Counting(Factory):
    def __init__(self) -> None:
        self.built: list[Protocol] = []

    def buildProtocol(self, addr: object) -> Protocol:
        protocol = Protocol()
        self.built.append(protocol)
        return protocol


def accepted_per_wakeup(share: bool, waiting: int = 5, wakeups: int = 3) -> list[int]:
    """Connections accepted after each of ``wakeups`` reads of a real listening port with
    ``waiting`` connections queued."""
    factory = Counting()
    port = tcp.Port(0, factory, interface="127.0.0.1", reactor=_QuietReactor())
    port.startListening()
    clients: list[socket.socket] = []
    try:
        if share:
            accept_one_per_wakeup(port)
        address = port.getHost()
        clients = [socket.create_connection((address.host, address.port)) for _ in range(waiting)]
        counts = []
        for _ in range(wakeups):
            port.doRead()
            counts.append(len(factory.built))
        return counts
    finally:
        for client in clients:
            client.close()
        for accepted in factory.built:
            accepted.transport.socket.close()
        port.connectionLost(None)


def test_each_wake_up_accepts_one_connection_however_many_wait() -> None:
    # Twisted raises a port's accepts per wake-up by 20 after each full one: set once,
    # the limit would be gone after the first connection, and with it the sharing.
    assert accepted_per_wakeup(share=True) == [1, 2, 3]


def test_without_it_one_wake_up_takes_every_waiting_connection() -> None:
    # What the wrapper is for; if Twisted ever accepts one at a time itself, this says so.
    assert accepted_per_wakeup(share=False)[0] == 5


# --- Port._logger: where a listening port says it could not accept ---------------------------

class OutOfDescriptors:
    """A listening socket whose first accept fails with EMFILE, as at the open-files limit."""

    def __init__(self, real: socket.socket):
        self.real = real
        self.failed = False

    def accept(self) -> tuple[socket.socket, Any]:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return self.real.accept()

    def fileno(self) -> int:
        return self.real.fileno()


def test_a_port_says_what_it_closed_for_want_of_descriptors_through_its_logger() -> None:
    factory = Counting()
    port = tcp.Port(0, factory, interface="127.0.0.1", reactor=_QuietReactor())
    port.startListening()
    real = port.socket
    said: list[dict[str, Any]] = []
    log_accept_errors_to(port, said.append)
    address = port.getHost()
    clients = [socket.create_connection((address.host, address.port)) for _ in range(4)]
    try:
        port.socket = OutOfDescriptors(real)
        port.doRead()
    finally:
        port.socket = real
        for client in clients:
            client.close()
        port.connectionLost(None)
    assert factory.built == []  # none was served: each was closed at once
    formats = [event["log_format"] for event in said]
    assert set(formats) <= ACCEPT_ERROR_FORMATS
    assert [f for f in formats if f in ACCEPT_REFUSED_FORMATS] == ["EMFILE recovery: Closed socket from {address}"] * 4


# --- _shouldShutdown: closing a port shared with other processes leaves theirs working ----

@pytest.mark.parametrize("shared", [True, False], ids=["left open", "Twisted's own close"])
def test_a_shared_socket_closed_here_still_accepts_in_the_other_processes(shared: bool) -> None:
    port = tcp.Port(0, Counting(), interface="127.0.0.1", reactor=_QuietReactor())
    port.startListening()
    # What another process holds: the same socket under a descriptor of its own.
    other = socket.socket(fileno=os.dup(port.fileno()))
    other.settimeout(5)
    address = port.getHost()
    if shared:
        leave_shared_socket_open(port)
    port.connectionLost(None)  # this process stops listening
    client = socket.create_connection((address.host, address.port), timeout=5) if shared else None
    try:
        if shared:
            accepted, _ = other.accept()
            accepted.close()
        else:
            # Twisted's shutdown() reached the other process's descriptor too.
            with pytest.raises(OSError):
                other.accept()
    finally:
        if client is not None:
            client.close()
        other.close()
