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
    leave_shared_socket_open,
    log_accept_errors_to,
    quiet_pool,
    send_in_pieces_of,
)


def connected(channel: http.HTTPChannel) -> http.HTTPChannel:
    channel.makeConnection(StringTransport())
    return channel


# --- _respondToBadRequestAndDisconnect: where Twisted refuses a request ----------------------

class RecordsRefusals(BadRequestHook):
    totalHeadersSize = 200
    maxHeaders = 5

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def refuse_malformed(self) -> None:
        self.refused += 1
        self.loseConnection()


@pytest.mark.parametrize("head", [
    b"NONSENSE\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"z" * 40) for i in range(6)),
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10)),
], ids=["request line", "header", "headers too large", "too many headers"])
def test_every_refusal_reaches_the_hook_not_twisteds_bare_400(head: bytes) -> None:
    channel = connected(RecordsRefusals())
    channel.dataReceived(head)
    assert channel.refused == 1
    assert b"400 Bad Request" not in channel.transport.value()


def test_the_hook_must_be_given_an_answer() -> None:
    # A subclass that forgets refuse_malformed fails loudly, not with Twisted's 400.
    channel = connected(BadRequestHook())
    with pytest.raises(NotImplementedError):
        channel.dataReceived(b"NONSENSE\r\n\r\n")


# --- SEND_LIMIT: the most a socket transport hands to one send() ----------------------------------

class RecordsSends:
    """Just enough socket for a TCP transport: records what each send() is given."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def setblocking(self, _: bool) -> None: ...

    def fileno(self) -> int:
        return -1

    def send(self, data: memoryview) -> int:
        self.sent.append(len(data))
        return len(data)


@pytest.mark.parametrize("limit", [None, 1024 * 1024], ids=["Twisted's own", "raised"])
def test_a_tcp_transport_hands_each_send_at_most_its_send_limit(limit: int | None) -> None:
    sock = RecordsSends()
    transport = tcp.Connection(sock, Protocol())  # type: ignore[arg-type]
    assert transport.SEND_LIMIT == 128 * 1024  # the name send_in_pieces_of sets, and its default
    if limit is not None:
        send_in_pieces_of(transport, limit)
    transport.writeSomeData(b"x" * (3 * 1024 * 1024))
    assert sock.sent == [limit or 128 * 1024]


def test_transports_without_a_send_limit_are_left_as_they_are() -> None:
    transport = StringTransport()
    send_in_pieces_of(transport, 1024 * 1024)
    assert not hasattr(transport, "SEND_LIMIT")


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
