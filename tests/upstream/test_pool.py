"""Forwarding's connections to the upstream (``orgproxy.upstream.pool``), driven by hand
on ``StringTransport``s: what the proxy writes is read off the transport, what the
upstream answers is fed to the protocol, and a close is a ``connectionLost`` the test
delivers.
"""

from __future__ import annotations

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
from orgproxy.upstream.parse import HeaderList
from orgproxy.upstream.pool import (
    IDLE_LIFETIME,
    KEPT_ALIVE,
    KEPT_ALIVE_PER_KEY,
    ConnectionPool,
    UpstreamConnection,
    credential_key,
    request_bytes,
)

LIMIT = 1000
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


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


def get(upstream: Upstream, method: bytes = b"GET", body: bytes | None = None,
        headers: HeaderList | None = None) -> Results:
    return Results(upstream.forward(method, b"/v1/organization/costs?a=1", headers or [], body))


def as_caller(key: str, **scope: str) -> HeaderList:
    """The headers of a caller with admin key ``key`` (and scope headers, _ for -)."""
    return [(b"Authorization", [b"Bearer " + key.encode()]),
            *((name.replace("_", "-").encode(), [value.encode()]) for name, value in scope.items())]


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
    assert upstream.pool.idle_count == 2


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
    assert upstream.pool.idle_count == 0
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
    assert wires.connections[0][1].disconnecting and upstream.pool.idle_count == 0


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
    assert wires.connections[0][1].disconnecting and upstream.pool.idle_count == 0


def test_cancelling_while_connecting_cancels_the_connection(upstream: Upstream, wires: HandDriven) -> None:
    wires.hold = True
    waiting = get(upstream)
    waiting.d.cancel()
    assert wires.cancelled == [wires.connections[0][0]]
    assert waiting.got and isinstance(waiting.got[0], Failure) and waiting.got[0].check(CancelledError)


def test_one_credential_keeps_at_most_its_share_of_idle_connections(wires: HandDriven) -> None:
    upstream = Upstream(MemoryReactorClock(), "http://openai.test", wires, 30.0, LIMIT)
    waiting = [get(upstream, headers=as_caller("sk-one")) for _ in range(KEPT_ALIVE_PER_KEY + 3)]
    for index in range(len(waiting)):
        wires.answer(SMALL, index)
    assert all(each.answer().body == b"{}" for each in waiting)
    assert upstream.pool.idle_count == KEPT_ALIVE_PER_KEY
    assert sum(transport.disconnecting for _, transport in wires.connections) == 3


def test_many_credentials_keep_at_most_the_pools_share_the_longest_idle_closed(wires: HandDriven) -> None:
    clock = MemoryReactorClock()
    upstream = Upstream(clock, "http://openai.test", wires, 30.0, LIMIT)
    for caller in range(KEPT_ALIVE + 3):
        waiting = get(upstream, headers=as_caller(f"sk-{caller}"))
        clock.advance(1)
        wires.answer(SMALL)
        assert waiting.answer().body == b"{}"
    assert upstream.pool.idle_count == KEPT_ALIVE
    assert [transport.disconnecting for _, transport in wires.connections] == [True] * 3 + [False] * KEPT_ALIVE


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


# --- one caller's connection never carries another's answer ------------------------------------

VICTIM, OTHER = as_caller("sk-admin-VICTIM"), as_caller("sk-admin-OTHER")


def answered(upstream: Upstream, wires: HandDriven, headers: HeaderList, answer: bytes = SMALL,
             method: bytes = b"GET") -> UpstreamResponse:
    """A request of ``headers``' caller, answered with ``answer`` on the connection it went out on."""
    waiting = get(upstream, method, headers=headers)
    index = next(i for i, (protocol, _) in enumerate(wires.connections) if protocol.exchange is not None)
    wires.sent(index)
    wires.answer(answer, index)
    return waiting.answer()


def test_a_connection_is_reused_only_by_the_credential_it_was_opened_for(upstream: Upstream,
                                                                       wires: HandDriven) -> None:
    answered(upstream, wires, VICTIM)
    answered(upstream, wires, OTHER)
    assert len(wires.connections) == 2  # OTHER did not get VICTIM's idle connection
    answered(upstream, wires, VICTIM)
    answered(upstream, wires, OTHER)
    assert len(wires.connections) == 2  # each reused its own
    assert upstream.pool.idle_count == 2


