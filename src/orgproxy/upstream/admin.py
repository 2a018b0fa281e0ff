"""The Admin API calls of discovery: GETs with parameters, through treq.

treq's ``HTTPClient`` runs over the same pooled, TLS-verified agent as forwarding.
Discovery's URLs are its own (no caller's bytes to keep), so treq may encode them as it
likes; its redirects are off (an admin key must not follow one), and the body is read
with the same size cap and the whole exchange bounded by the same deadline as forwarding.
"""

from __future__ import annotations

from collections.abc import Sequence

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent

from orgproxy.errors import ProxyError
from orgproxy.upstream.client import UpstreamResponse, read_response, was_cancelled, with_deadline
from orgproxy.upstream.failures import describe_failure, upstream_address
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
        # treq would undo gzip itself, unbounded; GunzipAgent does it first, within the cap.
        self.http = HTTPClient(GunzipAgent(agent, max_response_bytes))
        self.headers = {name: [value] for name, value in credential}
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def get(self, path: str, params: Sequence[tuple[str, str]]) -> Deferred[UpstreamResponse]:
        """The answer to ``GET base_url + path ? params``, or a ProxyError failure."""
        exchange = Deferred.fromCoroutine(self._get(path, params))
        return with_deadline(exchange, self.timeout, self.reactor).addErrback(self._as_proxy_error)

    async def _get(self, path: str, params: Sequence[tuple[str, str]]) -> UpstreamResponse:
        response = await self.http.get(self.base_url + path, params=list(params), headers=self.headers,
                                       allow_redirects=False, reactor=self.reactor)
        return await read_response(response, self.max_response_bytes)

    def _as_proxy_error(self, failure: Failure) -> Failure:
        if was_cancelled(failure):
            # Discovery stopping: a cancellation, not an upstream failure to report and retry.
            return Failure(CancelledError())
        if failure.check(ProxyError):
            return failure
        return Failure(describe_failure(failure, self.timeout, self.max_response_bytes, self.address, self.title))
