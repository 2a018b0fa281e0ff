"""orgproxy in memory: the site ``makeService`` builds, driven by treq's in-memory agent,
in front of in-memory fake upstreams (OpenAI's, and Anthropic's at another host), on a
clock the test moves by hand.

    proxy = InMemoryProxy(FakeOpenAI(), tmp_path, ["--aliases", str(aliases)])
    answer = proxy.get("/v1/organization/costs?start_time=1")
    proxy.clock.advance(60)  # timeouts, cache expiry, discovery schedules

No socket, no thread, no real reactor: every byte goes through the real site, channel,
resources and upstream client, and the fakes' own sites, pumped by ``twisted.test.iosim``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import treq
from treq.testing import RequestTraversalAgent
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IConsumer, IProtocolFactory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from twisted.web.resource import IResource
from twisted.web.server import Site
from zope.interface import implementer

from orgproxy.tap import Options, OrgproxyService, makeService
from tests.support.answers import AUTH, Answer
from tests.support.upstreams import MemoryUpstreams

PROXY_URL = b"http://orgproxy.test"
UPSTREAM_URL = "http://openai.test"
ANTHROPIC_URL = "http://anthropic.test"
# A request's headers: a mapping, or (name, value) pairs where a header is sent more than once.
SentHeaders = Mapping[str, str] | Sequence[tuple[str, str]]


@implementer(IBodyProducer)
class BytesProducer:
    """A request body already in memory, written in one go (Twisted's FileBodyProducer
    writes in slices from a cooperator on the global reactor)."""

    def __init__(self, body: bytes):
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class SiteAgent(RequestTraversalAgent):
    """treq's in-memory agent, serving through a given Site (orgproxy's own, with its
    request class, channel and limits) rather than a plain Site over the root resource."""

    def __init__(self, site: Site):
        super().__init__(site.resource)
        # treq keeps the Site it serves through here; a treq that stops doing so fails
        # this assertion rather than quietly testing a plain Site.
        assert isinstance(self._serverFactory, Site)
        self._serverFactory = site


class InMemoryProxy:
    """makeService's tree, in memory, in front of ``upstream`` (a fake as a resource, or
    an upstream that writes its own bytes as a protocol factory: raw_upstream.py)."""

    def __init__(self, upstream: IResource | IProtocolFactory, state_dir: Path, args: Sequence[str] = (),
                 environ: Mapping[str, str] | None = None, reactor: MemoryReactorClock | None = None,
                 anthropic: IResource | None = None):
        self.clock = MemoryReactorClock() if reactor is None else reactor
        hosts: dict[bytes, IResource | IProtocolFactory] = {b"openai.test": upstream}
        if anthropic is not None:
            hosts[b"anthropic.test"] = anthropic
        self.upstreams = MemoryUpstreams(hosts)
        self.options = Options(environ={} if environ is None else environ)
        self.options.parseOptions(["--upstream", UPSTREAM_URL, "--anthropic-upstream", ANTHROPIC_URL,
                                   "--state-dir", str(state_dir), "--watch", "off", *args])
        self.service: OrgproxyService = makeService(self.options, reactor=self.clock, endpoints=self.upstreams)
        self.client = SiteAgent(self.service.site)
        self.raw_connections: list[RawExchange] = []

    # --- driving ------------------------------------------------------------------------

    def flush(self, rounds: int = 30) -> None:
        """Move every byte both ways, and run what is due now, until all is quiet."""
        for _ in range(rounds):
            self.clock.advance(0)
            self.upstreams.flush()
            self.client.flush()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the daemon's clock, then move the bytes it caused."""
        self.clock.advance(seconds)
        self.flush()

    def resolve(self, d: Deferred[Any]) -> Any:
        """The result of ``d`` once the bytes are moved; fails if it is still waiting."""
        self.flush()
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "still waiting (did the upstream answer? does the clock need to move?)"
        result = results[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result

    # --- requests -----------------------------------------------------------------------

    def start(self, method: str, target: str | bytes, headers: SentHeaders | None = None,
              body: bytes | None = None) -> Deferred[IResponse]:
        """Send a request and return at once: the response Deferred (cancel it to leave).
        ``headers``: a mapping, or (name, value) pairs where a header is sent more than once."""
        raw = target if isinstance(target, bytes) else target.encode("latin-1")
        sent = Headers()
        given = AUTH if headers is None else headers
        for name, value in (given.items() if isinstance(given, Mapping) else given):
            sent.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        producer = BytesProducer(body) if body is not None else None
        return self.client.request(method.encode("ascii"), PROXY_URL + raw, sent, producer)

    def answer(self, response: Deferred[IResponse]) -> Answer:
        """The whole answer to a request made with ``start``."""
        got: IResponse = self.resolve(response)
        chunks: list[bytes] = []
        self.resolve(treq.collect(got, chunks.append))
        body = b"".join(chunks)
        headers = [(k.decode("latin-1"), v.decode("latin-1"))
                   for k, vs in got.headers.getAllRawHeaders() for v in vs]
        return Answer(got.code, headers, body)

    def call(self, method: str, target: str | bytes, headers: SentHeaders | None = None,
             body: bytes | None = None) -> Answer:
        return self.answer(self.start(method, target, headers, body))

    def get(self, target: str | bytes, headers: SentHeaders | None = None) -> Answer:
        return self.call("GET", target, headers)

    def raw(self, data: bytes, client: str = "127.0.0.1") -> RawExchange:
        """Feed bytes to a new connection of the site as a client would, exactly as given
        (none, if the site closes the connection as it is accepted: ``refused_at_accept``)."""
        address = IPv4Address("TCP", client, 40000)
        channel = self.service.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        exchange = RawExchange(channel, transport)
        if channel is None:  # what a listening port does: close the socket, read nothing
            transport.loseConnection()
            return exchange
        channel.makeConnection(transport)
        channel.dataReceived(data)
        self.flush()
        self.raw_connections.append(exchange)
        return exchange

    # --- the service --------------------------------------------------------------------

    def start_service(self) -> None:
        """Start what makeService built (listening on the memory reactor, discovery, ...)."""
        self.service.privilegedStartService()
        self.service.startService()

    def close(self) -> None:
        """Stop the service, close the connections left open, and check that nothing is
        left behind on the clock (a timer would mean a leak)."""
        for exchange in self.raw_connections:
            exchange.close()
        if self.service.running:
            self.resolve(self.service.stopService())
        elif self.service.history is not None:
            self.service.history.close()
        self.flush()
        left = self.clock.getDelayedCalls()
        assert not left, f"timers left behind: {left}"


class RawExchange:
    """One raw connection: what the proxy wrote to it, and whether it closed it."""

    def __init__(self, channel: Any, transport: StringTransport):
        self.channel = channel
        self.transport = transport

    @property
    def written(self) -> bytes:
        return self.transport.value()

    @property
    def closed_by_proxy(self) -> bool:
        return bool(self.transport.disconnecting)

    @property
    def refused_at_accept(self) -> bool:
        return self.channel is None

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def close(self) -> None:
        if self.channel is not None and not self.transport.disconnected:
            self.transport.loseConnection()
            self.channel.connectionLost(Failure(ConnectionDone()))
