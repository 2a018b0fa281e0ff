"""Fault injection against the real daemon (``twistd -n orgproxy``), in front of the fake OpenAI.

One parametrized test: each case sets up a fault, makes its request(s) and checks the answer
(status, and OpenAI's error shape with its code where the proxy answers itself); then, for
every case, a normal request must still come back 200 from a normal fake route, and the
daemon's output must hold no traceback and no admin key.

Nothing here sleeps to synchronise: every wait is on an observable fact (a log line, an
event set by the fake upstream, an answer) with a bounded deadline.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import AUTH, TOKEN, assert_clean_output
from tests.support.daemon import Daemon, free_port
from tests.support.tcp_upstream import (
    Behaviour,
    FakeUpstream,
    Handler,
    Received,
    close_mid_body,
    headers_then_stall,
    hold,
    reply,
)
from tests.support.raw_http import Answer, call

COSTS = "/v1/organization/costs"
COMPLETIONS = "/v1/organization/usage/completions"
# The route every case asks for afterwards, to see that the daemon still serves.
NORMAL = "/v1/organization/projects"
NAMED_KEY = "key_1234567890abcdef"  # "checkout-service-production" in etc/aliases.toml
NORMAL_PAGE = {"object": "list", "data": [{"id": "proj_abc", "api_key_id": NAMED_KEY}], "has_more": False}
OPENAI_ERROR = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                          "param": None, "code": "rate_limit_exceeded"}}
DEADLINE = 10.0  # seconds any single answer may take


class NoDelayHandler(Handler):
    # The fake writes its headers and its body in two sends; with Nagle's algorithm on,
    # each of them waits for the proxy's delayed ACK (40 ms), which would make the many-requests
    # case measure TCP timers rather than the daemon.
    disable_nagle_algorithm = True


class UpstreamOnPort(FakeUpstream):
    """The fake upstream on a port chosen beforehand (one the daemon was already pointed at)."""

    def __init__(self, port: int) -> None:
        self.wanted_port = port
        super().__init__()

    def server_bind(self) -> None:
        self.server_address = ("127.0.0.1", self.wanted_port)
        super().server_bind()


@dataclass
class Context:
    daemon: Daemon
    upstream: FakeUpstream
    upstream_port: int
    cleanups: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Context], None]
    options: tuple[str, ...] | None = None  # None: the conftest ``daemon`` fixture
    upstream_closed: bool = False  # point --upstream at a port nobody listens on


# --- helpers ------------------------------------------------------------------------------

def raw_exchange(port: int, data: bytes, timeout: float = DEADLINE) -> Answer:
    """Send ``data`` as is over a new connection and parse the one answer that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before reading it all: the answer is still to be read
        response = http.client.HTTPResponse(sock, method="GET")
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, ConnectionError) as e:
            raise AssertionError(f"no complete HTTP answer from the daemon: {e!r}") from e
        return Answer(response.status, response.getheaders(), body)


