"""Forwarding to the upstream: the caller's request byte for byte, the whole answer
back, bounded in time and size.

Sent by the lean HTTP/1.1 client of ``pool.py`` (connections kept per credential, answers
read by ``parse.py``) over the upstream's endpoint (TCP, or verified TLS: ``agent.py``),
not through treq, which re-encodes URLs (``group_by[]`` becomes ``group_by%5B%5D``)
where the proxy promises to forward the caller's path and query byte for byte.
(Discovery, which builds its own URLs, goes through treq: see ``admin.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory

from orgproxy.errors import ProxyError
from orgproxy.providers import PROVIDERS
from orgproxy.upstream.failures import describe_failure, upstream_address
from orgproxy.upstream.parse import Head, HeaderList, ResponseReader
from orgproxy.upstream.pool import ConnectionPool, PooledExchange, credential_key, request_bytes

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
# ... and when the proxy did not undo the body's encoding (one it never asked for), the
# client needs to know it.
NOT_RETURNED_UNDECODED = HOP_BY_HOP | {b"content-length"}
# The proxy's own response headers (X-Orgproxy-Cache): never the upstream's.
PROXYS_OWN = b"x-orgproxy-"
_X = PROXYS_OWN[0]
# The request headers a pooled connection is kept for: every provider's credential and
# the headers that choose its answer (see pool.py).
POOLED_BY = frozenset(name for provider in PROVIDERS for name in provider.credential_headers + provider.scope_headers)


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    phrase: bytes
    headers: HeaderList
    body: bytes
    announced_length: bytes | None  # a HEAD answer's Content-Length, when it is one number

    def header(self, name: bytes) -> bytes | None:
        """The last value of a header (``name`` in lower case), or None."""
        for key, values in self.headers:
            if key == name or key.lower() == name:
                return values[-1]
        return None


def end_to_end(headers: Headers, dropped: frozenset[bytes]) -> HeaderList:
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


def with_deadline(exchange: Deferred[UpstreamResponse], timeout: float, reactor: IReactorTime
                  ) -> Deferred[UpstreamResponse]:
    """``exchange``, failed with TimeoutError (and cancelled) if it takes over ``timeout``.

    Cancelling an exchange fails it with CancelledError (or, through an Agent, with
    ResponseNeverReceived), so the timeout says itself that it was the cause.
    """
    return exchange.addTimeout(timeout, reactor,
                               onTimeoutCancel=lambda result, after: Failure(TimeoutError(after)))


def as_proxy_error(failure: Failure, timeout: float, max_response_bytes: int, address: str, title: str
                   ) -> Failure:
    """A failed exchange as the ProxyError to answer with; a cancelled one (the client
    went away, discovery stopped) as a CancelledError: nobody to answer."""
    if was_cancelled(failure):
        return Failure(CancelledError())
    if failure.check(ProxyError):
        return failure
    return Failure(describe_failure(failure, timeout, max_response_bytes, address, title))


def was_cancelled(failure: Failure) -> bool:
    """Whether the exchange failed because it was cancelled: an Agent request cancelled
    before its answer's headers fails with ResponseNeverReceived, not CancelledError (a
    timeout has already turned its own cancellation into a TimeoutError)."""
    if failure.check(CancelledError):
        return True
    return bool(failure.check(ResponseNeverReceived)) and any(
        isinstance(reason, Failure) and reason.check(CancelledError) for reason in failure.value.reasons)


def announced_length(head: Head) -> bytes | None:
    """The Content-Length a HEAD answer passes on: one decimal number, or none (a list,
    a sign or anything else is dropped: the client would frame its next answer by it)."""
    lengths = head.values(b"content-length")
    if len(lengths) == 1 and lengths[0].isdigit():
        return lengths[0]
    return None


class Upstream:
    """Sends requests to one upstream base URL and reads whole, capped responses, over
    connections kept alive between requests."""

    def __init__(self, reactor: IReactorTime, base_url: str, endpoints: IAgentEndpointFactory, timeout: float,
                 max_response_bytes: int, title: str = "OpenAI"):
        self.reactor = reactor
        self.title = title  # what errors call the upstream
        uri = URI.fromBytes(base_url.encode("ascii"))
        self.base_path = uri.path.rstrip(b"/")  # a gateway's prefix, if any
        default_port = 443 if uri.scheme == b"https" else 80
        host = b"[" + uri.host + b"]" if b":" in uri.host else uri.host
        self.host = host if uri.port == default_port else b"%s:%d" % (host, uri.port)
        self.address = upstream_address(base_url)  # host:port, for the errors that name it
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.pool = ConnectionPool(endpoints.endpointForURI(uri), reactor)

    def forward(self, method: bytes, path_and_query: bytes, headers: HeaderList,
                body: bytes | None) -> Deferred[UpstreamResponse]:
        """The upstream's answer, or a ``ProxyError`` failure (502, 504) saying why not.

        The whole exchange, headers and body, is bounded by the timeout; cancelling the
        returned Deferred (the client went away) drops the upstream connection.
        """
        exchange = PooledExchange(self.pool, credential_key(headers, POOLED_BY), method,
                                  request_bytes(method, self.base_path + path_and_query, self.host, headers, body),
                                  self.max_response_bytes)
        exchange.start()
        answered = exchange.result.addCallback(self.response)
        return with_deadline(answered, self.timeout, self.reactor).addErrback(self._as_proxy_error)

    @staticmethod
    def response(reader: ResponseReader) -> UpstreamResponse:
        """What goes back: the status, the end-to-end headers (Content-Encoding too when
        the client gets the body as it came; never one named as the proxy's own), the
        body, and a HEAD's announced length."""
        head = reader.head
        assert head is not None
        dropped = NOT_RETURNED_TO_CLIENT if reader.inflater is not None else NOT_RETURNED_UNDECODED
        named = head.tokens(b"connection")
        if named:
            dropped = dropped.union(named)
        # (A name's first byte first: most are not an "x", and startswith is a call.)
        return UpstreamResponse(head.status, head.phrase,
                                [(name, values) for name, values in head.headers if name not in dropped and
                                 (name[0] != _X or not name.startswith(PROXYS_OWN))],
                                reader.body(), announced_length(head) if reader.method == b"HEAD" else None)

    def _as_proxy_error(self, failure: Failure) -> Failure:
        return as_proxy_error(failure, self.timeout, self.max_response_bytes, self.address, self.title)

    def close(self) -> Deferred[None]:
        """Close the connections kept alive (at shutdown)."""
        return self.pool.close()
