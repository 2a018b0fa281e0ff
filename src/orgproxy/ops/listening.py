"""The listening socket ``--workers``' processes share, adopted by every one of them.

The first process makes the socket ``--port`` describes and adopts it
(``AdoptedStreamServerEndpoint``) exactly as the workers adopt it from their descriptor 3.
Twisted closes an adopted port's socket without ``shutdown()``, which on a socket shared
between processes would reach them all (a worker still serving its last wake-up would fail
its accept() with EINVAL): a closed descriptor reaches only its own process.

Each process's port accepts one connection per wake-up, so that a burst is shared out
between the processes rather than taken whole by the first to wake.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorTCP,
    IReactorUNIX,
    IStreamServerEndpoint,
)
from twisted.python.lockfile import FilesystemLock
from zope.interface import implementer

from orgproxy._twisted_private import accept_one_per_wakeup, release_with_port


@implementer(IStreamServerEndpoint)
class SharedAccepts:
    """An endpoint whose port accepts one connection per wake-up (so that the workers on
    one socket share a burst) and is kept, for the workers to inherit.

    ``socket_file``: a UNIX socket's path and the mode ``--port`` asks for, which every
    adoption would otherwise replace with Twisted's default, 0o666."""

    def __init__(self, endpoint: IStreamServerEndpoint, socket_file: tuple[str, int] | None = None):
        self.endpoint = endpoint
        self.socket_file = socket_file
        self.port: IListeningPort | None = None

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.endpoint.listen(factory).addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        accept_one_per_wakeup(port)
        if self.socket_file is not None:
            os.chmod(*self.socket_file)
        self.port = port
        return port


def adopted_port_service(reactor: Any, fd: int, factory: IProtocolFactory, description: str
                         ) -> StreamServerEndpointService:
    """What a worker serves on: the listening socket it was given as ``fd``, which the first
    process made as ``description`` (--port) says."""
    probe = socket.socket(fileno=os.dup(fd))
    family = probe.family
    probe.close()
    return StreamServerEndpointService(
        SharedAccepts(AdoptedStreamServerEndpoint(reactor, fd, family), unix_socket_file(description)), factory)


@dataclass(frozen=True)
class BoundSocket:
    """A socket bound and listening, not yet served; ``lock``: a UNIX socket's lock file,
    where the description asks for one (``lockfile=``, on by default)."""

    socket: socket.socket
    lock: FilesystemLock | None = None


@implementer(IReactorTCP, IReactorUNIX)
class _BindsOnly:
    """Stands for the reactor to the endpoint ``--port`` describes: where the endpoint would
    have the reactor listen, this makes the socket alone, bound and listening, as Twisted's
    own ports make theirs, so that every option of the description is Twisted's to parse.
    (Only the kinds --workers takes: tcp: and unix:.)"""

    def listenTCP(self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = "") -> BoundSocket:
        family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            # An IPv6 literal through getaddrinfo, for its scope id (fe80::1%eth0).
            address = (socket.getaddrinfo(interface, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0][4]
                       if family == socket.AF_INET6 else (interface, port))
            sock.bind(address)
        except OSError as e:
            sock.close()
            raise CannotListenError(interface, port, e) from None
        return _listening(BoundSocket(sock), backlog)

    def listenUNIX(self, address: str, factory: IProtocolFactory, backlog: int = 50, mode: int = 0o666,
                   wantPID: int = 0) -> BoundSocket:
        lock = None
        if wantPID:
            lock = FilesystemLock(address + ".lock")
            if not lock.lock():
                raise CannotListenError(None, address, "Cannot acquire lock")
            if not lock.clean:
                try:
                    if stat.S_ISSOCK(os.stat(address).st_mode):
                        os.remove(address)  # the socket file its last holder left behind
                except OSError:
                    pass  # then bind() says what is wrong
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(address)
        except OSError as e:
            sock.close()
            raise CannotListenError(None, address, e) from None
        if not address.startswith("\0"):  # not Linux's abstract namespace
            os.chmod(address, mode)
        return _listening(BoundSocket(sock, lock), backlog)


def _listening(bound: BoundSocket, backlog: int) -> BoundSocket:
    bound.socket.listen(backlog)
    bound.socket.setblocking(False)
    return bound


@implementer(IStreamServerEndpoint)
class FirstProcessSocket:
    """The first process's endpoint with --workers: the socket ``description`` says, made
    here and adopted like the workers' (see the module's docstring)."""

    def __init__(self, reactor: Any, description: str):
        self.reactor = reactor
        self.description = description

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        made: Deferred[BoundSocket] = serverFromString(_BindsOnly(), self.description).listen(factory)
        return made.addCallback(self._adopt, factory)

    def _adopt(self, bound: BoundSocket, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        family = bound.socket.family
        # The endpoint closes the descriptor once the reactor has adopted (duplicated) it.
        adopted = AdoptedStreamServerEndpoint(self.reactor, bound.socket.detach(), family).listen(factory)
        if bound.lock is not None:
            adopted.addCallback(release_with_port, bound.lock)
        return adopted


@implementer(IReactorTCP, IReactorUNIX)
class _Describes:
    """Stands for the reactor to the endpoint a description parses to, and answers what
    a UNIX port would be made with: its path and mode (None for any other port)."""

    def listenTCP(self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = "") -> None:
        return None

    def listenUNIX(self, address: str, factory: IProtocolFactory, backlog: int = 50, mode: int = 0o666,
                   wantPID: int = 0) -> tuple[str, int] | None:
        return None if address.startswith("\0") else (address, mode)


def unix_socket_file(description: str) -> tuple[str, int] | None:
    """The path and mode of the socket file a ``unix:`` --port makes; None for others."""
    found: list[tuple[str, int] | None] = []
    serverFromString(_Describes(), description).listen(cast(Any, None)).addCallback(found.append)
    return found[0] if found else None
