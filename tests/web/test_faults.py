"""Faults, in memory: upstreams that refuse, stay silent, stall or break off; answers
over the size cap; requests that are not valid HTTP or try to leave /v1/organization/;
more clients at once than --max-concurrency allows.

Each test ends by checking that the proxy still serves a normal request, names and all;
the ``logged`` fixture fails any test that logged a traceback or the admin key. Time moves
only when a test moves the clock. (Real sockets and process memory, many clients and
thousands of requests, are ``tests/process/test_load.py``.)
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.logger import LogLevel
from twisted.web import server

from orgproxy.infra import metrics
from orgproxy.infra.logs import set_level
from tests.support.answers import AUTH, TOKEN, Answer
from tests.support.fake_openai import (
    FakeOpenAI,
    Received,
    close_mid_body,
    headers_then_stall,
    hold,
    reply,
)
from tests.support.memory import InMemoryProxy, RawExchange
from tests.support.scraped import scraped
from tests.web.test_proxy import request_lines

# A guard against a test that waits forever, never a way to wait.
pytestmark = pytest.mark.timeout(30)

COSTS = "/v1/organization/costs"
# The route each test asks for at the end, to see that the proxy still serves.
NORMAL = "/v1/organization/projects"
NAMED_KEY = "key_1234567890abcdef"  # "checkout-service-production" in etc/aliases.toml
NORMAL_PAGE = {"object": "list", "data": [{"id": "proj_abc", "api_key_id": NAMED_KEY}], "has_more": False}
OPENAI_ERROR = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                          "param": None, "code": "rate_limit_exceeded"}}

MakeProxy = Callable[..., InMemoryProxy]
Events = list[dict[str, Any]]


# --- helpers --------------------------------------------------------------------------------

def assert_proxy_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    """One of the proxy's own answers, in OpenAI's error shape, without the caller's key."""
    assert answer.status == status, (answer.status, answer.headers, answer.body[:500])
    assert answer.header("Content-Type") == "application/json", answer.headers
    error = answer.error()
    assert error["code"] == code, error
    assert TOKEN.encode() not in answer.body
    return error


def assert_serves_normally(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(NORMAL, reply(body=NORMAL_PAGE))
    answer = proxy.get(NORMAL)
    assert answer.status == 200, (answer.status, answer.body[:500])
    assert answer.json()["data"] == [{"id": "proj_abc", "api_key_id": NAMED_KEY,
                                      "api_key_name": "checkout-service-production"}]


def raw_get(target: str | bytes, *extra_headers: str) -> bytes:
    """A GET exactly as a client would write it, with the caller's admin key."""
    path = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: orgproxy.test",
             f"Authorization: {AUTH['Authorization']}".encode(), *(h.encode("latin-1") for h in extra_headers)]
    return b"\r\n".join([*lines, b"", b""])


class _Written:
    """What the proxy wrote to a raw connection, as a socket http.client can read."""

    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def raw_answer(exchange: RawExchange) -> Answer:
    """The one complete answer the proxy wrote to a raw connection."""
    response = http.client.HTTPResponse(_Written(exchange.written), method="GET")  # type: ignore[arg-type]
    response.begin()
    return Answer(response.status, response.getheaders(), response.read())


def warnings_about(logged: Events, path: str) -> list[dict[str, Any]]:
    return [e for e in logged if e.get("log_namespace") == "orgproxy" and e.get("log_level") == LogLevel.warn
            and e.get("path") == path]


def requests_counted(route: str, method: str, status: int, provider: str = "openai") -> float:
    """``orgproxy_requests_total`` for one series (the registry lives for the process)."""
    metrics.flush()
    value = metrics.installed().registry.get_sample_value(
        "orgproxy_requests_total", {"route": route, "method": method, "status": str(status), "provider": provider})
    return value or 0.0


