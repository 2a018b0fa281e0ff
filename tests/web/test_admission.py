"""What is let in, in memory: connections at --max-connections and
--max-connections-per-source (the longest-waiting one without a whole request makes room
for a new one), request bodies (none read before the guard has accepted the head, and
all of them together capped), and methods (only those the Admin APIs use are forwarded).

(Connections from outside --allow-from, closed as they are accepted, are in
``test_site.py``; the real process under a flood of connections is
``tests/process/test_hostile_clients.py``.)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orgproxy.web.connections import ClientConnections
from tests.support.answers import AUTH
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI, hold, reply
from tests.support.memory import InMemoryProxy
from tests.support.scraped import scraped
from tests.web.test_faults import NORMAL_PAGE, assert_proxy_error, assert_serves_normally, raw_answer, raw_get
from tests.web.test_site import CLIENT_TOKEN, requests_counted

# A guard against a test that waits forever, never a way to wait.
pytestmark = pytest.mark.timeout(30)

COSTS = "/v1/organization/costs"
PROJECTS = "/v1/organization/projects"
TARGET = COSTS + "?start_time=1"
KIB = 1024

MakeProxy = Callable[..., InMemoryProxy]
Events = list[dict[str, Any]]


def closed(reason: str) -> float:
    return scraped("orgproxy_connections_closed_total", {"reason": reason})


def post_head(length: int, *extra_headers: bytes, target: bytes = PROJECTS.encode()) -> bytes:
    """The head of a POST announcing a ``length``-byte body, with the caller's admin key."""
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: orgproxy.test",
             b"Authorization: " + AUTH["Authorization"].encode(), b"Content-Type: application/json",
             b"Content-Length: %d" % length, *extra_headers]
    return b"\r\n".join([*lines, b"", b""])


def said(logged: Events, keys: set[str]) -> list[int]:
    """The counts of the once-a-minute lines with exactly these fields (besides ``times``)."""
    return [e["times"] for e in logged if e.get("log_namespace") == "orgproxy" and "times" in e
            and {k for k in e if not k.startswith("log_")} == keys | {"times"}]


MADE_ROOM = {"limit", "per_source"}
OVER_CAPACITY = {"limit"}


# --- at the connection cap ------------------------------------------------------------------------

def test_at_the_cap_the_connection_waiting_longest_for_its_request_makes_room(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, logged: Events) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--max-connections", "3", "--max-connections-per-source", "3")
    fake.on(COSTS, reply(body=NORMAL_PAGE))
    evicted_before = closed("evicted")
    slow = [proxy.raw(raw_get(TARGET)[:20]) for _ in range(3)]  # three trickling clients, oldest first
    for served in range(1, 4):  # each new client takes the place of the one that waited longest
        fresh = proxy.raw(raw_get(TARGET))
        assert raw_answer(fresh).status == 200
        assert [exchange.closed_by_proxy for exchange in slow] == [True] * served + [False] * (3 - served)
    # A client that had begun its request is told why, in the provider's shape, and when to come back.
    answer = raw_answer(slow[0])
    assert_proxy_error(answer, 503, "too_many_connections")
    assert answer.header("Retry-After") == "1"
    assert closed("evicted") == evicted_before + 3
    assert said(logged, MADE_ROOM) == [1]  # said once (then once a minute), not per connection
    assert fake.received and all(r.target == TARGET.encode() for r in fake.received)


