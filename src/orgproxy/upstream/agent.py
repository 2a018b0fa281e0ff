"""How the daemon reaches its upstreams: one endpoint per upstream host and port (TCP, or
TLS verified against the system's CAs), shared by forwarding's own client and by the
Agent discovery uses through treq.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from orgproxy._twisted_private import quiet_pool
from orgproxy.upstream.tls import upstream_trust

# Idle connections discovery keeps per upstream: it makes one call at a time per provider.
KEPT_ALIVE_PER_HOST = 2


@implementer(IAgentEndpointFactory)
class _OneUpstreamEndpoints:
    """Endpoints made once per host and port, not once per request as the Agent's own
    factory does: each new HostnameEndpoint runs IDNA over the host name, a measurable
    share of a small request's time. TCP for http, TCP and verified TLS for https."""

    def __init__(self, reactor: Any, policy: BrowserLikePolicyForHTTPS, connect_timeout: float):
        self.reactor = reactor
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.made: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self.made.get(key)
        if endpoint is None:
            if uri.scheme not in (b"http", b"https"):
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            endpoint = HostnameEndpoint(self.reactor, uri.host.decode("ascii"), uri.port,
                                        timeout=self.connect_timeout)
            if uri.scheme == b"https":
                endpoint = wrapClientTLS(self.policy.creatorForNetloc(uri.host, uri.port), endpoint)
            self.made[key] = endpoint
        return endpoint


def upstream_endpoints(reactor: Any, connect_timeout: float, ca_file: str | None = None) -> IAgentEndpointFactory:
    """The endpoints to the upstreams.

    TLS is verified against the system's CAs (or ``ca_file``'s, for an internal gateway),
    host name included, by service-identity: a wrong certificate is an error, never a
    silent downgrade. Raises OSError or ValueError for a CA file that cannot be used.
    """
    trust = upstream_trust(ca_file) if ca_file else None
    return _OneUpstreamEndpoints(reactor, BrowserLikePolicyForHTTPS(trust), connect_timeout)


def pooled_agent(reactor: Any, endpoints: IAgentEndpointFactory) -> tuple[Agent, HTTPConnectionPool]:
    """An Agent over ``endpoints`` with a persistent pool (discovery's), and the pool (to
    close at shutdown)."""
    pool = quiet_pool(HTTPConnectionPool(reactor, persistent=True))
    pool.maxPersistentPerHost = KEPT_ALIVE_PER_HOST
    return Agent.usingEndpointFactory(reactor, endpoints, pool=pool), pool