def answered(response: Deferred[Any]) -> Callable[[], bool]:
    """Whether the client has its answer yet (``Deferred.called`` is also true while it
    waits on another Deferred, as the Agent's does)."""
    arrived: list[bool] = []

    def note(result: Any) -> Any:
        arrived.append(True)
        return result
    response.addBoth(note)
    return lambda: bool(arrived)


class Held:
    """A behaviour that keeps every request open until ``release``, then answers it."""

    def __init__(self, body: bytes):
        self.body = body
        self.requests: list[server.Request] = []

    def __call__(self, request: server.Request, received: Received) -> int:
        self.requests.append(request)
        return server.NOT_DONE_YET

    def release(self) -> None:
        for request in self.requests:
            request.setHeader(b"content-type", b"application/json")
            request.write(self.body)
            request.finish()


def in_chunks(body: bytes, size: int) -> Callable[[server.Request, Received], int]:
    """A behaviour that answers ``body`` chunked (no Content-Length), ``size`` bytes a write."""
    def answer(request: server.Request, received: Received) -> int:
        request.setHeader(b"content-type", b"application/json")
        for start in range(0, len(body), size):
            request.write(body[start:start + size])
        request.finish()
        return server.NOT_DONE_YET
    return answer


# --- upstreams that fail ----------------------------------------------------------------------

@pytest.mark.parametrize(("error", "reason"), [
    (ConnectionRefusedError(string="111: Connection refused"), "Connection was refused by other side: 111:"),
    (DNSLookupError("openai.test"), "DNS lookup failed: openai.test"),
], ids=["refused", "no such host"])
def test_an_unreachable_upstream_is_502_naming_host_port_and_reason_and_the_next_request_reaches_it(
        proxy: InMemoryProxy, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, logged: Events,
        error: Exception, reason: str) -> None:
    # What connecting does when nothing listens there (or the name does not resolve).
    monkeypatch.setattr(proxy.upstreams, "refusal", error)
    message = assert_proxy_error(proxy.get(COSTS + "?start_time=1"), 502, "upstream_unreachable")["message"]
    assert "openai.test:80" in message and reason in message  # the upstream is http://openai.test
    (warning,) = warnings_about(logged, COSTS)
    assert warning["message"] == message
    monkeypatch.undo()  # now something listens there
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("behaviour", [hold, headers_then_stall], ids=["silent", "stalls mid body"])
def test_an_upstream_too_slow_is_504_at_the_timeout_and_its_connection_dropped(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, logged: Events,
        behaviour: Callable[..., int]) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--timeout", "0.5")
    fake.on(COSTS, behaviour)
    response = proxy.start("GET", COSTS + "?start_time=1")
    has_answer = answered(response)
    proxy.advance(0.49)
    assert len(fake.received) == 1
    assert not has_answer() and fake.abandoned == []  # it is the timeout that ends it
    proxy.advance(0.01)
    assert_proxy_error(proxy.answer(response), 504, "upstream_timeout")
    assert fake.abandoned == fake.received  # the upstream connection was let go
    (warning,) = warnings_about(logged, COSTS)
    assert (warning["status"], warning["code"]) == (504, "upstream_timeout")
    assert warning["total_ms"] == pytest.approx(500)
    assert_serves_normally(proxy, fake)


def test_an_upstream_that_closes_mid_body_is_502_connection_lost(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, close_mid_body)
    assert_proxy_error(proxy.get(COSTS + "?start_time=1"), 502, "upstream_connection_lost")
    assert_serves_normally(proxy, fake)