def test_a_connection_that_answered_waits_again_from_the_back_and_idle_makes_room_silently(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--max-connections", "2", "--max-connections-per-source", "2")
    fake.on(COSTS, reply(body=NORMAL_PAGE))
    kept_alive = proxy.raw(raw_get(TARGET))  # answered, then idle on its keep-alive connection
    trickling = proxy.raw(raw_get(TARGET)[:20])  # came after it, but has waited since
    assert raw_answer(kept_alive).status == 200
    kept_alive.send(raw_get(TARGET))  # answered again: now it waits from after the trickler
    proxy.flush()
    assert kept_alive.written.count(b"HTTP/1.1 200 ") == 2
    newcomer = proxy.raw(b"")
    assert trickling.closed_by_proxy and not kept_alive.closed_by_proxy
    proxy.raw(b"")
    assert kept_alive.closed_by_proxy
    assert kept_alive.written.count(b"HTTP/1.1 ") == 2  # an idle connection is closed with nothing said
    newcomer.send(raw_get(TARGET))
    proxy.flush()
    assert raw_answer(newcomer).status == 200


def test_connections_holding_a_request_are_never_closed_to_make_room(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, logged: Events) -> None:
    # Upstream answers held longer than the minute the test lets pass.
    proxy = make_proxy("--aliases", str(aliases), "--max-connections", "3", "--max-connections-per-source", "3",
                       "--timeout", "600")
    site = proxy.service.site
    fake.on(COSTS, hold)
    busy = [proxy.raw(raw_get(TARGET)) for _ in range(3)]  # whole requests, being answered
    assert len(fake.received) == 3
    refused_before = closed("max_connections")
    for _ in range(50):  # a flood of new ones: each closed at once, as a port closes a None
        assert proxy.raw(b"GET / HTTP/1.1\r\n", client="10.0.0.5").refused_at_accept
    assert not any(exchange.closed_by_proxy for exchange in busy)
    assert closed("max_connections") == refused_before + 50
    assert said(logged, OVER_CAPACITY) == [1]  # said once, not fifty times
    busy[0].close()
    assert len(site.connections) == 2
    assert not proxy.raw(raw_get(TARGET)).refused_at_accept  # room again
    proxy.advance(60)  # the next flood is said again, with its count
    for _ in range(7):
        proxy.raw(b"", client="10.0.0.5")
    assert said(logged, OVER_CAPACITY) == [1, 50]
    for exchange in busy:
        exchange.close()  # the clients leave: their upstream requests are cancelled
    proxy.flush()


def test_one_address_holds_at_most_its_share_and_makes_room_among_its_own(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--max-connections", "10", "--max-connections-per-source", "2")
    fake.on(COSTS, reply(body=NORMAL_PAGE))
    other = proxy.raw(raw_get(TARGET)[:20], client="10.0.0.9")  # the oldest of all, from elsewhere
    flood = [proxy.raw(raw_get(TARGET)[:20], client="10.0.0.1") for _ in range(5)]
    # Each new one from 10.0.0.1 closed that address's longest waiting, never another's.
    assert [exchange.closed_by_proxy for exchange in flood] == [True, True, True, False, False]
    assert not other.closed_by_proxy
    other.send(raw_get(TARGET)[20:])
    proxy.flush()
    assert raw_answer(other).status == 200
    # Both of its connections busy, the address gets no third one; others still get theirs.
    fake.on(COSTS, hold)
    for exchange in flood[3:]:
        exchange.send(raw_get(TARGET)[20:])
    proxy.flush()
    refused_before = closed("max_connections_per_source")
    assert proxy.raw(raw_get(TARGET), client="10.0.0.1").refused_at_accept
    assert closed("max_connections_per_source") == refused_before + 1
    assert not proxy.raw(b"", client="10.0.0.2").refused_at_accept
    for exchange in flood[3:]:
        exchange.close()
    proxy.flush()


def test_the_share_of_one_address_is_a_quarter_of_the_cap_unless_set(make_proxy: MakeProxy) -> None:
    assert make_proxy("--max-connections", "400").service.site.connections.per_source == 100
    assert make_proxy("--max-connections", "2").service.site.connections.per_source == 1
    set_by_environment = make_proxy(environ={"ORGPROXY_MAX_CONNECTIONS_PER_SOURCE": "7"})
    assert set_by_environment.service.site.connections.per_source == 7


class Connection:
    """A connection as ClientConnections sees it: one that records being closed for room."""

    def __init__(self, name: str, closed_for_room: list[str]):
        self.name = name
        self.closed_for_room = closed_for_room

    def make_room(self) -> None:
        self.closed_for_room.append(self.name)


def test_the_oldest_waiting_makes_room_first_and_one_closed_once_counts_no_more() -> None:
    closed_for_room: list[str] = []
    table = ClientConnections(limit=3, per_source=3)
    a, b, c, d = (Connection(name, closed_for_room) for name in "abcd")
    for connection in (a, b, c):
        assert table.room_for("10.0.0.1") is None
        table.opened(connection, "10.0.0.1")
    table.holding_request(a)  # a has a whole request: never closed for room
    assert table.room_for("10.0.0.2") is None
    table.opened(d, "10.0.0.2")
    assert closed_for_room == ["b"] and len(table) == 3
    table.closed(b)  # the closed connection's own connectionLost, later: counted once only
    table.waiting_for_request(b)
    assert len(table) == 3
    assert {address: source.open for address, source in table.sources.items()} == {"10.0.0.1": 2, "10.0.0.2": 1}
    table.waiting_for_request(a)  # a answered: it waits again, behind c and d
    e, f = Connection("e", closed_for_room), Connection("f", closed_for_room)
    for connection in (e, f):
        assert table.room_for(None) is None  # a UNIX socket's peer: under the whole cap only
        table.opened(connection, None)
    assert closed_for_room == ["b", "c", "d"]
    for connection in (a, e, f):
        table.closed(connection)
    assert (len(table), table.sources, len(table.waiting)) == (0, {}, 0)


# --- request bodies: none read before the guard says yes ---------------------------------------------

@pytest.fixture
def guarded(make_proxy: MakeProxy, aliases: Path, tmp_path: Path) -> InMemoryProxy:
    token_file = tmp_path / "client.token"
    token_file.write_text(CLIENT_TOKEN)
    return make_proxy("--aliases", str(aliases), "--client-token-file", str(token_file))


@pytest.mark.parametrize("framing", [b"Content-Length: 1048576", b"Transfer-Encoding: chunked"],
                         ids=["content-length", "chunked"])
def test_without_the_client_token_a_body_is_refused_at_its_head_and_never_read(
        guarded: InMemoryProxy, fake: FakeOpenAI, framing: bytes) -> None:
    head = post_head(0).replace(b"Content-Length: 0", framing)
    counted = {"route": "proxy", "method": "POST", "status": "401", "provider": "none"}
    before = scraped("orgproxy_requests_total", counted)
    exchange = guarded.raw(head + b"x" * (64 * KIB))
    # Answered and closed at once, with half a mebibyte of body still to come.
    assert_proxy_error(raw_answer(exchange), 401, "invalid_orgproxy_token")
    assert exchange.closed_by_proxy
    assert guarded.service.site.request_bodies.held == 0
    exchange.send(b"x" * (512 * KIB))  # what a client still sends is not read
    assert exchange.written.count(b"HTTP/1.1 ") == 1
    assert fake.received == []
    assert scraped("orgproxy_requests_total", counted) == before + 1


def test_without_the_client_token_no_100_continue_is_sent(guarded: InMemoryProxy, fake: FakeOpenAI) -> None:
    exchange = guarded.raw(post_head(100, b"Expect: 100-continue"))
    assert not exchange.written.startswith(b"HTTP/1.1 100 ")
    assert_proxy_error(raw_answer(exchange), 401, "invalid_orgproxy_token")
    assert fake.received == []


def test_with_the_client_token_the_body_is_read_and_forwarded(guarded: InMemoryProxy, fake: FakeOpenAI) -> None:
    body = json.dumps({"name": "p" * 1000}).encode()
    exchange = guarded.raw(post_head(len(body), b"X-Orgproxy-Token: " + CLIENT_TOKEN.encode()) + body[:500])
    assert exchange.written == b""  # the rest of the body has yet to come
    exchange.send(body[500:])
    guarded.flush()
    assert raw_answer(exchange).status == 200
    assert fake.last().body == body
    assert guarded.service.site.request_bodies.held == 0  # given back once answered


def test_bodies_held_across_connections_are_capped_then_503_with_retry_after(
        make_proxy: MakeProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--max-buffered-request-bytes", str(100 * KIB))
    bodies = proxy.service.site.request_bodies
    body = json.dumps({"name": "p" * (60 * KIB)}).encode()
    first = proxy.raw(post_head(len(body)) + body[:50 * KIB])
    assert bodies.held == 50 * KIB
    second = proxy.raw(post_head(len(body)) + body[:50 * KIB])  # exactly at the cap
    assert bodies.held == 100 * KIB
    third = proxy.raw(post_head(len(body), target=b"/v1/organizations/workspaces") + b"x")
    answer = raw_answer(third)  # beyond it, in the shape of the path's provider (Anthropic's here)
    assert (answer.status, answer.header("Retry-After")) == (503, "1")
    assert answer.json()["error"]["type"] == "overloaded_error"
    assert third.closed_by_proxy and bodies.held == 100 * KIB
    second.send(body[50 * KIB:])  # would go over: refused, and its bytes given back
    assert_proxy_error(raw_answer(second), 503, "too_many_request_bytes")
    assert bodies.held == 50 * KIB
    first.send(body[50 * KIB:])
    proxy.flush()
    assert raw_answer(first).status == 200
    assert fake.last().body == body and len(fake.received) == 1 and fake_anthropic.received == []
    assert bodies.held == 0
    left = proxy.raw(post_head(len(body)) + body[:10 * KIB])  # a client that leaves mid-body
    assert bodies.held == 10 * KIB
    left.close()
    assert bodies.held == 0
    assert_serves_normally(proxy, fake)


# --- methods ------------------------------------------------------------------------------------------

def test_only_the_admin_apis_methods_are_forwarded_the_others_are_405_with_allow(
        proxy: InMemoryProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    for method, target in itertools.product(
            (b"TRACE", b"CONNECT", b"PUT", b"PATCH", b"get", b"Post", b"PROPFIND"),
            (TARGET.encode(), b"/v1/organizations/api_keys")):
        answer = raw_answer(proxy.raw(raw_get(target).replace(b"GET ", method + b" ", 1)))
        assert answer.status == 405, (method, target)
        assert answer.header("Allow") == "GET, POST, DELETE, HEAD, OPTIONS"
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error.get("code", "method_not_allowed") == "method_not_allowed"  # Anthropic's shape has no code
    assert fake.received == [] and fake_anthropic.received == []


def test_connect_to_an_authority_is_never_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    exchange = proxy.raw(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n")
    assert raw_answer(exchange).status in (404, 405)
    assert fake.received == []


def test_the_admin_apis_methods_are_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    methods = ["GET", "POST", "DELETE", "HEAD", "OPTIONS"]
    for method in methods:
        proxy.call(method, PROJECTS, body=b"{}" if method == "POST" else None)
    assert [received.method for received in fake.received] == [method.encode() for method in methods]


def test_a_refused_method_is_counted(proxy: InMemoryProxy) -> None:
    before = requests_counted(proxy)
    assert raw_answer(proxy.raw(raw_get(TARGET).replace(b"GET ", b"TRACE ", 1))).status == 405
    after = requests_counted(proxy)
    assert [key for key in after if after[key] != before.get(key, 0) and key[0] == "proxy"] == [
        ("proxy", "OTHER", "405")]

