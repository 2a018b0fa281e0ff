"""The upstream client in-process, against a Twisted server on a real loopback socket.

These run in pytest-twisted's reactor; the ``clean_reactor`` fixture fails a test that
leaves timers or connections behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.web import server
from twisted.web.resource import Resource

from orgproxy.errors import ProxyError
from orgproxy.upstream.client import Upstream, end_to_end, HOP_BY_HOP
from twisted.web.http_headers import Headers

reactor: object = _reactor


@dataclass
class Behaviour:
    """What the in-process upstream does, and what it saw."""

    body: bytes = b'{"ok": true}'
    chunked: bool = False  # send without Content-Length
    stall_after_headers: bool = False
    hold: bool = False
    lost: list[Deferred[None]] = field(default_factory=list)  # fires when a client leaves


class Scripted(Resource):
    isLeaf = True

    def __init__(self, behaviour: Behaviour):
        super().__init__()
        self.behaviour = behaviour

    def render_GET(self, request: server.Request) -> int:
        b = self.behaviour
        gone = request.notifyFinish()
        b.lost.append(gone)
        gone.addErrback(lambda _: None)
        if b.hold:
            return server.NOT_DONE_YET
        request.setHeader(b"content-type", b"application/json")
        if not b.chunked:
            request.setHeader(b"content-length", b"%d" % (len(b.body) + (100 if b.stall_after_headers else 0)))
        request.write(b.body)
        if not b.stall_after_headers:
            request.finish()
        return server.NOT_DONE_YET


@pytest_twisted.async_yield_fixture
async def clean_reactor() -> AsyncIterator[None]:
    yield
    # Connections closed at the end of a test go away over the next few reactor turns.
    for _ in range(20):
        left = [call for call in reactor.getDelayedCalls()  # type: ignore[attr-defined]
                if "pytest_twisted" not in getattr(call.func, "__module__", "")]
        if not left:
            break
        await _turn()
    assert left == [], "the test left timers behind"


async def _turn() -> None:
    d: Deferred[None] = Deferred()
    reactor.callLater(0, d.callback, None)  # type: ignore[attr-defined]
    await d


class Harness:
    def __init__(self, behaviour: Behaviour, timeout: float = 5, cap: int = 1000):
        self.behaviour = behaviour
        self.site = server.Site(Scripted(behaviour))
        self.site.noisy = False
        self.port: IListeningPort = reactor.listenTCP(0, self.site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.upstream = Upstream(reactor, f"http://127.0.0.1:{self.port.getHost().port}",  # type: ignore[arg-type]
                                 timeout, cap)

    async def get(self) -> ProxyError | bytes:
        try:
            response = await self.upstream.forward(b"GET", b"/v1/organization/costs", [], None)
        except ProxyError as e:
            return e
        return response.body

    async def close(self) -> None:
        # A finished response goes back to the pool after the reader's callbacks ran.
        await _turn()
        await self.upstream.close()
        for lost in self.behaviour.lost:
            if not lost.called:
                await lost
        await self.port.stopListening()


@pytest_twisted.ensureDeferred
async def test_whole_body_is_read(clean_reactor: None) -> None:
    harness = Harness(Behaviour(body=b'{"a": 1}'))
    try:
        assert await harness.get() == b'{"a": 1}'
    finally:
        await harness.close()


@pytest_twisted.ensureDeferred
async def test_body_over_the_cap_announced_by_content_length_is_refused(clean_reactor: None) -> None:
    harness = Harness(Behaviour(body=b"x" * 1001), cap=1000)
    try:
        error = await harness.get()
        assert isinstance(error, ProxyError) and (error.status, error.code) == (502, "upstream_response_too_large")
    finally:
        await harness.close()


@pytest_twisted.ensureDeferred
async def test_chunked_body_over_the_cap_is_refused_once_it_passes_it(clean_reactor: None) -> None:
    harness = Harness(Behaviour(body=b"x" * 1001, chunked=True), cap=1000)
    try:
        error = await harness.get()
        assert isinstance(error, ProxyError) and error.code == "upstream_response_too_large"
        harness.behaviour.body = b"y" * 1000  # exactly the cap is fine
        assert await harness.get() == b"y" * 1000
    finally:
        await harness.close()


@pytest_twisted.ensureDeferred
async def test_timeout_before_headers_is_504_and_drops_the_connection(clean_reactor: None) -> None:
    harness = Harness(Behaviour(hold=True), timeout=0.2)
    try:
        error = await harness.get()
        assert isinstance(error, ProxyError) and (error.status, error.code) == (504, "upstream_timeout")
        await harness.behaviour.lost[0].addErrback(lambda f: f)  # the server saw the client leave
    finally:
        await harness.close()


@pytest_twisted.ensureDeferred
async def test_timeout_during_the_body_is_504_and_drops_the_connection(clean_reactor: None) -> None:
    harness = Harness(Behaviour(stall_after_headers=True), timeout=0.2)
    try:
        error = await harness.get()
        assert isinstance(error, ProxyError) and error.code == "upstream_timeout"
        await harness.behaviour.lost[0].addErrback(lambda f: f)
    finally:
        await harness.close()


@pytest_twisted.ensureDeferred
async def test_cancelling_a_forward_drops_the_upstream_connection(clean_reactor: None) -> None:
    harness = Harness(Behaviour(stall_after_headers=True), timeout=30)
    try:
        forwarded = harness.upstream.forward(b"GET", b"/v1/organization/costs", [], None)
        while not harness.behaviour.lost:
            await _turn()
        forwarded.addErrback(lambda f: None)
        forwarded.cancel()
        await harness.behaviour.lost[0].addErrback(lambda f: f)
    finally:
        await harness.close()


def test_end_to_end_drops_hop_by_hop_and_connection_named_headers() -> None:
    headers = Headers({b"Connection": [b"close, X-Private"], b"X-Private": [b"1"], b"Keep-Alive": [b"5"],
                       b"Authorization": [b"Bearer t"], b"X-Kept": [b"a", b"b"]})
    kept = dict(end_to_end(headers, HOP_BY_HOP))
    assert kept == {b"Authorization": [b"Bearer t"], b"X-Kept": [b"a", b"b"]}
