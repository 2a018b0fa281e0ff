"""The call to OpenAI: pooled, TLS-verified, bounded in time and size.

Twisted's ``Agent`` is used directly rather than through treq's ``HTTPClient``: treq
re-encodes URLs (``group_by[]`` becomes ``group_by%5B%5D``), and the proxy promises to
forward the caller's path and query byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    ContentDecoderAgent,
    FileBodyProducer,
    GzipDecoder,
    HTTPConnectionPool,
    ResponseDone,
    _HTTP11ClientFactory,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory, IResponse
from zope.interface import implementer

from orgproxy.errors import ProxyError

# Connection-level headers, never forwarded in either direction (RFC 9110, 7.6.1), with
# those the proxy sets itself: Host is the upstream's, lengths are recomputed, and the
# upstream's gzip is undone by the proxy (it has to read the JSON to amend it).
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
# X-Orgproxy-Token is the proxy's own credential: it never leaves for OpenAI.
NOT_FORWARDED_TO_UPSTREAM = HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"expect",
                                          b"x-orgproxy-token"}
NOT_RETURNED_TO_CLIENT = HOP_BY_HOP | {b"content-length", b"content-encoding"}


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    phrase: bytes
    headers: list[tuple[bytes, list[bytes]]]
    body: bytes
    announced_length: bytes | None  # the upstream's Content-Length, which a HEAD answer keeps


class ResponseTooLarge(Exception):
    """The upstream's body passed the size cap."""


def end_to_end(headers: Headers, dropped: frozenset[bytes]) -> list[tuple[bytes, list[bytes]]]:
    """The headers minus the dropped ones and those the Connection header names."""
    connection_named = {
        token.strip().lower()
        for value in headers.getRawHeaders(b"connection", [])
        for token in value.split(b",")
    }
    return [
        (name, values)
        for name, values in headers.getAllRawHeaders()
        if (lowered := name.lower()) not in dropped and lowered not in connection_named
    ]


class _CappedBody(Protocol):
    """Collects a response body, giving up once it passes ``limit`` bytes."""

    def __init__(self, finished: Deferred[bytes], limit: int, announced: int | object):
        self.finished = finished
        self.limit = limit
        self.announced = announced
        self.chunks: list[bytes] = []
        self.size = 0

    def connectionMade(self) -> None:
        if isinstance(self.announced, int) and self.announced > self.limit:
            self._give_up()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self._give_up()
            return
        self.chunks.append(data)

    def _give_up(self) -> None:
        self.chunks.clear()
        self.abort()
        if not self.finished.called:
            self.finished.errback(ResponseTooLarge())

    def abort(self) -> None:
        # Stopping the producer closes the connection: the rest is never read.
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


def read_capped(response: IResponse, limit: int) -> Deferred[bytes]:
    """The whole body, or a ``ResponseTooLarge`` failure; cancelling drops the connection."""
    announced = response.length if response.length is not UNKNOWN_LENGTH else None
    collector: _CappedBody

    def cancel(_: Deferred[bytes]) -> None:
        collector.abort()

    finished: Deferred[bytes] = Deferred(cancel)
    collector = _CappedBody(finished, limit, announced)
    response.deliverBody(collector)
    return finished


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
            endpoint = HostnameEndpoint(self.reactor, uri.host.decode("ascii"), uri.port,
                                        timeout=self.connect_timeout)
            if uri.scheme == b"https":
                endpoint = wrapClientTLS(self.policy.creatorForNetloc(uri.host, uri.port), endpoint)
            elif uri.scheme != b"http":
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            self.made[key] = endpoint
        return endpoint


class _QuietClientFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory" for every new upstream connection; the pool's
    # factory class is the one place to say no (treq's documented workaround).
    noisy = False


