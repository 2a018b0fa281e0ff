"""The Admin API calls of discovery: GETs with parameters, through treq.

treq's ``HTTPClient`` runs over the same pooled, TLS-verified agent as forwarding.
Discovery's URLs are its own (no caller's bytes to keep), so treq may encode them as it
likes; its redirects are off (an admin key must not follow one), and the body is read
with the same size cap and the whole exchange bounded by the same deadline as forwarding.
"""

from __future__ import annotations

from collections.abc import Sequence

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IResponse

from orgproxy.upstream.client import NOT_RETURNED_TO_CLIENT, UpstreamResponse, as_proxy_error, end_to_end, with_deadline
from orgproxy.upstream.failures import ResponseTooLarge, upstream_address
from orgproxy.upstream.gunzip import GunzipAgent


class AdminClient:
    """GETs of one Admin API with one credential (sent only to ``base_url``): OpenAI's
    bearer token, or Anthropic's ``x-api-key`` with its ``anthropic-version``."""

    def __init__(self, reactor: IReactorTime, base_url: str, agent: IAgent,
                 credential: Sequence[tuple[bytes, bytes]], timeout: float, max_response_bytes: int,
                 title: str = "OpenAI"):
        self.reactor = reactor
        self.title = title  # what errors call the upstream
        self.base_url = base_url.rstrip("/")
        self.address = upstream_address(base_url)
        self.agent = agent
        # treq would undo gzip itself, unbounded; GunzipAgent does it first, within the cap.
        self.http = HTTPClient(GunzipAgent(agent, max_response_bytes))
        self.credential = tuple(credential)
        self.headers = {name: [value] for name, value in credential}
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def with_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> AdminClient:
        """The same client (same credential, agent and bounds), sending ``headers`` too:
        Anthropic's analytics beta, for the cost refresh alone."""
        return AdminClient(self.reactor, self.base_url, self.agent, [*self.credential, *headers], self.timeout,
                           self.max_response_bytes, self.title)

    def get(self, path: str, params: Sequence[tuple[str, str]]) -> Deferred[UpstreamResponse]:
        """The answer to ``GET base_url + path ? params``, or a ProxyError failure."""
        exchange = Deferred.fromCoroutine(self._get(path, params))
        return with_deadline(exchange, self.timeout, self.reactor).addErrback(self._as_proxy_error)

    async def _get(self, path: str, params: Sequence[tuple[str, str]]) -> UpstreamResponse:
        response = await self.http.get(self.base_url + path, params=list(params), headers=self.headers,
                                       allow_redirects=False, reactor=self.reactor)
        return await read_response(response, self.max_response_bytes)

    def _as_proxy_error(self, failure: Failure) -> Failure:
        # Discovery stopping is a cancellation, not an upstream failure to report and retry.
        return as_proxy_error(failure, self.timeout, self.max_response_bytes, self.address, self.title)


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

