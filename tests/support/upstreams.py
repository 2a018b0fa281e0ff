"""Upstreams in memory: the endpoints the daemon connects through, each connection paired
by ``twisted.test.iosim`` with a connection to a real ``Site`` over the fake resource for
the host it asked for (as treq's ``RequestTraversalAgent`` does for one agent).

Forwarding's own HTTP/1.1 client and discovery's treq Agent both connect through these,
so both are tested on real bytes: request lines, headers, chunked or sized bodies,
kept-alive connections reused and dropped.

    upstreams = MemoryUpstreams({b"openai.test": FakeOpenAI()})
    service = makeService(options, reactor=clock, endpoints=upstreams)
    ...
    upstreams.flush()  # move the bytes both ways
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.web.client import URI
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import IResource
from twisted.web.server import Site
from zope.interface import implementer


@implementer(IAgentEndpointFactory)
class MemoryUpstreams:
    """One in-memory server per upstream host name."""

    def __init__(self, by_host: Mapping[bytes, IResource | IProtocolFactory]):
        # The servers' own clock: their connection timeouts are theirs, not the daemon's.
        self.server_clock = MemoryReactorClock()
        # A resource is served by a Site; a protocol factory (tests/support/raw_upstream.py)
        # writes its own bytes.
        self.sites = {host: served if IProtocolFactory.providedBy(served) else Site(served, reactor=self.server_clock)
                      for host, served in by_host.items()}
        self.pumps: list[iosim.IOPump] = []
        self.refusal: Exception | None = None  # when set, every new connection fails with it
        self.connections_made = 0

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        return MemoryEndpoint(self, uri.host, uri.port)

    def connect(self, host: bytes, port: int, factory: IProtocolFactory) -> Deferred[Any]:
        if self.refusal is not None:
            return fail(self.refusal)
        self.connections_made += 1
        server_address = IPv4Address("TCP", "127.0.0.1", port)
        client_address = IPv4Address("TCP", "127.0.0.1", 40000 + self.connections_made)
        server = self.sites[host].buildProtocol(client_address)
        client = factory.buildProtocol(server_address)
        server_transport = iosim.FakeTransport(server, isServer=True, hostAddress=server_address,
                                               peerAddress=client_address)
        client_transport = iosim.FakeTransport(client, isServer=False, hostAddress=client_address,
                                               peerAddress=server_address)
        self.pumps.append(iosim.connect(server, server_transport, client, client_transport, greet=False))
        return succeed(client)

    def flush(self) -> None:
        """Move every byte both ways; forget the connections closed on both sides."""
        pumps, self.pumps = self.pumps, []
        for pump in pumps:
            pump.flush()
            if not (pump.clientIO.disconnected and pump.serverIO.disconnected):
                self.pumps.append(pump)

    @property
    def open_connections(self) -> int:
        """Connections that neither side has closed yet."""
        return sum(1 for pump in self.pumps if not (pump.clientIO.disconnected or pump.serverIO.disconnected))


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    def __init__(self, upstreams: MemoryUpstreams, host: bytes, port: int):
        self.upstreams = upstreams
        self.host = host
        self.port = port

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        return self.upstreams.connect(self.host, self.port, factory)
