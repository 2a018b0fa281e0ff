"""The upstream's HTTP/1.1, byte by byte (``orgproxy.upstream.http11``).

The response reader is pure: bytes in, whole or in pieces as small as one byte, and what
it makes of them out. The connections are driven by hand on ``StringTransport``s: what
the proxy writes is read off the transport, what the upstream answers is fed to the
protocol, and a close is a ``connectionLost`` the test delivers.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.client import URI
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from orgproxy.errors import ProxyError
from orgproxy.upstream.client import Upstream, UpstreamResponse
from orgproxy.upstream.failures import MalformedResponse, ResponseTooLarge
from orgproxy.upstream.gunzip import CorruptEncoding
import orgproxy.upstream.http11 as http11
from orgproxy.upstream.http11 import (
    IDLE_LIFETIME,
    KEPT_ALIVE,
    ONE_BUFFER_BYTES,
    MAX_HEAD_BYTES,
    ConnectionPool,
    ResponseReader,
    UpstreamConnection,
    request_bytes,
)

LIMIT = 1000
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def read(data: bytes, method: bytes = b"GET", piece: int | None = None, limit: int = LIMIT,
         closed: bool = False) -> ResponseReader:
    """A reader fed ``data`` (whole, or ``piece`` bytes at a time); the connection closed
    after it when ``closed``. Asserts that it is complete."""
    reader = ResponseReader(method, limit)
    pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
    complete = False
    for part in pieces:
        complete = reader.feed(part)
    if closed:
        complete = reader.connection_closed()
    assert complete
    return reader


@pytest.fixture(params=[None, 1, 7], ids=["whole", "byte by byte", "7 bytes at a time"])
def piece(request: pytest.FixtureRequest) -> int | None:
    return request.param  # type: ignore[no-any-return]


# --- framing ----------------------------------------------------------------------------------

def test_a_sized_body_is_read_to_its_length(piece: int | None) -> None:
    reader = read(OK_HEAD + b"Content-Length: 12\r\n\r\n{\"ok\": true}", piece=piece)
    assert reader.head is not None
    assert (reader.head.status, reader.head.phrase, reader.body()) == (200, b"OK", b'{"ok": true}')
    assert reader.keep_alive


def test_a_chunked_body_with_extensions_and_trailers_is_decoded(piece: int | None) -> None:
    wire = (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\n{\"ok\"\r\n7\r\n: true}\r\n0\r\nX-Checksum: abc\r\n\r\n")
    reader = read(wire, piece=piece)
    assert reader.body() == b'{"ok": true}' and reader.keep_alive
    assert reader.head is not None and reader.head.values(b"x-checksum") == []  # trailers dropped


def test_a_body_without_length_is_read_until_the_connection_closes(piece: int | None) -> None:
    reader = ResponseReader(b"GET", LIMIT)
    assert not reader.feed(OK_HEAD + b"\r\n[1, 2")
    assert not reader.feed(b", 3]")
    assert reader.connection_closed()
    assert reader.body() == b"[1, 2, 3]" and not reader.keep_alive


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
def test_heads_204s_and_304s_have_no_body_whatever_the_length_says(method: bytes, status: int) -> None:
    reader = read(b"HTTP/1.1 %d X\r\nContent-Length: 42\r\n\r\n" % status, method=method)
    assert reader.body() == b"" and reader.keep_alive
    assert reader.head is not None and reader.head.values(b"content-length") == [b"42"]


def test_informational_answers_are_skipped_for_the_final_one(piece: int | None) -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK_HEAD + \
        b"Content-Length: 2\r\n\r\n{}"
    reader = read(wire, piece=piece)
    assert reader.head is not None and (reader.head.status, reader.body()) == (200, b"{}")
    assert reader.head.values(b"link") == []


def test_bare_line_feeds_are_taken_as_line_ends() -> None:
    reader = read(b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}")
    assert reader.body() == b"{}"


def test_header_names_are_lower_cased_and_repeated_ones_kept_in_order() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\nx-a:  2 \r\nX-B:\r\n\r\n")
    assert reader.head is not None
    assert reader.head.headers == [(b"x-a", [b"1", b"2"]), (b"content-length", [b"0"]), (b"x-b", [b""])]


def test_a_status_line_without_a_reason_is_accepted() -> None:
    reader = read(b"HTTP/1.1 429\r\nContent-Length: 0\r\n\r\n")
    assert reader.head is not None and (reader.head.status, reader.head.phrase) == (429, b"")


def test_the_same_content_length_repeated_is_one_length() -> None:
    assert read(OK_HEAD + b"Content-Length: 2\r\nContent-Length: 2, 2\r\n\r\n{}").body() == b"{}"


# --- whether the connection may carry the next request -----------------------------------------

@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n",  # bytes nobody asked for
], ids=["connection close", "HTTP/1.0", "both framings", "bytes after the answer"])
def test_a_connection_is_not_reused_when_the_answer_says_so_or_cannot_be_trusted(wire: bytes) -> None:
    reader = read(wire)
    assert not reader.keep_alive


def test_transfer_encoding_wins_over_content_length() -> None:
    wire = OK_HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert read(wire).body() == b"abc"


# --- what cannot be trusted ---------------------------------------------------------------------

@pytest.mark.parametrize("wire", [
    b"HTTP/2 200 OK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Space : a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
], ids=["HTTP/2", "not HTTP", "status of 4 digits", "folded header", "space before colon", "no colon",
        "NUL in a value", "CR in a value", "two lengths", "negative length", "hex length",
        "switching protocols", "chunk size not hex", "chunk longer than its size"])
def test_a_malformed_answer_is_refused(wire: bytes) -> None:
    reader = ResponseReader(b"GET", LIMIT)
    with pytest.raises(MalformedResponse):
        reader.feed(wire)


def test_a_head_that_never_ends_is_refused_once_past_its_bound() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
    with pytest.raises(MalformedResponse):
        for _ in range(MAX_HEAD_BYTES // len(line) + 2):
            reader.feed(line)


def test_a_chunk_size_line_that_never_ends_is_refused() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(MalformedResponse):
        reader.feed(b"1;" + b"e" * 5000)


def test_a_sized_body_cut_short_by_the_close_is_not_complete() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    assert not reader.feed(OK_HEAD + b"Content-Length: 10\r\n\r\n12345")
    assert not reader.connection_closed()


# --- the cap, and gzip ---------------------------------------------------------------------------

def test_a_length_over_the_cap_is_refused_before_its_body() -> None:
    with pytest.raises(ResponseTooLarge):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1))


def test_a_chunk_over_the_cap_is_refused_from_its_size_line() -> None:
    with pytest.raises(ResponseTooLarge):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (LIMIT + 1))


def test_a_body_read_until_close_is_refused_once_past_the_cap() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"\r\n" + b"x" * LIMIT)
    with pytest.raises(ResponseTooLarge):
        reader.feed(b"x")


def test_a_gzipped_chunked_body_is_decoded_within_the_cap(piece: int | None) -> None:
    compressed = gzip.compress(b'{"data": []}')
    wire = OK_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + \
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(compressed), compressed)
    assert read(wire, piece=piece).body() == b'{"data": []}'


def test_a_gzip_bomb_is_refused_at_the_cap() -> None:
    compressed = gzip.compress(b"0" * 100 * LIMIT)
    with pytest.raises(ResponseTooLarge):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                                           % (len(compressed), compressed))


def test_a_gzipped_body_cut_short_is_corrupt() -> None:
    compressed = gzip.compress(b'{"data": [1, 2, 3]}')[:-6]
    with pytest.raises(CorruptEncoding):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                                           % (len(compressed), compressed))


# --- the request on the wire ----------------------------------------------------------------------

def test_the_request_goes_out_as_given_with_host_length_and_gzip() -> None:
    wire = request_bytes(b"POST", b"/v1/organization/projects?x=%2F", b"openai.test",
                         [(b"Authorization", [b"Bearer sk-1"]), (b"X-Two", [b"a", b"b"])], b'{"n": 1}')
    assert wire == (b"POST /v1/organization/projects?x=%2F HTTP/1.1\r\nHost: openai.test\r\n"
                    b"Authorization: Bearer sk-1\r\nX-Two: a\r\nX-Two: b\r\nContent-Length: 8\r\n"
                    b"Accept-Encoding: gzip\r\n\r\n{\"n\": 1}")


def test_a_line_break_that_reached_a_header_cannot_start_another() -> None:
    wire = request_bytes(b"GET", b"/x", b"openai.test", [(b"X-A", [b"1\r\nX-Injected: 2"]), (b"X-B\n", [b"3\r"])],
                         None)
    assert wire == (b"GET /x HTTP/1.1\r\nHost: openai.test\r\nX-A: 1  X-Injected: 2\r\nX-B : 3 \r\n"
                    b"Accept-Encoding: gzip\r\n\r\n")


# --- connections: kept, reused, retried, dropped -------------------------------------------------

@implementer(IAgentEndpointFactory, IStreamClientEndpoint)
class HandDriven:
    """Endpoints whose every connection is a StringTransport the test reads and feeds."""

    def __init__(self) -> None:
        self.connections: list[tuple[UpstreamConnection, StringTransport]] = []
        self.pending: list[Deferred[UpstreamConnection]] = []
        self.hold = False  # when set, connecting never completes
        self.cancelled: list[UpstreamConnection] = []  # connections cancelled while connecting

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        self.uri = uri
        return self

    def connect(self, factory: IProtocolFactory) -> Deferred[UpstreamConnection]:
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        if self.hold:
            waiting: Deferred[UpstreamConnection] = Deferred(lambda _: self.cancelled.append(protocol))
            self.pending.append(waiting)
            return waiting
        return succeed(protocol)

    def sent(self, index: int = -1) -> bytes:
        transport = self.connections[index][1]
        data = transport.value()
        transport.clear()
        return data

    def answer(self, data: bytes, index: int = -1) -> None:
        self.connections[index][0].dataReceived(data)

    def close(self, index: int = -1, reason: Failure | None = None) -> None:
        self.connections[index][0].connectionLost(reason or Failure(ConnectionDone()))


class Results:
    def __init__(self, d: Deferred[UpstreamResponse]):
        self.got: list[UpstreamResponse | Failure] = []
        d.addBoth(self.got.append)
        self.d = d

    def answer(self) -> UpstreamResponse:
        assert len(self.got) == 1 and isinstance(self.got[0], UpstreamResponse), self.got
        return self.got[0]

    def error(self) -> ProxyError:
        assert len(self.got) == 1 and isinstance(self.got[0], Failure), self.got
        assert isinstance(self.got[0].value, ProxyError), self.got[0]
        return self.got[0].value


SMALL = OK_HEAD + b"Content-Length: 2\r\n\r\n{}"


@pytest.fixture
def wires() -> HandDriven:
    return HandDriven()


@pytest.fixture
def clock() -> MemoryReactorClock:
    return MemoryReactorClock()


@pytest.fixture
def upstream(wires: HandDriven, clock: MemoryReactorClock) -> Iterator[Upstream]:
    yield Upstream(clock, "http://openai.test:8080/gateway/", wires, 30.0, LIMIT)
    assert clock.getDelayedCalls() == []


def get(upstream: Upstream, method: bytes = b"GET", body: bytes | None = None) -> Results:
    return Results(upstream.forward(method, b"/v1/organization/costs?a=1", [], body))


def test_a_base_path_and_a_port_go_into_the_request(upstream: Upstream, wires: HandDriven) -> None:
    waiting = get(upstream)
    assert wires.sent().startswith(b"GET /gateway/v1/organization/costs?a=1 HTTP/1.1\r\nHost: openai.test:8080\r\n")
    wires.answer(SMALL)
    assert waiting.answer().body == b"{}"


def test_one_connection_carries_request_after_request(upstream: Upstream, wires: HandDriven) -> None:
    for _ in range(3):
        waiting = get(upstream)
        assert wires.sent().startswith(b"GET ")
        wires.answer(SMALL)
        assert waiting.answer().body == b"{}"
    assert len(wires.connections) == 1


def test_concurrent_requests_each_get_a_connection_and_all_are_kept(upstream: Upstream, wires: HandDriven) -> None:
    first, second = get(upstream), get(upstream)
    assert len(wires.connections) == 2
    wires.answer(SMALL, 0)
    wires.answer(SMALL, 1)
    assert first.answer().body == second.answer().body == b"{}"
    assert len(upstream.pool.idle) == 2


def assert_the_next_request_opens_a_new_connection(upstream: Upstream, wires: HandDriven) -> None:
    before = len(wires.connections)
    waiting = get(upstream)
    assert len(wires.connections) == before + 1
    wires.answer(SMALL)
    assert waiting.answer().body == b"{}"


def test_a_connection_the_answer_closes_is_not_reused(upstream: Upstream, wires: HandDriven) -> None:
    get(upstream)
    wires.answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert wires.connections[0][1].disconnecting
    assert_the_next_request_opens_a_new_connection(upstream, wires)


def test_an_idle_connection_the_upstream_closed_is_forgotten(upstream: Upstream, wires: HandDriven) -> None:
    get(upstream)
    wires.answer(SMALL)
    wires.close()  # the upstream's keep-alive timeout
    assert upstream.pool.idle == []
    assert_the_next_request_opens_a_new_connection(upstream, wires)


def test_connections_idle_too_long_are_closed_not_trusted(upstream: Upstream, wires: HandDriven,
                                                          clock: MemoryReactorClock) -> None:
    first, second = get(upstream), get(upstream)
    wires.answer(SMALL, 0)
    clock.advance(IDLE_LIFETIME / 2)
    wires.answer(SMALL, 1)
    assert first.answer() and second.answer()
    clock.advance(IDLE_LIFETIME / 2 + 1)  # the first past its lifetime, the second not
    waiting = get(upstream)
    assert len(wires.connections) == 2 and wires.sent(1).startswith(b"GET ")  # the younger one
    wires.answer(SMALL, 1)
    assert waiting.answer().body == b"{}"
    clock.advance(IDLE_LIFETIME + 1)
    assert_the_next_request_opens_a_new_connection(upstream, wires)
    assert all(transport.disconnecting for _, transport in wires.connections[:2])


def test_bytes_on_an_idle_connection_drop_it(upstream: Upstream, wires: HandDriven) -> None:
    get(upstream)
    wires.answer(SMALL)
    wires.answer(b"HTTP/1.1 200 OK\r\n")
    assert wires.connections[0][1].disconnecting and upstream.pool.idle == []


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_a_request_on_a_connection_closed_under_it_is_sent_again_once(upstream: Upstream, wires: HandDriven,
                                                                     method: bytes) -> None:
    get(upstream)
    wires.answer(SMALL)
    wires.sent(0)
    waiting = get(upstream, method)
    assert wires.sent(0).startswith(method)
    wires.close(0)  # closed as the request went out: not a byte of answer
    assert len(wires.connections) == 2 and wires.sent(1).startswith(method)
    wires.answer(b"HTTP/1.1 204 No Content\r\n\r\n", 1)
    assert waiting.answer().status == 204


def test_it_is_sent_again_only_once(upstream: Upstream, wires: HandDriven) -> None:
    get(upstream)
    wires.answer(SMALL)
    waiting = get(upstream)
    wires.close(0)
    wires.close(1)
    assert waiting.error().code == "upstream_connection_lost"
    assert len(wires.connections) == 2


def test_a_post_is_never_sent_twice(upstream: Upstream, wires: HandDriven) -> None:
    get(upstream)
    wires.answer(SMALL)
    waiting = get(upstream, b"POST", b"{}")
    wires.close(0)
    assert waiting.error().code == "upstream_connection_lost"
    assert len(wires.connections) == 1


def test_a_fresh_connection_closed_before_an_answer_is_not_retried(upstream: Upstream, wires: HandDriven) -> None:
    waiting = get(upstream)
    wires.close(0, Failure(ConnectionLost()))
    assert waiting.error().code == "upstream_connection_lost" and len(wires.connections) == 1


def test_a_malformed_answer_is_502_and_its_connection_dropped(upstream: Upstream, wires: HandDriven) -> None:
    waiting = get(upstream)
    wires.answer(b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n")
    error = waiting.error()
    assert (error.status, error.code) == (502, "upstream_bad_response")
    assert "openai.test:8080" in error.message
    assert wires.connections[0][1].disconnecting and upstream.pool.idle == []


def test_cancelling_while_connecting_cancels_the_connection(upstream: Upstream, wires: HandDriven) -> None:
    wires.hold = True
    waiting = get(upstream)
    waiting.d.cancel()
    assert wires.cancelled == [wires.connections[0][0]]
    assert waiting.got and isinstance(waiting.got[0], Failure) and waiting.got[0].check(CancelledError)


def test_the_pool_keeps_at_most_its_share_of_idle_connections(wires: HandDriven) -> None:
    upstream = Upstream(MemoryReactorClock(), "http://openai.test", wires, 30.0, LIMIT)
    waiting = [get(upstream) for _ in range(KEPT_ALIVE + 3)]
    for index in range(len(waiting)):
        wires.answer(SMALL, index)
    assert all(each.answer().body == b"{}" for each in waiting)
    assert len(upstream.pool.idle) == KEPT_ALIVE
    assert sum(transport.disconnecting for _, transport in wires.connections) == 3


def test_closing_the_pool_closes_its_idle_connections_and_waits_for_them(upstream: Upstream,
                                                                        wires: HandDriven) -> None:
    first, second = get(upstream), get(upstream)
    wires.answer(SMALL, 0)
    wires.answer(SMALL, 1)
    assert first.answer() and second.answer()
    closed: list[None] = []
    upstream.close().addCallback(closed.append)
    assert all(transport.disconnecting for _, transport in wires.connections)
    wires.close(0)
    assert closed == []
    wires.close(1)
    assert closed == [None]


def test_a_pool_with_nothing_idle_closes_at_once() -> None:
    closed: list[None] = []
    ConnectionPool(HandDriven(), MemoryReactorClock()).close().addCallback(closed.append)
    assert closed == [None]


# --- hostile upstreams: bounded, whatever they send -------------------------------------------

def test_a_head_sent_a_byte_at_a_time_is_read_in_linear_time() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    searched: list[int] = []

    class Counting:
        def search(self, buffer: bytes, start: int = 0) -> object:
            searched.append(len(buffer) - start)
            return real.search(buffer, start)
    real = http11._END_OF_HEAD
    http11._END_OF_HEAD = Counting()  # type: ignore[assignment]
    try:
        wire = OK_HEAD + b"X-Pad: " + b"p" * 2000 + b"\r\nContent-Length: 0\r\n\r\n"
        for byte in range(len(wire)):
            reader.feed(wire[byte:byte + 1])
    finally:
        http11._END_OF_HEAD = real
    assert reader.complete
    assert sum(searched) < 5 * len(wire)  # each byte looked at a few times, not once per byte after it


def test_endless_informational_answers_are_refused() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    with pytest.raises(MalformedResponse):
        reader.feed(b"HTTP/1.1 100 Continue\r\n\r\n" * 20)


def test_endless_trailers_are_refused() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n")
    line = b"X-Trailer: " + b"t" * 88 + b"\r\n"
    with pytest.raises(MalformedResponse):
        for _ in range(MAX_HEAD_BYTES // len(line) + 2):
            reader.feed(line)


def test_a_gzip_stream_that_inflates_to_nothing_is_capped_on_its_compressed_bytes() -> None:
    empty_member = gzip.compress(b"")
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(ResponseTooLarge):
        for _ in range(LIMIT // len(empty_member) + 2):
            reader.feed(b"%x\r\n%s\r\n" % (len(empty_member), empty_member))


def test_a_large_announced_body_read_into_one_buffer_comes_out_whole() -> None:
    body = bytes(range(256)) * (ONE_BUFFER_BYTES // 256 + 1000)
    reader = ResponseReader(b"GET", 4 * ONE_BUFFER_BYTES)
    wire = OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    complete = False
    for start in range(0, len(wire), 65536):
        complete = reader.feed(wire[start:start + 65536])
    assert complete and reader.keep_alive
    assert reader.body() == body


def test_a_large_announced_body_cut_short_is_not_complete() -> None:
    reader = ResponseReader(b"GET", 4 * ONE_BUFFER_BYTES)
    assert not reader.feed(OK_HEAD + b"Content-Length: %d\r\n\r\n" % (2 * ONE_BUFFER_BYTES) + b"x" * ONE_BUFFER_BYTES)
    assert not reader.connection_closed()