def test_invalid_json_labelled_json_passes_untouched_with_a_warning(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                                   logged: Events) -> None:
    body = b'{"api_key_id": "key_1234567890abcdef", "truncated": '
    fake.on(COSTS, reply(body=body))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.body) == (200, body)
    (warning,) = warnings_about(logged, COSTS)
    assert (warning["event"], warning["method"], warning["problem"]) == (
        "upstream_json_invalid", "GET", "does_not_parse")
    (line,) = request_lines(logged)  # answered, with nothing named
    assert (line["status"], line["named"], line["unknown"]) == (200, 0, 0)
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_valid_json_nested_too_deeply_passes_untouched_and_is_logged_as_such(
        proxy: InMemoryProxy, fake: FakeOpenAI, logged: Events, depth: int) -> None:
    body = (b'{"api_key_id": "key_1234567890abcdef", "deep": ' + b"[" * depth + b"]" * depth + b"}")
    fake.on(COSTS, reply(body=body))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.body) == (200, body)
    (warning,) = warnings_about(logged, COSTS)
    assert warning["problem"] == "too_deep"  # not "does not parse": it does
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "chunked"])
def test_an_upstream_body_over_the_cap_is_502_too_large_and_never_shown(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, chunked: bool) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--max-response-bytes", "1000")
    body = b'{"pad": "' + b"x" * (5000 - 11) + b'"}'
    fake.on(COSTS, in_chunks(body, 100) if chunked else reply(body=body))
    answer = proxy.get(COSTS + "?start_time=1")
    assert_proxy_error(answer, 502, "upstream_response_too_large")
    assert answer.header("x-should-retry") == "false"
    assert b"xxxx" not in answer.body
    exactly = b'{"pad": "' + b"y" * (1000 - 11) + b'"}'
    fake.on(COSTS, in_chunks(exactly, 100) if chunked else reply(body=exactly))
    assert proxy.get(COSTS + "?start_time=1").body == exactly
    assert_serves_normally(proxy, fake)


def _gzip_then(mangle: Callable[[bytes], bytes]) -> Callable[..., bytes]:
    """A behaviour answering the normal page gzipped, then mangled on the way."""
    def answer(request: server.Request, received: Received) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-encoding", b"gzip")
        return mangle(gzip.compress(json.dumps(NORMAL_PAGE).encode() * 3))
    return answer


