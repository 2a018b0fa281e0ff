"""The real daemon under a low open-files limit, flooded: a thousand clients trickling
their requests in a byte at a time, hundreds sending bodies from outside --allow-from or
without the client token, and its alias path turned into a FIFO. A normal client is still
answered, the daemon's memory stays bounded, it never runs out of file descriptors, and it
stops as asked.

(Making room at the caps, the guard before the body, the body cap, the deadline and the
accept errors said once a minute are tested in memory, on a clock, in
``tests/web/test_admission.py``, ``test_faults.py`` and ``test_connections.py``, and a real
port's EMFILE in ``tests/test_twisted_private.py``; here the point is the process: its
real limit, its real sockets, its real memory.)
"""

from __future__ import annotations

import http.client
import os
import resource
import select
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
FILES_LIMIT = 1024
CLIENTS = 1000  # trickling ones: more than the daemon may hold open under FILES_LIMIT
# Where the trickling clients come from: several addresses (loopback has them all), so that
# it is the whole cap they fill, not one address's share of it.
TRICKLING_FROM = [f"127.0.1.{n}" for n in range(1, 9)]
ANSWER_WITHIN = 3.0  # seconds a fresh client waits for each answer before it fails the test
PARTIAL = b"GET /v1/organization/costs?start_time=1 HTTP/1.1\r\nHost: orgproxy.test\r\nX-Slow: "
MIB = 1024 * 1024
BODY_SENDERS = 300
RSS_GROWTH_LIMIT = 48 * MIB
OUTSIDER = "127.0.0.3"  # an address outside the --allow-from these tests give
CLIENT_TOKEN = "team-secret-4f9a"


def open_files_limited_to(count: int) -> Callable[[], None]:
    def limit() -> None:  # runs in the child, before twistd
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))
    return limit


@pytest.fixture(autouse=True)
def room_for_the_clients_sockets() -> Iterator[None]:
    """This process's own open-files limit, raised (within its hard limit) for the
    clients' sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * FILES_LIMIT
    assert hard == resource.RLIM_INFINITY or hard >= wanted, f"the tests need ulimit -Hn of {wanted} or more"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect(daemon: Daemon, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", daemon.port), timeout=DEADLINE, source_address=(source, 0))


def trickling_clients(daemon: Daemon, count: int) -> list[socket.socket]:
    """``count`` connections, opened all at once as a flood opens them, each with the
    first bytes of a request and no more yet."""
    clients = []
    for n in range(count):
        client = socket.socket()
        client.setblocking(False)
        client.bind((TRICKLING_FROM[n % len(TRICKLING_FROM)], 0))
        client.connect_ex(("127.0.0.1", daemon.port))
        clients.append(client)
    # Connected, or refused; one whose SYN found the accept queue full is tried again by
    # the kernel a second later.
    connecting = select.poll()
    for client in clients:
        connecting.register(client, select.POLLOUT)
    pending, end = len(clients), time.monotonic() + DEADLINE
    while pending and time.monotonic() < end:
        for fd, _ in connecting.poll(100):
            connecting.unregister(fd)
            pending -= 1
    for client in clients:
        try:
            client.send(PARTIAL[:8])
        except OSError:
            pass  # closed already by the daemon, to make room for a newer one
    return clients


def trickle(clients: list[socket.socket]) -> None:
    """One more byte from every client still connected."""
    for client in clients:
        try:
            client.send(b"x")
        except OSError:
            pass


def closed_total(daemon: Daemon, reason: str) -> float:
    body = call(daemon.url, "/metrics", headers={**AUTH, "X-Orgproxy-Token": CLIENT_TOKEN}).body.decode()
    prefix = f'orgproxy_connections_closed_total{{reason="{reason}"}} '
    (line,) = [line for line in body.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


def rss(daemon: Daemon) -> int:
    """The daemon's resident memory now, in bytes (/proc/<pid>/status)."""
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


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


def test_a_thousand_trickling_clients_never_keep_a_normal_client_from_being_answered(
        costs_upstream: FakeUpstream, aliases: Path, tmp_path: Path, closing: list[socket.socket]) -> None:
    # The defaults derive the cap from the limit: 1024 - 256 upstream - 96 kept = 672. A header
    # timeout longer than the test: it is room made at the cap that lets the new client in.
    token_file = tmp_path / "client.token"
    token_file.write_text(CLIENT_TOKEN)
    daemon = Daemon(["--upstream", costs_upstream.url, "--aliases", str(aliases), "--header-timeout", "60",
                     "--client-token-file", str(token_file)],
                    cwd=tmp_path, preexec_fn=open_files_limited_to(FILES_LIMIT))
    caller = {**AUTH, "X-Orgproxy-Token": CLIENT_TOKEN}
    try:
        daemon.wait_ready()
        closing.extend(trickling_clients(daemon, CLIENTS))
        # Once the daemon has had to make room, every connection it may hold is open.
        daemon.wait_for("closed to make room", timeout=DEADLINE)
        trickle(closing)
        # A fresh client is answered, five times in five, each within the bound.
        for _ in range(5):
            answer = call(daemon.url, COSTS + "?start_time=1", headers=caller, timeout=ANSWER_WITHIN)
            assert (answer.status, b"checkout-service-production" in answer.body) == (200, True)
        assert closed_total(daemon, "evicted") > 0 and closed_total(daemon, "out_of_descriptors") == 0
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output
    assert_clean_output(daemon)
    assert "EMFILE" not in daemon.output  # never out of file descriptors


def send_half_of_a_mebibyte_body(daemon: Daemon, source: str, closing: list[socket.socket]) -> None:
    """A POST announcing a 1 MiB body, and half of it (as much as the daemon takes)."""
    client = connect(daemon, source)
    client.settimeout(ANSWER_WITHIN)
    closing.append(client)
    head = (b"POST /v1/organization/projects HTTP/1.1\r\nHost: orgproxy.test\r\nContent-Length: %d\r\n"
            b"Authorization: " + AUTH["Authorization"].encode() + b"\r\n\r\n") % MIB
    try:
        client.sendall(head + b"x" * (MIB // 2))
    except OSError:
        pass  # closed by the daemon: nothing of it read


def test_bodies_from_outside_allow_from_or_without_the_token_grow_the_memory_by_little(
        costs_upstream: FakeUpstream, aliases: Path, tmp_path: Path, closing: list[socket.socket]) -> None:
    token_file = tmp_path / "client.token"
    token_file.write_text(CLIENT_TOKEN)
    daemon = Daemon(["--upstream", costs_upstream.url, "--aliases", str(aliases), "--allow-from", "127.0.0.1/32",
                     "--client-token-file", str(token_file), "--header-timeout", "60"], cwd=tmp_path)
    try:
        daemon.wait_ready()
        assert call(daemon.url, "/health").status == 200
        before = rss(daemon)
        for source in (OUTSIDER, "127.0.0.1"):  # outside --allow-from; inside it, without the token
            for _ in range(BODY_SENDERS):
                send_half_of_a_mebibyte_body(daemon, source, closing)
            # Once this answer has come back, the daemon has read what it was going to read.
            assert call(daemon.url, "/health", timeout=DEADLINE).status == 200
            grown = rss(daemon) - before
            assert grown < RSS_GROWTH_LIMIT, f"from {source}: RSS grew by {grown / MIB:.1f} MiB"
        assert closed_total(daemon, "forbidden_source") == BODY_SENDERS
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output
    assert_clean_output(daemon)


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