def raw_get(target: str, *extra_headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: orgproxy.test", f"Authorization: {AUTH['Authorization']}",
             *extra_headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def assert_proxy_error(answer: Answer, status: int, code: str) -> dict:
    assert answer.status == status, (answer.status, answer.headers, answer.body[:500])
    assert answer.header("Content-Type") == "application/json", answer.headers
    error = answer.error()
    assert error["code"] == code, error
    return error


def arrival_noted(event: threading.Event, then: Behaviour) -> Behaviour:
    """``then``, after setting ``event`` to say the request reached the upstream."""
    def behaviour(handler: Handler, received: Received) -> None:
        event.set()
        then(handler, received)
    return behaviour


def forwarded(upstream: FakeUpstream, path: str) -> list[Received]:
    return [r for r in list(upstream.received) if r.target.split(b"?", 1)[0] == path.encode()]


def assert_serves_normally(ctx: Context) -> None:
    answer = call(ctx.daemon.url, NORMAL, timeout=DEADLINE)
    assert answer.status == 200, (answer.status, answer.body[:500])
    assert answer.json()["data"] == [{"id": "proj_abc", "api_key_id": NAMED_KEY,
                                      "api_key_name": "checkout-service-production"}]


# --- the cases ------------------------------------------------------------------------------

def upstream_refused(ctx: Context) -> None:
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert_proxy_error(answer, 502, "upstream_unreachable")
    # Now something listens there: the next request must reach it.
    ctx.upstream = UpstreamOnPort(ctx.upstream_port).start()
    ctx.cleanups.append(ctx.upstream.stop)
    ctx.upstream.on(NORMAL, reply(body=NORMAL_PAGE))


def _upstream_too_slow(ctx: Context, behaviour: Behaviour, what: str) -> None:
    ctx.upstream.on(COSTS, behaviour)
    started = time.monotonic()
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert_proxy_error(answer, 504, "upstream_timeout")
    assert time.monotonic() - started < 5, "the 0.5 s timeout was not what ended the request"
    assert ctx.upstream.cancelled.wait(10), f"the proxy kept the {what} upstream connection open"


def upstream_silent(ctx: Context) -> None:
    _upstream_too_slow(ctx, hold(), "silent")


def upstream_stalled_body(ctx: Context) -> None:
    _upstream_too_slow(ctx, headers_then_stall(), "stalled")


def upstream_closed_mid_body(ctx: Context) -> None:
    ctx.upstream.on(COSTS, close_mid_body)
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert_proxy_error(answer, 502, "upstream_connection_lost")


def invalid_json_labelled_json(ctx: Context) -> None:
    body = b'{"api_key_id": "key_1234567890abcdef", "truncated": '
    ctx.upstream.on(COSTS, reply(body=body))
    before = len(ctx.daemon.lines)
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert (answer.status, answer.body) == (200, body)
    line = ctx.daemon.wait_for("does not parse", start=before, timeout=DEADLINE)
    assert COSTS in line


def body_over_the_cap(ctx: Context) -> None:
    body = b'{"pad": "' + b"x" * (5000 - 11) + b'"}'
    assert len(body) == 5000
    ctx.upstream.on(COSTS, reply(body=body))
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert_proxy_error(answer, 502, "upstream_response_too_large")
    assert answer.header("x-should-retry") == "false"
    assert b"xxxx" not in answer.body


def rate_limited(ctx: Context) -> None:
    body = json.dumps(OPENAI_ERROR).encode()
    ctx.upstream.on(COSTS, reply(429, body, headers=[("Retry-After", "7")]))
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert answer.status == 429
    assert answer.header("Retry-After") == "7"
    assert answer.body == body


def upstream_500_html(ctx: Context) -> None:
    body = b"<html><head><title>500</title></head><body><h1>Internal Server Error</h1>\n</body></html>\n"
    ctx.upstream.on(COSTS, reply(500, body, content_type="text/html"))
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert (answer.status, answer.header("Content-Type"), answer.body) == (500, "text/html", body)


def redirect_not_followed(ctx: Context) -> None:
    # The Location is the fake itself: a proxy that followed it would show a second request.
    location = ctx.upstream.url + "/v1/organization/users"
    ctx.upstream.on(COSTS, reply(302, b"", headers=[("Location", location)], content_type=None))
    answer = call(ctx.daemon.url, COSTS + "?start_time=1", timeout=DEADLINE)
    assert (answer.status, answer.header("Location")) == (302, location)
    assert [r.target for r in ctx.upstream.received] == [(COSTS + "?start_time=1").encode()]


def client_disconnects(ctx: Context) -> None:
    arrived = threading.Event()
    ctx.upstream.on(COSTS, arrival_noted(arrived, hold()))
    before = len(ctx.daemon.lines)
    with socket.create_connection(("127.0.0.1", ctx.daemon.port), timeout=DEADLINE) as client:
        client.sendall(raw_get(COSTS + "?start_time=1"))
        assert arrived.wait(DEADLINE), "the request never reached the upstream"
    # The daemon runs with --timeout 30: a cancel within 10 s is the client's doing.
    assert ctx.upstream.cancelled.wait(10), "the upstream request outlived its client"
    ctx.daemon.wait_for("the client left", start=before, timeout=DEADLINE)


def path_trick(target: str) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        answer = call(ctx.daemon.url, target + "?start_time=1", timeout=DEADLINE)
        assert_proxy_error(answer, 404, "not_found")
        assert ctx.upstream.received == []
    return run


def bare_cr_in_a_header(ctx: Context) -> None:
    answer = raw_exchange(ctx.daemon.port, raw_get(COSTS + "?start_time=1", "X-Test: abc\rInjected: yes"))
    assert_proxy_error(answer, 400, "bad_request")
    assert ctx.upstream.received == []


def folded_header_lines(ctx: Context) -> None:
    ctx.upstream.on(COSTS, reply(body={"ok": True}))
    for fold in ("X-Test: abc\r\n Injected: yes", "X-Test: abc\r\n\tInjected: yes"):
        answer = raw_exchange(ctx.daemon.port, raw_get(COSTS + "?start_time=1", fold))
        # Either refused (RFC 9112 5.2) or unfolded into one line before forwarding.
        assert answer.status in (200, 400), (answer.status, answer.body[:500])
        if answer.status == 400:
            assert_proxy_error(answer, 400, "bad_request")
    for received in ctx.upstream.received:
        for name, value in received.headers:
            assert name.lower() != "injected", received.headers
            assert not ("Injected" in value and ("\r" in value or "\n" in value)), received.headers


def uri_too_long(ctx: Context) -> None:
    target = COSTS + "?start_time=1&x=" + "a" * (64 * 1024)
    answer = raw_exchange(ctx.daemon.port, raw_get(target))
    assert_proxy_error(answer, 414, "uri_too_long")
    assert ctx.upstream.received == []


def headers_too_large(ctx: Context) -> None:
    answer = raw_exchange(ctx.daemon.port, raw_get(COSTS + "?start_time=1", "X-Big: " + "b" * (20 * 1024)))
    assert_proxy_error(answer, 431, "headers_too_large")
    assert ctx.upstream.received == []


def concurrent_clients(clients: int, cap: int) -> Callable[[Context], None]:
    """``clients`` connections opened at once, each sending one GET. The fake upstream holds
    every request it gets until each client is either forwarded (counted at the upstream) or
    answered; so exactly ``min(cap, clients)`` are in flight at once, and every other client
    must have been refused with 503 meanwhile. Then the held requests are let go: 200s."""

    def run(ctx: Context) -> None:
        upstream = ctx.upstream
        upstream.socket.listen(2048)  # room for every forwarded connection (socketserver's default is 5)
        state = threading.Condition()
        arrived = answered = 0
        release = threading.Event()
        ctx.cleanups.append(release.set)  # never leave the upstream's threads held
        request = raw_get(COSTS + "?start_time=1", "Connection: close")
        body = json.dumps({"object": "page", "data": [{"api_key_id": NAMED_KEY}], "has_more": False}).encode()

        def held(handler: Handler, received: Received) -> None:
            nonlocal arrived
            with state:
                arrived += 1
                state.notify_all()
            release.wait(30)
            reply(body=body)(handler, received)

        upstream.on(COSTS, held)
        barrier = threading.Barrier(clients)

        def client() -> Answer:
            nonlocal answered
            try:
                with socket.create_connection(("127.0.0.1", ctx.daemon.port), timeout=30) as sock:
                    barrier.wait(30)  # every connection is open before any request is sent
                    sock.sendall(request)
                    response = http.client.HTTPResponse(sock, method="GET")
                    response.begin()
                    answer = Answer(response.status, response.getheaders(), response.read())
            except BaseException:
                barrier.abort()
                raise
            with state:
                answered += 1
                state.notify_all()
            return answer

        with ThreadPoolExecutor(max_workers=clients) as pool:
            futures = [pool.submit(client) for _ in range(clients)]
            with state:
                settled = state.wait_for(lambda: arrived + answered >= clients, timeout=40)
                seen = (arrived, answered)
            release.set()
            answers = [future.result(timeout=40) for future in futures]
        assert settled, f"clients neither forwarded nor answered: {seen} of {clients}"
        in_flight = min(cap, clients)
        assert seen == (in_flight, clients - in_flight), \
            f"(forwarded at once, refused) was {seen}, not {(in_flight, clients - in_flight)}"
        statuses = Counter(answer.status for answer in answers)
        expected = {200: in_flight, 503: clients - in_flight}
        assert dict(statuses) == {status: n for status, n in expected.items() if n}, statuses
        for answer in answers:
            if answer.status == 200:
                assert answer.json()["data"][0]["api_key_name"] == "checkout-service-production"
            else:
                assert_proxy_error(answer, 503, "too_many_requests")
                assert answer.header("Retry-After"), answer.headers
        assert len(forwarded(upstream, COSTS)) == in_flight

    return run


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def ten_thousand_mixed_requests(ctx: Context) -> None:
    ids = [NAMED_KEY, "key_abcdef1234567890", "key_unknown_fixed_1", None]
    page = json.dumps({"object": "page", "has_more": False, "data": [{"object": "bucket", "results": [
        {"api_key_id": key, "project_id": "proj_abc", "input_tokens": i} for i, key in enumerate(ids)]}]})
    ctx.upstream.RequestHandlerClass = NoDelayHandler
    ctx.upstream.on(COMPLETIONS, reply(body=page))
    ctx.upstream.on("/v1/organization/audit_logs", reply(500, {"error": {
        "message": "The server had an error", "type": "server_error", "param": None, "code": None}}))
    # (target, expected status), in a fixed rotation: 4 in 10 are named pages.
    mix = [
        (COMPLETIONS + "?start_time=1&group_by=api_key_id", 200),
        ("/v1/organization/../chat/completions", 404),
        (COMPLETIONS + "?start_time=1&group_by=api_key_id", 200),
        (COSTS + "?start_time=1&api_key_names=nobody", 400),
        ("/health", 200),
        (COMPLETIONS + "?start_time=1&group_by=api_key_id", 200),
        ("/v1/organization/audit_logs", 500),
        ("/v1/organization/%2e%2e/v1/models", 404),
        (COMPLETIONS + "?start_time=1&group_by=api_key_id", 200),
        ("/v1/organization/audit_logs", 500),
    ]
    threads, total, warm_up = 4, 10_000, 1_000
    connections = [http.client.HTTPConnection("127.0.0.1", ctx.daemon.port, timeout=DEADLINE)
                   for _ in range(threads)]
    ctx.cleanups.extend(connection.close for connection in connections)

    def run_batch(connection: http.client.HTTPConnection, count: int, offset: int) -> Counter:
        seen: Counter = Counter()
        for i in range(count):
            target, status = mix[(offset + i) % len(mix)]
            connection.request("GET", target, headers=AUTH)
            response = connection.getresponse()
            body = response.read()
            assert response.status == status, (target, response.status, body[:300])
            if target.startswith(COMPLETIONS):
                assert b'"api_key_name": "checkout-service-production"' in body, body[:300]
            seen[status] += 1
        return seen

    def phase(per_thread: int) -> Counter:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = [pool.submit(run_batch, connection, per_thread, n)
                       for n, connection in enumerate(connections)]
            return sum((result.result(timeout=60) for result in results), Counter())

    started = time.monotonic()
    seen = phase(warm_up // threads)
    before = rss_kib(ctx.daemon.process.pid)
    seen += phase((total - warm_up) // threads)
    after = rss_kib(ctx.daemon.process.pid)
    elapsed = time.monotonic() - started
    print(f"{total} requests in {elapsed:.1f} s; daemon RSS {before} KiB after {warm_up}, {after} KiB at the end")
    assert sum(seen.values()) == total
    assert set(seen) == {200, 400, 404, 500}
    assert after - before < 20 * 1024, f"RSS grew {before} KiB -> {after} KiB over {total - warm_up} requests"
    assert elapsed < 60, f"{total} requests took {elapsed:.1f} s"


CASES = [
    Case("upstream refused", upstream_refused, options=(), upstream_closed=True),
    Case("upstream silent", upstream_silent, options=("--timeout", "0.5")),
    Case("upstream stalls mid body", upstream_stalled_body, options=("--timeout", "0.5")),
    Case("upstream closes mid body", upstream_closed_mid_body),
    Case("invalid JSON labelled JSON", invalid_json_labelled_json),
    Case("upstream body over the cap", body_over_the_cap, options=("--max-response-bytes", "1000")),
    Case("429 with Retry-After", rate_limited),
    Case("500 with an HTML body", upstream_500_html),
    Case("302 not followed", redirect_not_followed),
    Case("client disconnects mid request", client_disconnects, options=("--timeout", "30")),
    *[Case(f"path trick {target}", path_trick(target)) for target in (
        "/v1/organization/../chat/completions",
        "/v1/organization/%2e%2e/chat/completions",
        "/v1/organization/usage%2Fcompletions",
        "/v1/organization//usage/completions",
    )],
    Case("bare CR in a header value", bare_cr_in_a_header),
    Case("folded header lines", folded_header_lines),
    Case("64 KiB query string", uri_too_long),
    Case("20 KiB header", headers_too_large),
    Case("500 clients, max concurrency 64", concurrent_clients(500, 64),
         options=("--max-concurrency", "64", "--timeout", "30")),
    Case("500 clients, default max concurrency", concurrent_clients(500, 256), options=("--timeout", "30")),
    Case("256 clients, default max concurrency", concurrent_clients(256, 256), options=("--timeout", "30")),
    Case("10000 mixed requests", ten_thousand_mixed_requests),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case: Case, upstream: FakeUpstream, aliases: Path, tmp_path: Path,
               request: pytest.FixtureRequest) -> None:
    upstream.on(NORMAL, reply(body=NORMAL_PAGE))
    upstream_port = free_port() if case.upstream_closed else upstream.server_address[1]
    if case.options is None:
        daemon: Daemon = request.getfixturevalue("daemon")
    else:
        daemon = Daemon(["--upstream", f"http://127.0.0.1:{upstream_port}", "--aliases", str(aliases),
                         "--timeout", "5", *case.options], cwd=tmp_path)
    ctx = Context(daemon, upstream, upstream_port)
    try:
        if case.options is not None:
            daemon.wait_ready()
        case.run(ctx)
        assert_serves_normally(ctx)
        assert_clean_output(daemon)
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
        if case.options is not None:
            code = daemon.stop()
    if case.options is not None:
        assert code == 0, daemon.output
        assert_clean_output(daemon)
    assert TOKEN not in daemon.output