@pytest.mark.parametrize("mangle", [
    lambda data: data[:len(data) // 2],  # cut short
    lambda data: data[:-4],  # the length in the trailer missing
    lambda data: data[:20] + bytes(b ^ 0x55 for b in data[20:40]) + data[40:],  # corrupt
    lambda data: b"\x1f\x8b" + b"not really gzip",
], ids=["truncated", "no trailer", "corrupt", "not gzip"])
def test_a_corrupt_or_truncated_gzip_body_is_502_and_never_cached(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, mangle: Callable[[bytes], bytes]) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--cache-ttl", "60")
    fake.on(COSTS, _gzip_then(mangle))
    for attempt in (1, 2):
        error = assert_proxy_error(proxy.get(COSTS + "?start_time=1"), 502, "upstream_bad_encoding")
        assert "corrupt" in error["message"]
        assert len(fake.received) == attempt  # not answered from the cache the second time
    assert_serves_normally(proxy, fake)


def test_a_gzip_bomb_is_502_too_large_and_never_decompressed_past_the_cap(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import orgproxy.upstream.gunzip as gunzip_module
    produced: list[int] = []
    original = gunzip_module.Inflater.inflate

    def counting(self: Any, data: bytes) -> list[bytes]:
        pieces = original(self, data)
        produced.append(sum(map(len, pieces)))
        return pieces
    monkeypatch.setattr(gunzip_module.Inflater, "inflate", counting)
    cap = 2 * 1024 * 1024
    proxy = make_proxy("--aliases", str(aliases), "--max-response-bytes", str(cap))
    # 100 MiB in about 100 KB: a hundred gzip members of a MiB each (one stream, RFC 1952).
    bomb = gzip.compress(b"0," * (512 * 1024), compresslevel=9) * 100

    def answer(request: server.Request, received: Received) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-encoding", b"gzip")
        return bomb
    fake.on(COSTS, answer)
    assert_proxy_error(proxy.get(COSTS + "?start_time=1"), 502, "upstream_response_too_large")
    assert sum(produced) == cap + 1  # one byte past the cap, and not one more
    assert_serves_normally(proxy, fake)


# --- upstream answers that pass through as sent ---------------------------------------------------

def test_a_429_with_retry_after_comes_back_as_sent(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    body = json.dumps(OPENAI_ERROR).encode()
    fake.on(COSTS, reply(429, body, headers=[("Retry-After", "7")]))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.header("Retry-After"), answer.body) == (429, "7", body)
    assert_serves_normally(proxy, fake)


def test_a_500_with_an_html_body_comes_back_as_sent(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    body = b"<html><head><title>500</title></head><body><h1>Internal Server Error</h1>\n</body></html>\n"
    fake.on(COSTS, reply(500, body, content_type="text/html"))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.header("Content-Type"), answer.body) == (500, "text/html", body)
    assert_serves_normally(proxy, fake)


def test_a_redirect_is_returned_not_followed(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    # The Location is the fake itself: a proxy that followed it would show a second request.
    location = "http://openai.test/v1/organization/users"
    fake.on(COSTS, reply(302, b"", headers=[("Location", location)], content_type=None))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.header("Location")) == (302, location)
    assert [r.target for r in fake.received] == [(COSTS + "?start_time=1").encode()]
    assert_serves_normally(proxy, fake)


# --- the cache, under attack --------------------------------------------------------------------

def test_a_header_the_connection_header_drops_is_not_in_the_cache_key(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                                     aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--cache-ttl", "60")
    fake.on(COSTS, reply(body=NORMAL_PAGE))
    # Forwarded without OpenAI-Organization (Connection names it): OpenAI answers for the
    # key's default organization ...
    dropped = raw_answer(proxy.raw(raw_get(COSTS + "?start_time=1", "OpenAI-Organization: org_x",
                                           "Connection: OpenAI-Organization")))
    assert dropped.status == 200
    assert fake.last().header("OpenAI-Organization") is None
    # ... which is not the answer for org_x: that one is asked of OpenAI.
    for_org_x = proxy.get(COSTS + "?start_time=1", headers={**AUTH, "OpenAI-Organization": "org_x"})
    assert (for_org_x.status, for_org_x.header("X-Orgproxy-Cache")) == (200, "miss")
    assert len(fake.received) == 2 and fake.last().header("OpenAI-Organization") == b"org_x"
    # And without the header at all, the first answer is the right one.
    assert proxy.get(COSTS + "?start_time=1").header("X-Orgproxy-Cache") == "hit"


def test_two_authorization_headers_are_400_and_never_forwarded(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                              aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--cache-ttl", "60")
    for request_bytes in (raw_get(COSTS + "?start_time=1", "Authorization: Bearer sk-admin-other"),
                          raw_get(COSTS + "?start_time=1", "authorization: Bearer sk-admin-other")):
        answer = raw_answer(proxy.raw(request_bytes))
        assert_proxy_error(answer, 400, "duplicate_authorization")
        assert b"sk-admin-other" not in answer.body
    assert fake.received == []
    assert_serves_normally(proxy, fake)


def test_a_flood_of_distinct_queries_keeps_the_cache_within_its_bounds(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                                       aliases: Path) -> None:
    max_bytes, max_entries = 50_000, 12
    proxy = make_proxy("--aliases", str(aliases), "--cache-ttl", "60", "--cache-max-bytes", str(max_bytes),
                       "--cache-max-entries", str(max_entries))
    proxy.start_service()
    fake.on(COSTS, reply(body=b"{}"))
    cache = proxy.parts.front.cache
    assert cache is not None
    padding = "x" * 4000  # long queries, small answers: a key is a digest, whatever the query
    for i in range(40):
        assert proxy.get(f"{COSTS}?start_time={i}&pad={padding}").status == 200
        assert cache.stored_bytes <= max_bytes and len(cache) <= max_entries
    assert len(cache) == max_entries and cache.stored_bytes < 2000 * max_entries
    # Expired entries go on the sweep's timer, asked for again or not.
    proxy.advance(61)
    assert (len(cache), cache.stored_bytes) == (0, 0)
    assert_serves_normally(proxy, fake)


# --- alias files that are not files ------------------------------------------------------------------

def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _replace_with_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _replace_with_a_huge_file(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(1024 * 1024 * 1024)  # sparse: a GiB that takes no disk


@pytest.mark.parametrize(("replace", "reason"), [
    (_replace_with_fifo, "cannot read: not a regular file (a FIFO)"),
    (_replace_with_dev_zero, "cannot read: not a regular file (a character device)"),
    (_replace_with_a_huge_file, "larger than 16 MiB, the most alias files may hold"),
    (lambda path: path.write_text(""), "empty, where it held 5 names"),
], ids=["a FIFO", "a symlink to /dev/zero", "1 GiB", "emptied"])
def test_an_alias_path_that_is_not_a_readable_file_keeps_the_names_and_health_says_why(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path, replace: Callable[[Path], None], reason: str) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--watch", "poll")
    proxy.start_service()
    replace(aliases)
    proxy.advance(1)  # the poller looks (and, for a FIFO, would wait for a writer forever)
    health = proxy.get("/health")
    assert health.status == 200
    state = health.json()["aliases"]
    assert state["names"] == 5 and state["error"].startswith(str(aliases)) and reason in state["error"]
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("replace", [_replace_with_fifo, _replace_with_dev_zero], ids=["a FIFO", "/dev/zero"])
def test_an_alias_path_that_is_not_a_regular_file_stops_the_start_with_one_line(
        make_proxy: MakeProxy, aliases: Path, replace: Callable[[Path], None]) -> None:
    replace(aliases)
    with pytest.raises(SystemExit) as stopped:
        make_proxy("--aliases", str(aliases))
    assert str(stopped.value).startswith(f"orgproxy: alias file: {aliases}: cannot read: not a regular file")


# --- ids no log line can hold as they are -----------------------------------------------------------

def test_an_id_with_a_lone_surrogate_is_logged_escaped_and_reported(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                                   logged: Events) -> None:
    # Valid JSON; the id it holds, "key_" U+D800 "x", has no UTF-8 form.
    fake.on(COSTS, reply(body=b'{"data": [{"api_key_id": "key_\\ud800x"}, {"api_key_id": "key_plain"}]}'))
    answer = proxy.get(COSTS + "?start_time=1")
    assert answer.status == 200
    assert answer.body == (b'{"data": [{"api_key_id": "key_\\ud800x", "api_key_name": "unknown"},'
                           b' {"api_key_id": "key_plain", "api_key_name": "unknown"}]}')
    (line,) = [e for e in logged if e.get("log_namespace") == "orgproxy" and e.get("path") == COSTS
               and "unknown_ids" in e]
    assert sorted(line["unknown_ids"]) == ["key_\\ud800x", "key_plain"]
    for value in (line["line"], *line["unknown_ids"]):
        value.encode("utf-8")  # what every log observer has to do with it
    report = proxy.get("/orgproxy/unknown")
    assert report.status == 200
    assert sorted(row["id"] for row in report.json()["data"]) == ["key_plain", "key_\ud800x"]
    skeleton = proxy.get("/orgproxy/unknown?format=toml")
    assert skeleton.status == 200
    text = skeleton.body.decode("utf-8")
    assert tomllib.loads(text) is not None
    assert '"key_\\ud800x"' in text and "key_plain" in text
    assert_serves_normally(proxy, fake)


# --- clients ----------------------------------------------------------------------------------------

def test_a_client_that_leaves_cancels_its_upstream_request(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                          aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--timeout", "30")
    fake.on(COSTS, hold)
    left_before = requests_counted("proxy", "GET", 499)
    response = proxy.start("GET", COSTS + "?start_time=1")
    proxy.flush()
    assert len(fake.received) == 1 and fake.abandoned == []
    response.addErrback(lambda failure: None)  # the client's own side of leaving
    response.cancel()
    proxy.flush()  # no time passes: the cancel is the client's doing, not the timeout
    assert fake.abandoned == fake.received
    assert proxy.service.in_flight.count == 0
    assert requests_counted("proxy", "GET", 499) == left_before + 1
    assert_serves_normally(proxy, fake)


def test_beyond_max_concurrency_exactly_the_limit_is_forwarded_and_the_rest_refused(
        make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path) -> None:
    clients, limit = 100, 16
    proxy = make_proxy("--aliases", str(aliases), "--max-concurrency", str(limit))
    held = Held(json.dumps({"object": "page", "data": [{"api_key_id": NAMED_KEY}], "has_more": False}).encode())
    fake.on(COSTS, held)
    responses = [proxy.start("GET", COSTS + "?start_time=1") for _ in range(clients)]
    has_answer = [answered(response) for response in responses]
    proxy.flush()
    # While the first ``limit`` are held upstream, every other client is answered.
    assert len(held.requests) == limit
    refused = {response for response, done in zip(responses, has_answer) if done()}
    assert len(refused) == clients - limit
    held.release()
    proxy.flush()  # every connection done at once, rather than one answer at a time
    for response in responses:
        answer = proxy.answer(response)
        if response in refused:
            assert_proxy_error(answer, 503, "too_many_requests")
            assert answer.header("Retry-After") == "1"
        else:
            assert answer.status == 200
            assert answer.json()["data"][0]["api_key_name"] == "checkout-service-production"
    assert len(fake.received) == limit
    assert proxy.service.in_flight.count == 0
    assert_serves_normally(proxy, fake)


def test_the_default_concurrency_limit_is_256(make_proxy: MakeProxy) -> None:
    # The limit itself is enforced above; 257 clients in memory would cost a second.
    assert make_proxy().service.in_flight.limit == 256


# --- paths that would leave /v1/organization/ --------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/v1/organization/../chat/completions",
    "/v1/organization/%2e%2e/chat/completions",
    "/v1/organization/%2E%2E/chat/completions",
    "/v1/organization/usage%2Fcompletions",
    "/v1/organization/usage%2fcompletions",
    "/v1/organization//usage/completions",
    # Path parameters, which a gateway that drops them resolves as "..".
    "/v1/organization/..;/..;/v1/chat/completions",
    "/v1/organization/%2e%2e;/%2e%2e;/v1/chat/completions",
    "/v1/organization/..;x=1/..;x=1/v1/chat/completions",
    "/v1/organization/..%3b/..%3B/v1/chat/completions",
    "/v1/projects/..;/..;/v1/chat/completions",
    "/v1/projects/proj_abc/..;/..;/..;/chat/completions",
    "/v1/chat/completions",
])
def test_a_path_trick_is_404_and_never_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI, target: str) -> None:
    exchange = proxy.raw(raw_get(target + "?start_time=1"))
    assert_proxy_error(raw_answer(exchange), 404, "not_found")
    assert fake.received == []
    assert_serves_normally(proxy, fake)


# --- requests that are not valid HTTP ---------------------------------------------------------------

TARGET = (COSTS + "?start_time=1").encode()


@pytest.mark.parametrize("request_bytes", [
    raw_get(TARGET, "X-Test: abc\rInjected: yes"),
    raw_get(TARGET, "X-Test: abc\x00Injected: yes"),
    raw_get(TARGET, "Content-Length: 1", "Content-Length: 2") + b"ab",
    b"POST /v1/organization/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/organization/costs HTTP/1.1\r\n\r\n",
    b"GET " + TARGET + b"\r\n",  # HTTP/0.9
], ids=["bare CR in a header", "NUL in a header", "two Content-Lengths", "Content-Length and chunked",
        "HTTP/0.9"])
def test_a_malformed_request_is_400_and_the_connection_closed(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                             request_bytes: bytes) -> None:
    exchange = proxy.raw(request_bytes)
    answer = raw_answer(exchange)
    assert_proxy_error(answer, 400, "bad_request")
    assert (answer.header("Connection"), answer.header("x-should-retry")) == ("close", "false")
    assert exchange.closed_by_proxy
    assert fake.received == []
    assert_serves_normally(proxy, fake)


def test_folded_header_lines_never_reach_the_upstream_as_a_header(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body={"ok": True}))
    for fold in ("X-Test: abc\r\n Injected: yes", "X-Test: abc\r\n\tInjected: yes"):
        answer = raw_answer(proxy.raw(raw_get(TARGET, fold)))
        # Either refused (RFC 9112 5.2) or unfolded into one line before forwarding.
        assert answer.status in (200, 400), (answer.status, answer.body[:500])
        if answer.status == 400:
            assert_proxy_error(answer, 400, "bad_request")
    for received in fake.received:
        for name, value in received.headers:
            assert name.lower() != b"injected", received.headers
            assert b"\r" not in value and b"\n" not in value, received.headers
    assert_serves_normally(proxy, fake)


def test_a_request_line_over_16_kib_is_414(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    for size in (16 * 1024, 64 * 1024):
        exchange = proxy.raw(raw_get(TARGET + b"&x=" + b"a" * size))
        assert_proxy_error(raw_answer(exchange), 414, "uri_too_long")
        assert exchange.closed_by_proxy
    assert fake.received == []
    # Under the limit, the query goes upstream whole. (The request line counts towards
    # the 16 KiB of headers too: Twisted's budget for the whole head.)
    target = TARGET + b"&x=" + b"a" * (15 * 1024)
    assert raw_answer(proxy.raw(raw_get(target))).status == 200
    assert fake.last().target == target
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("headers", [
    ["X-Big: " + "b" * (20 * 1024)],
    [f"X-Many-{i}: " + "b" * 100 for i in range(200)],
], ids=["one 20 KiB header", "200 headers of 100 bytes"])
def test_request_headers_over_16_kib_are_431(proxy: InMemoryProxy, fake: FakeOpenAI, headers: list[str]) -> None:
    exchange = proxy.raw(raw_get(TARGET, *headers))
    assert_proxy_error(raw_answer(exchange), 431, "headers_too_large")
    assert exchange.closed_by_proxy
    assert fake.received == []
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("count", [501, 10_000])
def test_too_many_request_headers_are_431_with_its_reason_phrase(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                                count: int) -> None:
    # Small enough together to stay under 16 KiB when there are 501 of them.
    exchange = proxy.raw(raw_get(TARGET, *(f"x{i}: y" for i in range(count))))
    assert exchange.written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert_proxy_error(raw_answer(exchange), 431, "headers_too_large")
    assert exchange.closed_by_proxy and fake.received == []
    assert_serves_normally(proxy, fake)


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "DELETE"])
def test_the_asterisk_target_gets_an_openai_shaped_404(proxy: InMemoryProxy, fake: FakeOpenAI, method: str) -> None:
    answer = raw_answer(proxy.raw(f"{method} * HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    assert_proxy_error(answer, 404, "not_found")
    assert fake.received == []
    # And like any other path, only for callers let in (from outside --allow-from, none).
    assert proxy.raw(f"{method} * HTTP/1.1\r\nHost: x\r\n\r\n".encode(), client="8.8.8.8").refused_at_accept
    assert_serves_normally(proxy, fake)


# --- slow clients (too many of them: test_admission.py) -------------------------------------------

def test_a_request_trickling_in_is_cut_off_at_the_header_timeout_however_its_bytes_trickle(
        proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    closed_before = scraped("orgproxy_connections_closed_total", {"reason": "header_timeout"})
    request = raw_get(TARGET)
    exchange = proxy.raw(request[:5])
    for byte in range(5, 14):  # a byte a second: each would reset an idle timer
        proxy.advance(1)
        exchange.send(request[byte:byte + 1])
        assert not exchange.closed_by_proxy
    proxy.advance(0.99)
    assert not exchange.closed_by_proxy
    proxy.advance(0.01)  # ten seconds after its first byte
    assert_proxy_error(raw_answer(exchange), 408, "request_timeout")
    assert exchange.closed_by_proxy and fake.received == []
    assert scraped("orgproxy_connections_closed_total", {"reason": "header_timeout"}) == closed_before + 1
    assert_serves_normally(proxy, fake)


def test_the_header_timeout_counts_the_body_and_can_be_set(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                           aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--header-timeout", "2.5")
    head = b"POST /v1/organization/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    exchange = proxy.raw(head + b"{")
    proxy.advance(2.49)
    exchange.send(b'"name": ')
    assert not exchange.closed_by_proxy
    proxy.advance(0.01)
    assert_proxy_error(raw_answer(exchange), 408, "request_timeout")
    assert fake.received == []
    assert_serves_normally(proxy, fake)


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout_without_an_answer(
        proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    exchange = proxy.raw(b"")
    proxy.advance(9.99)
    assert not exchange.closed_by_proxy
    proxy.advance(0.01)
    assert exchange.closed_by_proxy and exchange.written == b""
    assert_serves_normally(proxy, fake)


def test_a_kept_alive_connection_waits_for_its_next_request_without_a_deadline(
        proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=NORMAL_PAGE))
    exchange = proxy.raw(raw_get(TARGET))
    assert exchange.written.startswith(b"HTTP/1.1 200 ")
    proxy.advance(30)  # idle between requests: only Twisted's idle timeout applies
    assert not exchange.closed_by_proxy
    exchange.send(raw_get(TARGET))
    proxy.flush()
    assert exchange.written.count(b"HTTP/1.1 200 ") == 2 and not exchange.closed_by_proxy
    exchange.send(raw_get(TARGET)[:10])  # the next one starts, and its deadline with it
    proxy.advance(10)
    assert exchange.closed_by_proxy and exchange.written.endswith(json.dumps(
        {"error": {"message": "The request did not arrive whole within 10 seconds (--header-timeout).",
                   "type": "invalid_request_error", "param": None, "code": "request_timeout"}},
        separators=(",", ":")).encode())


# --- the admin key ---------------------------------------------------------------------------------

def test_the_admin_key_is_in_no_log_event_and_no_error_body(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                             aliases: Path, logged: Events) -> None:
    # At debug level, so that every event the daemon can log is looked at.
    proxy = make_proxy("--aliases", str(aliases), "--timeout", "1", "--max-response-bytes", "300",
                       "--log-level", "debug")
    try:
        fake.on("/v1/organization/usage/completions", hold)
        fake.on(COSTS, reply(body=b"[" + b"0, " * 300 + b"0]"))
        fake.on("/v1/organization/audit_logs", close_mid_body)
        slow = proxy.start("GET", "/v1/organization/usage/completions?start_time=1")
        proxy.advance(1)
        answers = [
            proxy.answer(slow),
            proxy.get(COSTS + "?start_time=1"),
            proxy.get("/v1/organization/audit_logs"),
            proxy.get(COSTS + "?start_time=1&api_key_names=nobody"),
            proxy.get("/v1/organization/../models"),
            proxy.get("/v1/models"),
            raw_answer(proxy.raw(raw_get(TARGET, "X-Test: a\rb"))),
            raw_answer(proxy.raw(raw_get(TARGET + b"&x=" + b"a" * 20_000))),
            raw_answer(proxy.raw(raw_get(TARGET, "X-Big: " + "b" * 20_000))),
        ]
        assert [a.status for a in answers] == [504, 502, 502, 400, 404, 404, 400, 414, 431]
        for answer in answers:
            assert TOKEN.encode() not in answer.body
            assert all(TOKEN not in value for _, value in answer.headers)
        assert logged, "nothing was logged: the check below would be empty"
        assert not [event for event in logged if TOKEN in repr(event)]
        assert_serves_normally(proxy, fake)
    finally:
        set_level("info")  # the level is the process's: leave it as the other tests expect it