@pytest.mark.parametrize("scope", [
    {"OpenAI_Organization": "org-b"}, {"OpenAI_Project": "proj_b"}, {"anthropic_beta": "b"},
    {"anthropic_version": "2023-06-01"},
], ids=["organization", "project", "anthropic-beta", "anthropic-version"])
def test_the_scope_headers_are_part_of_the_key(upstream: Upstream, wires: HandDriven, scope: dict[str, str]) -> None:
    answered(upstream, wires, as_caller("sk-same", OpenAI_Organization="org-a"))
    answered(upstream, wires, as_caller("sk-same", **{"OpenAI_Organization": "org-a", **scope}))
    assert len(wires.connections) == 2


def test_anthropics_x_api_key_is_a_credential_too(upstream: Upstream, wires: HandDriven) -> None:
    answered(upstream, wires, [(b"x-api-key", [b"sk-ant-admin-VICTIM"])])
    answered(upstream, wires, [(b"X-Api-Key", [b"sk-ant-admin-OTHER"])])
    answered(upstream, wires, [])
    assert len(wires.connections) == 3


def test_the_key_is_a_digest_of_the_credential_never_the_secret() -> None:
    names = frozenset({b"authorization", b"openai-organization"})
    key = credential_key([(b"Authorization", [b"Bearer sk-secret"]), (b"Accept", [b"*/*"])], names)
    assert len(key) == 32 and b"sk-secret" not in key
    # The same credential in another case, among other headers: the same key; anything
    # else of the credential or scope: another.
    assert key == credential_key([(b"accept", [b"x"]), (b"AUTHORIZATION", [b"Bearer sk-secret"])], names)
    others = [
        [(b"Authorization", [b"Bearer sk-other"])],
        [(b"Authorization", [b"Bearer sk-secret"]), (b"OpenAI-Organization", [b"org-1"])],
        [(b"Authorization", [b"Bearer sk-secret", b"Bearer sk-secret"])],
        [(b"Authorization", [b"Bearer sk-secret,"])],
        [(b"Authorization", [b"Bearer sk-", b"secret"])],
        [],
    ]
    assert len({key, *(credential_key(headers, names) for headers in others)}) == len(others) + 1


@pytest.mark.parametrize(("method", "answer"), [
    (b"HEAD", OK_HEAD + b"Content-Length: 2\r\n\r\n"),
    (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n"),
    (b"GET", b"HTTP/1.1 100 Continue\r\n\r\n" + SMALL),
    (b"GET", OK_HEAD + b"\r\n{}"),
    (b"GET", OK_HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    (b"GET", SMALL + b"H"),
], ids=["HEAD", "204", "304", "after a 100", "until close", "both framings", "a byte past the end"])
def test_a_connection_is_not_reused_after_an_answer_whose_end_is_not_certain(
        upstream: Upstream, wires: HandDriven, method: bytes, answer: bytes) -> None:
    waiting = get(upstream, method, headers=VICTIM)
    wires.answer(answer)
    if b"Content-Length" not in answer and b"{}" in answer:
        wires.close()  # the body read until close ends there: nothing left to reuse
    else:
        assert wires.connections[0][1].disconnecting
    assert waiting.answer().status in (200, 204, 304)
    assert upstream.pool.idle_count == 0
    answered(upstream, wires, VICTIM)
    assert len(wires.connections) == 2


def test_a_late_answer_on_an_idle_connection_closes_it_and_reaches_nobody(upstream: Upstream,
                                                                        wires: HandDriven) -> None:
    answered(upstream, wires, VICTIM)
    wires.answer(b'HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{"late": true}', 0)
    assert wires.connections[0][1].disconnecting and upstream.pool.idle_count == 0
    assert answered(upstream, wires, VICTIM).body == b"{}"
    assert len(wires.connections) == 2


def test_idle_connections_of_keys_nobody_uses_any_more_are_closed_in_time(upstream: Upstream, wires: HandDriven,
                                                                         clock: MemoryReactorClock) -> None:
    answered(upstream, wires, VICTIM)
    clock.advance(IDLE_LIFETIME + 1)
    answered(upstream, wires, OTHER)  # returned idle: the pool looks at the longest idle
    assert wires.connections[0][1].disconnecting and not wires.connections[1][1].disconnecting
    assert upstream.pool.idle_count == 1
