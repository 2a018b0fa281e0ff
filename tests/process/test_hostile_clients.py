"""The real daemon under a low open-files limit, with hundreds of clients trickling their
requests in a byte at a time, and with its alias path turned into a FIFO: a normal client
is still answered, the daemon never runs out of file descriptors, and it stops as asked.

(The deadline, the cap and the accept errors said once a minute are tested in memory, on a
clock, in ``tests/web/test_faults.py`` and ``tests/web/test_connections.py``, and a real
port's EMFILE in ``tests/test_twisted_private.py``; here the point is the process: its
real limit, its real sockets, its real thread pool.)
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_clean_output
from tests.support.answers import AUTH
from tests.support.daemon import Daemon
from tests.support.raw_http import call
from tests.support.tcp_upstream import FakeUpstream, reply

# A guard against a test that waits forever, never a way to wait.
pytestmark = pytest.mark.timeout(60)

COSTS = "/v1/organization/costs"
DEADLINE = 20.0  # seconds any wait may take
FILES_LIMIT = 256
CLIENTS = 400  # trickling ones: more than the daemon could hold open under FILES_LIMIT
PARTIAL = b"GET /v1/organization/costs?start_time=1 HTTP/1.1\r\nHost: orgproxy.test\r\nX-Slow: "


def open_files_limited_to(count: int) -> Callable[[], None]:
    def limit() -> None:  # runs in the child, before twistd
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))
    return limit


def trickling_clients(daemon: Daemon, count: int) -> list[socket.socket]:
    """``count`` connections, each with the first bytes of a request and no more yet."""
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", daemon.port), timeout=DEADLINE)
        client.setblocking(False)
        try:
            client.send(PARTIAL[:8])
        except OSError:
            pass  # closed at once by the daemon: it is over its cap
        clients.append(client)
    return clients


def trickle(clients: list[socket.socket]) -> None:
    """One more byte from every client still connected."""
    for client in clients:
        try:
            client.send(b"x")
        except OSError:
            pass


def answered_within(deadline: float, ask: Callable[[], int]) -> int:
    """The status of the first attempt of ``ask`` that gets an answer, retrying while the
    connection is refused or closed (the daemon closes connections beyond its cap)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return ask()
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < end, "never answered"
            time.sleep(0.05)  # between attempts of a client retrying, not to synchronise


def closed_total(daemon: Daemon, reason: str) -> float:
    body = call(daemon.url, "/metrics").body.decode()
    prefix = f'orgproxy_connections_closed_total{{reason="{reason}"}} '
    (line,) = [line for line in body.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


@pytest.fixture
def costs_upstream(upstream: FakeUpstream) -> FakeUpstream:
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": "key_1234567890abcdef"}]}))
    return upstream


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    clients: list[socket.socket] = []
    yield clients
    for client in clients:
        client.close()


def test_hundreds_of_trickling_clients_never_keep_a_normal_client_from_being_answered(
        costs_upstream: FakeUpstream, aliases: Path, tmp_path: Path, closing: list[socket.socket]) -> None:
    # The defaults derive the cap from the limit: 256 - 32 upstream - 96 kept = 128.
    # A header timeout long enough that more connections than the cap are open at once
    # however slowly this machine opens them (each is cut off that long after it came).
    daemon = Daemon(["--upstream", costs_upstream.url, "--aliases", str(aliases), "--max-concurrency", "32",
                     "--header-timeout", "2"], cwd=tmp_path, preexec_fn=open_files_limited_to(FILES_LIMIT))
    try:
        daemon.wait_ready()
        kept = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=DEADLINE)  # a client already in
        kept.request("GET", COSTS + "?start_time=1", headers=AUTH)
        assert kept.getresponse().read() and kept.sock is not None
        kept_socket = kept.sock
        closing.extend(trickling_clients(daemon, CLIENTS))
        # While they trickle (a byte each, every tenth of a second), the client that was
        # already in is served, on its own connection, every time.
        for _ in range(12):
            trickle(closing)
            kept.request("GET", COSTS + "?start_time=1", headers=AUTH)
            response = kept.getresponse()
            assert (response.status, b"checkout-service-production" in response.read()) == (200, True)
            assert kept.sock is kept_socket
            time.sleep(0.1)  # the pace of the trickle, not a wait for anything
        # A new client gets in as soon as the deadline has cut the tricklers off.
        assert answered_within(DEADLINE, lambda: call(daemon.url, COSTS + "?start_time=1", timeout=5).status) == 200
        assert closed_total(daemon, "max_connections") > 0 and closed_total(daemon, "header_timeout") > 0
        kept.close()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output
    assert_clean_output(daemon)
    assert "EMFILE" not in daemon.output  # never out of file descriptors
    assert daemon.output.count("new connections closed at once") == 1  # said once, not per connection


def test_an_alias_path_turned_into_a_fifo_neither_blocks_the_daemon_nor_its_stop(
        upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> None:
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--watch", "off"], cwd=tmp_path)
    try:
        daemon.wait_ready()
        aliases.unlink()
        os.mkfifo(aliases)  # open() for reading would wait for a writer forever
        mark = len(daemon.lines)
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for("Alias file not reloaded (SIGHUP)", start=mark, timeout=DEADLINE)
        health = call(daemon.url, "/health", timeout=5).json()
        assert health["aliases"]["names"] == 5
        assert health["aliases"]["error"] == f"{aliases}: cannot read: not a regular file (a FIFO)"
        aliases.unlink()
        aliases.symlink_to("/dev/zero")  # reading it would never end
        mark = len(daemon.lines)
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for("Alias file not reloaded (SIGHUP)", start=mark, timeout=DEADLINE)
        assert "character device" in call(daemon.url, "/health", timeout=5).json()["aliases"]["error"]
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output
    assert_clean_output(daemon)
