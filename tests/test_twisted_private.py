"""Each of Twisted's private names orgproxy uses (``orgproxy._twisted_private``), checked
where it is used: a Twisted upgrade that renames, moves or stops calling one fails here,
loudly, rather than quietly changing what the daemon answers; and no other module of
orgproxy names one, nor overrides one in a subclass."""

from __future__ import annotations

import ast
import errno
import importlib
import os
import pkgutil
import socket
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web import http
from twisted.python.lockfile import FilesystemLock
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from orgproxy._twisted_private import (
    ACCEPT_ERROR_FORMATS,
    ACCEPT_REFUSED_FORMATS,
    BadRequestHook,
    accept_one_per_wakeup,
    log_accept_errors_to,
    quiet_pool,
    release_with_port,
    send_in_pieces_of,
)
from tests.conftest import ROOT


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



# --- a UNIX port's lockFile: the lock of a socket made elsewhere, released at its stop --------

def test_an_adopted_unix_port_releases_the_lock_it_is_handed_when_it_stops(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    made = socket.socket(socket.AF_UNIX)
    made.bind(str(path))
    made.listen()
    lock = FilesystemLock(f"{path}.lock")
    assert lock.lock()
    port = unix.Port._fromListeningDescriptor(_QuietReactor(), made.fileno(), Counting())
    assert port.lockFile is None  # the name release_with_port sets
    port.startListening()
    assert release_with_port(port, lock) is port
    try:
        assert os.path.islink(f"{path}.lock")
    finally:
        port.connectionLost(None)
        made.close()
    assert not os.path.lexists(f"{path}.lock") and not lock.locked


# --- nowhere else -------------------------------------------------------------------------------

def private_uses(source: str) -> list[str]:
    """Where ``source`` names something private of another object: ``x._name`` (not on
    self or cls), or ``from twisted... import _name``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("twisted"):
            found += [f"{node.lineno}: {alias.name}" for alias in node.names if alias.name.startswith("_")]
    return found


def test_no_module_but_this_one_names_a_private_of_twisteds() -> None:
    sources = {path: path.read_text() for path in (ROOT / "src" / "orgproxy").rglob("*.py")
               if path.name != "_twisted_private.py"}
    assert {str(path.relative_to(ROOT)): uses for path, text in sources.items() if (uses := private_uses(text))} == {}
    # The check sees what it forbids.
    assert sorted(private_uses("pool._factory = None\nfrom twisted.web.client import _HTTP11ClientFactory\n")) == [
        "1: pool._factory", "2: _HTTP11ClientFactory"]


def twisted_privates_overridden(cls: type) -> set[str]:
    """The private names of a Twisted base class that ``cls`` (orgproxy's) defines again."""
    own = {name for name in vars(cls) if name.startswith("_") and not name.startswith("__")}
    return {name for name in own for base in cls.__mro__[1:]
            if base.__module__.startswith("twisted.") and name in vars(base)}


def test_no_class_but_this_modules_overrides_a_private_of_twisteds() -> None:
    package = importlib.import_module("orgproxy")
    overriding = {}
    for module_info in pkgutil.walk_packages(package.__path__, "orgproxy."):
        if module_info.name == "orgproxy._twisted_private":
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__:
                if found := twisted_privates_overridden(value):
                    overriding[f"{module.__name__}.{name}"] = found
    assert overriding == {}
    assert twisted_privates_overridden(BadRequestHook) == {"_respondToBadRequestAndDisconnect"}  # it sees one
