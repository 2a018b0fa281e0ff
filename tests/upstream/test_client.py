"""The upstream client (``orgproxy.upstream.client.Upstream``) in memory.

An ``Upstream`` sends through in-memory endpoints (``tests/support/upstreams.py``) to a
real Site over a small scripted resource, on a ``MemoryReactorClock`` that only the test
moves: the timeout fires when the test advances the clock, and every byte moves when the
test flushes. The resource notes
when the client drops a connection (its request's ``notifyFinish`` fails), which is how
each test sees that an abandoned exchange really let go of the upstream.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from orgproxy.errors import ProxyError
from orgproxy.upstream.client import HOP_BY_HOP, Upstream, UpstreamResponse, end_to_end
from tests.support.upstreams import MemoryUpstreams

# A guard against a test that waits forever, never a way to wait.
pytestmark = pytest.mark.timeout(10)

TIMEOUT = 5.0
CAP = 1000
PATH = b"/v1/organization/costs?start_time=1"

# What the resource does with a request: finish it, or leave it open (NOT_DONE_YET).
Script = Callable[[server.Request], "bytes | int"]


@dataclass
class Seen:
    """One request as the upstream got it, and how it ended for the upstream."""

    request: server.Request
    body: bytes
    ended: list[Failure | None] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        """Whether the client closed the connection before the answer was complete."""
        return len(self.ended) == 1 and isinstance(self.ended[0], Failure)

    @property
    def finished(self) -> bool:
        return self.ended == [None]


class ScriptedUpstream(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.script: Script = lambda request: b'{"ok": true}'
        self.seen: list[Seen] = []

    def render(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        seen = Seen(request, request.content.read())
        request.notifyFinish().addBoth(seen.ended.append)
        self.seen.append(seen)
        return self.script(request)


class Exchange:
    """One forward, and what it has come to so far."""

    def __init__(self, forwarded: Deferred[UpstreamResponse]):
        self.forwarded = forwarded
        self.results: list[UpstreamResponse | Failure] = []
        # Taken as it comes: a failure the test checks is not also logged as unhandled.
        forwarded.addBoth(self.results.append)

    @property
    def waiting(self) -> bool:
        return not self.results

    def answer(self) -> UpstreamResponse:
        assert len(self.results) == 1 and isinstance(self.results[0], UpstreamResponse), self.results
        return self.results[0]

    def failure(self) -> Failure:
        assert len(self.results) == 1 and isinstance(self.results[0], Failure), self.results
        return self.results[0]

    def refusal(self) -> ProxyError:
        error = self.failure().value
        assert isinstance(error, ProxyError), error
        return error


class Harness:
    """An Upstream in front of a ScriptedUpstream, on a clock the test moves."""

    def __init__(self, timeout: float = TIMEOUT, cap: int = CAP):
        self.clock = MemoryReactorClock()
        self.resource = ScriptedUpstream()
        self.upstreams = MemoryUpstreams({b"openai.test": self.resource})
        self.upstream = Upstream(self.clock, "http://openai.test/", self.upstreams, timeout, cap)

    def forward(self, method: bytes = b"GET", headers: list[tuple[bytes, list[bytes]]] | None = None,
                body: bytes | None = None) -> Exchange:
        exchange = Exchange(self.upstream.forward(method, PATH, headers or [], body))
        self.flush()
        return exchange

    def flush(self) -> None:
        self.upstreams.flush()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.flush()

    def last(self) -> Seen:
        return self.resource.seen[-1]

    def assert_nothing_left_behind(self) -> None:
        assert self.clock.getDelayedCalls() == [], "the deadline outlived the exchange"
        assert all(seen.ended for seen in self.resource.seen), "an upstream request is still open"


@pytest.fixture
def harness() -> Iterator[Harness]:
    made = Harness()
    yield made
    made.assert_nothing_left_behind()


def start_body(length: int | None, first: bytes) -> Script:
    """Headers (announcing ``length`` bytes, or chunked when None) and ``first``, then
    nothing more until the test writes."""
    def script(request: server.Request) -> int:
        request.setHeader(b"content-type", b"application/json")
        if length is not None:
            request.setHeader(b"content-length", b"%d" % length)
        request.write(first)
        return server.NOT_DONE_YET
    return script


def hold(request: server.Request) -> int:
    return server.NOT_DONE_YET


# --- whole bodies -----------------------------------------------------------------------

def test_the_whole_body_is_read_across_many_writes(harness: Harness) -> None:
    harness.resource.script = start_body(None, b'{"data": [')
    exchange = harness.forward()
    assert exchange.waiting  # the headers are in, the body is not
    upstream_request = harness.last().request
    for part in (b"1, ", b"2, ", b"3]}"):
        upstream_request.write(part)
        harness.flush()
    assert exchange.waiting
    upstream_request.finish()
    harness.flush()
    response = exchange.answer()
    assert (response.status, response.phrase, response.body) == (200, b"OK", b'{"data": [1, 2, 3]}')
    assert response.header(b"content-type") == b"application/json"
    assert harness.last().finished


def test_a_body_of_exactly_the_cap_is_accepted(harness: Harness) -> None:
    harness.resource.script = lambda request: b"y" * CAP
    assert harness.forward().answer().body == b"y" * CAP


# --- bodies over the cap ------------------------------------------------------------------

def test_a_content_length_over_the_cap_is_refused_before_any_body_arrives(harness: Harness) -> None:
    harness.resource.script = start_body(CAP + 1, b"")
    error = harness.forward().refusal()
    assert (error.status, error.code, error.retry) == (502, "upstream_response_too_large", False)
    assert harness.last().dropped  # the body is never read


def test_a_chunked_body_is_refused_once_it_passes_the_cap(harness: Harness) -> None:
    harness.resource.script = start_body(None, b"x" * 600)
    exchange = harness.forward()
    upstream_request = harness.last().request
    upstream_request.write(b"x" * (CAP - 600))  # exactly the cap so far: still reading
    harness.flush()
    assert exchange.waiting and not harness.last().ended
    upstream_request.write(b"x")  # one byte past it
    harness.flush()
    error = exchange.refusal()
    assert (error.status, error.code) == (502, "upstream_response_too_large")
    assert harness.last().dropped  # refused mid body, without waiting for the rest


def test_the_cap_counts_the_decoded_bytes_of_a_gzipped_body(harness: Harness) -> None:
    # A few dozen bytes on the wire, five times the cap once decompressed.
    def compressed(request: server.Request) -> bytes:
        request.setHeader(b"content-encoding", b"gzip")
        return gzip.compress(b"z" * (5 * CAP))
    harness.resource.script = compressed
    assert harness.forward().refusal().code == "upstream_response_too_large"


# --- time -----------------------------------------------------------------------------------

@pytest.mark.parametrize("script", [hold, start_body(100, b'{"data": [')], ids=["before headers", "during the body"])
def test_the_timeout_is_504_and_drops_the_connection(harness: Harness, script: Script) -> None:
    harness.resource.script = script
    exchange = harness.forward()
    harness.advance(TIMEOUT - 0.01)
    assert exchange.waiting and not harness.last().ended
    harness.advance(0.01)
    error = exchange.refusal()
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert harness.last().dropped


def test_an_answer_in_time_leaves_no_timer_behind(harness: Harness) -> None:
    harness.resource.script = start_body(4, b"[")
    exchange = harness.forward()
    harness.advance(TIMEOUT - 0.01)
    harness.last().request.write(b"1, ")
    harness.last().request.finish()
    harness.flush()
    assert exchange.answer().body == b"[1, "
    # The fixture checks that the deadline was cancelled with the exchange done.


@pytest.mark.parametrize("script", [hold, start_body(100, b'{"data": [')], ids=["before headers", "during the body"])
def test_cancelling_a_forward_drops_the_upstream_connection(harness: Harness, script: Script) -> None:
    harness.resource.script = script
    exchange = harness.forward()
    assert not harness.last().ended
    exchange.forwarded.cancel()
    harness.flush()
    assert exchange.failure().check(CancelledError)
    assert harness.last().dropped


def test_a_connection_closed_mid_body_is_502_connection_lost(harness: Harness) -> None:
    def close_mid_body(request: server.Request) -> int:
        start_body(100, b'{"data": [')(request)
        request.channel.transport.loseConnection()
        return server.NOT_DONE_YET
    harness.resource.script = close_mid_body
    error = harness.forward().refusal()
    assert (error.status, error.code) == (502, "upstream_connection_lost")


# --- what goes out and what comes back ---------------------------------------------------------

def test_a_gzipped_answer_is_asked_for_and_decoded(harness: Harness) -> None:
    body = b'{"data": [{"api_key_id": "key_1"}]}'

    def compressed(request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-encoding", b"gzip")
        return gzip.compress(body)
    harness.resource.script = compressed
    response = harness.forward().answer()
    assert harness.last().request.requestHeaders.getRawHeaders(b"accept-encoding") == [b"gzip"]
    assert response.body == body
    assert response.header(b"content-encoding") is None  # the client gets it decoded


def test_only_end_to_end_response_headers_come_back(harness: Harness) -> None:
    def with_headers(request: server.Request) -> bytes:
        for name, value in ((b"Keep-Alive", b"timeout=5"), (b"Proxy-Authenticate", b"Basic"),
                            (b"Trailer", b"X-Checksum"), (b"Upgrade", b"h2c"), (b"X-Kept", b"a"),
                            (b"X-Kept", b"b"), (b"Retry-After", b"7"), (b"Content-Type", b"application/json")):
            request.responseHeaders.addRawHeader(name, value)
        return b"{}"
    harness.resource.script = with_headers
    response = harness.forward().answer()
    names = {name.lower() for name, _ in response.headers}
    assert names.isdisjoint({b"keep-alive", b"proxy-authenticate", b"trailer", b"upgrade", b"connection",
                             b"transfer-encoding", b"content-length", b"content-encoding"}), names
    assert response.header(b"retry-after") == b"7"
    assert dict(response.headers)[b"x-kept"] == [b"a", b"b"]


def test_request_headers_are_sent_as_given(harness: Harness) -> None:
    harness.forward(headers=[(b"Authorization", [b"Bearer sk-test"]), (b"OpenAI-Organization", [b"org-1"])])
    received = harness.last().request.requestHeaders
    assert received.getRawHeaders(b"authorization") == [b"Bearer sk-test"]
    assert received.getRawHeaders(b"openai-organization") == [b"org-1"]
    assert received.getRawHeaders(b"host") == [b"openai.test"]
    assert harness.last().request.uri == PATH  # the base URL's trailing slash is not doubled


def test_end_to_end_drops_hop_by_hop_and_connection_named_headers() -> None:
    headers = Headers({b"Connection": [b"close, X-Private"], b"X-Private": [b"1"], b"Keep-Alive": [b"5"],
                       b"Authorization": [b"Bearer t"], b"X-Kept": [b"a", b"b"]})
    kept = dict(end_to_end(headers, HOP_BY_HOP))
    assert kept == {b"Authorization": [b"Bearer t"], b"X-Kept": [b"a", b"b"]}


def test_a_body_is_sent_whole_with_its_length(harness: Harness) -> None:
    body = b'{"name": "Project ABC", "pad": "' + b"p" * 5000 + b'"}'
    harness.forward(b"POST", [(b"Content-Type", [b"application/json"])], body)
    seen = harness.last()
    assert (seen.request.method, seen.body) == (b"POST", body)
    assert seen.request.requestHeaders.getRawHeaders(b"content-length") == [b"%d" % len(body)]
    assert not seen.request.requestHeaders.hasHeader(b"transfer-encoding")
