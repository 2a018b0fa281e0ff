"""Real sockets and process memory: the daemon (``twistd -n orgproxy``) under many clients
at once, and under thousands of requests with its resident memory measured.

The fake OpenAI runs on a real socket in a thread of the test process. Nothing sleeps to
synchronise: every wait is on an observable fact (requests arrived upstream, answers
received) with a bounded deadline. (What these loads exercise in the proxy's logic, the
concurrency limit and every fault, is tested in memory in ``tests/web/test_faults.py``.)
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import AUTH, TOKEN, serving
from tests.support.answers import Answer
from tests.support.daemon import Daemon
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, reply

# A guard against a test that waits forever, never a way to wait.
pytestmark = pytest.mark.timeout(60)

COSTS = "/v1/organization/costs"
COMPLETIONS = "/v1/organization/usage/completions"
NAMED_KEY = "key_1234567890abcdef"  # "checkout-service-production" in etc/aliases.toml
NAMED = b'"api_key_name": "checkout-service-production"'
DEADLINE = 30.0  # seconds any wait may take


class NoDelayHandler(Handler):
    # The fake writes its headers and its body in two sends; with Nagle's algorithm on,
    # each of them waits for the proxy's delayed ACK (40 ms), which would make the load
    # measure TCP timers rather than the daemon.
    disable_nagle_algorithm = True


@pytest.fixture(scope="module")
def fast_upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.RequestHandlerClass = NoDelayHandler
    server.socket.listen(1024)  # room for every connection the daemon opens at once (the default is 5)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def loaded_daemon(fast_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module (its start is a second of the budget), with the default
    --max-concurrency (256) and the example alias map."""
    cwd = tmp_path_factory.mktemp("load")
    aliases = Path(__file__).resolve().parents[2] / "etc" / "aliases.toml"
    with serving(["--upstream", fast_upstream.url, "--aliases", str(aliases), "--timeout", "30"], cwd) as daemon:
        yield daemon


def raw_get(target: str, *extra_headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: orgproxy.test", f"Authorization: {AUTH['Authorization']}",
             *extra_headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def test_200_concurrent_clients_are_all_held_upstream_at_once_then_all_answered(
        loaded_daemon: Daemon, fast_upstream: FakeUpstream) -> None:
    clients = 200
    state = threading.Condition()
    arrived = 0
    body = json.dumps({"object": "page", "data": [{"api_key_id": NAMED_KEY}], "has_more": False}).encode()

    def held_until_all_arrived(handler: Handler, received: Received) -> None:
        # Each request waits upstream until every client's request is there: so all of them
        # are in flight at once, on 200 client sockets and 200 upstream connections.
        nonlocal arrived
        with state:
            arrived += 1
            state.notify_all()
            everyone = state.wait_for(lambda: arrived >= clients, timeout=DEADLINE)
        if everyone:
            reply(body=body)(handler, received)

    fast_upstream.on(COSTS, held_until_all_arrived)
    barrier = threading.Barrier(clients)
    request = raw_get(COSTS + "?start_time=1", "Connection: close")

    def client() -> Answer:
        try:
            with socket.create_connection(("127.0.0.1", loaded_daemon.port), timeout=DEADLINE) as sock:
                barrier.wait(DEADLINE)  # every connection is open before any request is sent
                sock.sendall(request)
                response = http.client.HTTPResponse(sock, method="GET")
                response.begin()
                return Answer(response.status, response.getheaders(), response.read())
        except BaseException:
            barrier.abort()  # the others stop waiting for this one
            raise

    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = [future.result(timeout=DEADLINE) for future in [pool.submit(client) for _ in range(clients)]]
    with state:
        assert arrived == clients, f"{arrived} of {clients} requests reached the upstream"
    assert Counter(answer.status for answer in answers) == {200: clients}
    assert all(NAMED in answer.body for answer in answers)
    assert TOKEN not in loaded_daemon.output


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_thousands_of_mixed_requests_leave_resident_memory_bounded(loaded_daemon: Daemon,
                                                                    fast_upstream: FakeUpstream) -> None:
    # An 8 KB page of usage rows (named, named, unknown, null): keeping each page (the
    # upstream's and the amended one) would be 11 MB over the measured requests, and
    # anything else kept per request, 2 KB, would be 3.2 MB: both beyond the bound below
    # (where the daemon's RSS grows by a few dozen KiB).
    ids = [NAMED_KEY, "key_abcdef1234567890", "key_unknown_fixed_1", None]
    rows = [{"api_key_id": ids[i % 4], "project_id": "proj_abc", "input_tokens": i} for i in range(100)]
    page = json.dumps({"object": "page", "has_more": False,
                       "data": [{"object": "bucket", "results": rows}]}).encode()
    assert len(page) > 8_000
    fast_upstream.on(COMPLETIONS, reply(body=page))
    fast_upstream.on("/v1/organization/audit_logs", reply(500, {"error": {
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
    threads, warm_up, measured = 4, 400, 1_600
    connections = [http.client.HTTPConnection("127.0.0.1", loaded_daemon.port, timeout=DEADLINE)
                   for _ in range(threads)]

    def run_batch(connection: http.client.HTTPConnection, count: int, offset: int) -> Counter[int]:
        seen: Counter[int] = Counter()
        for i in range(count):
            target, status = mix[(offset + i) % len(mix)]
            connection.request("GET", target, headers=AUTH)  # kept alive: one connection per thread
            response = connection.getresponse()
            body = response.read()
            assert response.status == status, (target, response.status, body[:300])
            if target.startswith(COMPLETIONS):
                assert body.count(NAMED) == len(rows) // 4, body[:300]
            seen[status] += 1
        return seen

    def phase(per_thread: int) -> Counter[int]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = [pool.submit(run_batch, connection, per_thread, n) for n, connection in enumerate(connections)]
            return sum((result.result(timeout=DEADLINE) for result in results), Counter())

    try:
        started = time.monotonic()
        seen = phase(warm_up // threads)
        before = rss_kib(loaded_daemon.process.pid)
        seen += phase(measured // threads)
        after = rss_kib(loaded_daemon.process.pid)
        elapsed = time.monotonic() - started
    finally:
        for connection in connections:
            connection.close()
    total = warm_up + measured
    print(f"{total} requests in {elapsed:.1f} s; daemon RSS {before} KiB after {warm_up}, {after} KiB at the end")
    assert sum(seen.values()) == total
    assert seen == {200: total * 5 // 10, 404: total * 2 // 10, 400: total // 10, 500: total * 2 // 10}
    assert after - before < 3 * 1024, f"RSS grew {before} KiB -> {after} KiB over {measured} requests"
