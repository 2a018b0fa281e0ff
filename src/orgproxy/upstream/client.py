"""Forwarding to the upstream: the caller's request byte for byte, the whole answer
back, bounded in time and size.

Twisted's ``Agent`` is used here directly rather than through treq's ``HTTPClient``:
treq re-encodes URLs (``group_by[]`` becomes ``group_by%5B%5D``), and the proxy promises
to forward the caller's path and query byte for byte. (Discovery, which builds its own
URLs, goes through treq: see ``admin.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.internet.interfaces import IConsumer
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from orgproxy.errors import ProxyError
from orgproxy.upstream.failures import ResponseTooLarge, describe_failure, upstream_address
from orgproxy.upstream.gunzip import GunzipAgent

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

HeaderList = list[tuple[bytes, list[bytes]]]


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    phrase: bytes
    headers: HeaderList
    body: bytes
    announced_length: bytes | None  # the upstream's Content-Length, which a HEAD answer keeps

    def header(self, name: bytes) -> bytes | None:
        """The last value of a header (``name`` in lower case), or None."""
        return next((values[-1] for key, values in self.headers if key.lower() == name), None)


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


class _CappedBody(Protocol):
    """Collects a response body, giving up once it passes ``limit`` bytes."""

    def __init__(self, finished: Deferred[bytes], limit: int, announced: int | None):
        self.finished = finished
        self.limit = limit
        self.announced = announced
        self.chunks: list[bytes] = []
        self.size = 0

    def connectionMade(self) -> None:
        if self.announced is not None and self.announced > self.limit:
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


async def read_response(response: IResponse, limit: int) -> UpstreamResponse:
    """The response with its whole body (at most ``limit`` bytes), and the headers that
    go back to a client."""
    content = await read_capped(response, limit)
    announced = response.headers.getRawHeaders(b"content-length")
    return UpstreamResponse(response.code, response.phrase,
                            end_to_end(response.headers, NOT_RETURNED_TO_CLIENT), content,
                            announced[-1] if announced else None)


@implementer(IBodyProducer)
class BytesProducer:
    """A request body already in memory, written in one go.

    Twisted's ``FileBodyProducer`` writes in slices from a cooperator on the global
    reactor; a request body here is at most 1 MiB and whole already.
    """

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


def with_deadline(exchange: Deferred[UpstreamResponse], timeout: float, reactor: IReactorTime
                  ) -> Deferred[UpstreamResponse]:
    """``exchange``, failed with TimeoutError (and cancelled) if it takes over ``timeout``.

    Cancelling an Agent request fails it with ResponseNeverReceived rather than
    CancelledError, so the timeout says itself that it was the cause.
    """
    return exchange.addTimeout(timeout, reactor,
                               onTimeoutCancel=lambda result, after: Failure(TimeoutError(after)))


class Upstream:
    """Sends requests to one upstream base URL and reads whole, capped responses."""

    def __init__(self, reactor: IReactorTime, base_url: str, agent: IAgent, timeout: float,
                 max_response_bytes: int, title: str = "OpenAI"):
        self.reactor = reactor
        self.title = title  # what errors call the upstream
        self.base_url = base_url.rstrip("/").encode("ascii")
        self.address = upstream_address(base_url)  # host:port, for the errors that name it
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        # gzip undone within the same cap: a small compressed body may hide a huge one.
        self.agent = GunzipAgent(agent, max_response_bytes)

    def forward(self, method: bytes, path_and_query: bytes, headers: HeaderList,
                body: bytes | None) -> Deferred[UpstreamResponse]:
        """The upstream's answer, or a ``ProxyError`` failure (502, 504) saying why not.

        The whole exchange, headers and body, is bounded by the timeout; cancelling the
        returned Deferred (the client went away) drops the upstream connection.
        """
        exchange = Deferred.fromCoroutine(self._exchange(method, path_and_query, headers, body))
        return with_deadline(exchange, self.timeout, self.reactor).addErrback(self._as_proxy_error)

    async def _exchange(self, method: bytes, path_and_query: bytes, headers: HeaderList,
                        body: bytes | None) -> UpstreamResponse:
        producer = BytesProducer(body) if body is not None else None
        response = await self.agent.request(method, self.base_url + path_and_query,
                                            Headers(dict(headers)), producer)
        return await read_response(response, self.max_response_bytes)

    def _as_proxy_error(self, failure: Failure) -> Failure:
        if was_cancelled(failure):
            return Failure(CancelledError())  # the client went away: nobody to answer
        if failure.check(ProxyError):
            return failure
        return Failure(describe_failure(failure, self.timeout, self.max_response_bytes, self.address, self.title))


def was_cancelled(failure: Failure) -> bool:
    """Whether the exchange failed because it was cancelled: an Agent request cancelled
    before its answer's headers fails with ResponseNeverReceived, not CancelledError (a
    timeout has already turned its own cancellation into a TimeoutError)."""
    if failure.check(CancelledError):
        return True
    return bool(failure.check(ResponseNeverReceived)) and any(
        isinstance(reason, Failure) and reason.check(CancelledError) for reason in failure.value.reasons)