class Upstream:
    """Sends requests to one upstream base URL and reads whole, capped responses."""

    def __init__(self, reactor: IReactorTime, base_url: str, timeout: float,
                 max_response_bytes: int, ca_file: str | None = None):
        self.reactor = reactor
        self.base_url = base_url.rstrip("/").encode("ascii")
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        # Enough idle connections kept for a dashboard's burst of parallel calls.
        self.pool.maxPersistentPerHost = 32
        self.pool._factory = _QuietClientFactory
        # TLS is verified against the system's CAs (or --upstream-ca's, for an internal
        # gateway), host name included, by service-identity: a wrong certificate is an
        # error, never a silent downgrade.
        trust = upstream_trust(ca_file) if ca_file else None
        endpoints = _OneUpstreamEndpoints(reactor, BrowserLikePolicyForHTTPS(trust), timeout)
        agent = Agent.usingEndpointFactory(reactor, endpoints, pool=self.pool)
        self.agent = ContentDecoderAgent(agent, [(b"gzip", GzipDecoder)])

    def forward(self, method: bytes, path_and_query: bytes,
                headers: list[tuple[bytes, list[bytes]]], body: bytes | None) -> Deferred[UpstreamResponse]:
        """The upstream's answer, or a ``ProxyError`` failure (502, 504) saying why not.

        The whole exchange, headers and body, is bounded by the timeout; cancelling the
        returned Deferred (the client went away) drops the upstream connection.
        """
        exchange = Deferred.fromCoroutine(self._exchange(method, path_and_query, headers, body))
        # Cancelling an Agent request fails it with ResponseNeverReceived rather than
        # CancelledError, so the timeout says itself that it was the cause.
        exchange.addTimeout(self.timeout, self.reactor,
                            onTimeoutCancel=lambda result, timeout: Failure(TimeoutError(timeout)))
        return exchange.addErrback(self._as_proxy_error)

    async def _exchange(self, method: bytes, path_and_query: bytes,
                        headers: list[tuple[bytes, list[bytes]]], body: bytes | None) -> UpstreamResponse:
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        response = await self.agent.request(method, self.base_url + path_and_query,
                                            Headers(dict(headers)), producer)
        content = await read_capped(response, self.max_response_bytes)
        announced = response.headers.getRawHeaders(b"content-length")
        return UpstreamResponse(response.code, response.phrase,
                                end_to_end(response.headers, NOT_RETURNED_TO_CLIENT), content,
                                announced[-1] if announced else None)

    def _as_proxy_error(self, failure: Failure) -> Failure:
        if failure.check(CancelledError, ProxyError):
            return failure  # the client went away: nobody to answer
        return Failure(describe_failure(failure, self.timeout, self.max_response_bytes))

    def close(self) -> Deferred[None]:
        """Close idle pooled connections (at shutdown)."""
        return self.pool.closeCachedConnections()


def describe_failure(failure: Failure, timeout: float, max_response_bytes: int) -> ProxyError:
    """The OpenAI-shaped error for a failed upstream exchange; never the exception's text
    when it might carry request details."""
    if failure.check(TimeoutError):
        return ProxyError(504, "upstream_timeout",
                          f"OpenAI did not answer within {timeout:g} seconds.")
    if failure.check(ResponseTooLarge):
        return ProxyError(502, "upstream_response_too_large",
                          f"OpenAI's response is larger than the proxy's limit of "
                          f"{max_response_bytes} bytes (--max-response-bytes).", retry=False)
    if failure.check(DNSLookupError):
        return ProxyError(502, "upstream_unreachable", "The upstream's host name does not resolve.")
    if failure.check(ConnectError):
        return ProxyError(502, "upstream_unreachable", "The proxy could not connect to OpenAI.")
    tls = _tls_error(failure)
    if tls is not None:
        return ProxyError(502, "upstream_tls_error",
                          f"TLS with the upstream failed: {tls}", retry=False)
    return ProxyError(502, "upstream_connection_lost",
                      "The connection to OpenAI was lost before its answer was complete.")


def _tls_error(failure: Failure) -> str | None:
    """A short reason when the failure is a TLS handshake or verification error."""
    reasons = getattr(failure.value, "reasons", None) or [failure]
    for reason in reasons:
        if not isinstance(reason, Failure):
            continue
        if reason.check(VerificationError, CertificateError):
            return "the upstream's certificate is not valid for its host name"
        if reason.check(SSL.Error):
            if "certificate" in str(reason.value):
                return "the upstream's certificate could not be verified (see --upstream-ca)"
            return "the TLS handshake with the upstream failed"
    return None


def upstream_trust(path: str) -> object:
    """The CAs of a PEM file (one or several certificates) as the upstream's trust root;
    ValueError/OSError when there is none to read."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{path}: no PEM certificate in it") from None
    return trustRootFromCertificates([
        Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM)) for c in certificates])


