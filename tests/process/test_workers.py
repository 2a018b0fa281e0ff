"""--workers: several processes on one listening socket, signalled together."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from tests.conftest import assert_clean_output
from tests.support.daemon import Daemon
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.raw_http import call

COSTS = "/v1/organization/costs"


def worker_pids(daemon: Daemon) -> dict[str, int]:
    """Worker number -> pid, from the lines the first process logs as it starts them."""
    return {m[1]: int(m[2]) for m in re.finditer(r"Started worker (\d+) \(pid (\d+)\)", daemon.output)}


def test_two_workers_serve_reload_on_sighup_and_stop_together(upstream: FakeUpstream, aliases: Path,
                                                              tmp_path: Path) -> None:
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": "key_1234567890abcdef"}]}))
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--watch", "off", "--workers", "2"],
                    cwd=tmp_path)
    try:
        daemon.wait_for("[orgproxy.worker1#info] orgproxy serving on")
        daemon.wait_for("[orgproxy#info] orgproxy serving on")
        (child,) = worker_pids(daemon).values()
        pids = set()
        for _ in range(40):  # new connections, accepted by whichever process is first
            answer = call(daemon.url, "/health")
            assert answer.status == 200
            pids.add(answer.json()["pid"])
        assert pids <= {daemon.process.pid, child}
        assert call(daemon.url, COSTS + "?start_time=1").json()["data"][0]["api_key_name"] == \
            "checkout-service-production"

        aliases.write_text('[api_keys]\nkey_1234567890abcdef = "renamed-everywhere"\n')
        before = len(daemon.lines)
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for("[orgproxy#info] Alias file reloaded (SIGHUP)", start=before)
        daemon.wait_for("[orgproxy.worker1#info] Alias file reloaded (SIGHUP)", start=before)
        for _ in range(20):
            assert call(daemon.url, COSTS + "?start_time=1").json()["data"][0]["api_key_name"] == \
                "renamed-everywhere"

        assert daemon.stop() == 0
        assert "[orgproxy.worker1#info] SIGTERM" in daemon.output
        try:
            os.kill(child, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, "the worker outlived the daemon"
    finally:
        daemon.stop()
    assert_clean_output(daemon)


def test_a_worker_that_dies_is_started_again(upstream: FakeUpstream, tmp_path: Path) -> None:
    daemon = Daemon(["--upstream", upstream.url, "--workers", "2"], cwd=tmp_path)
    try:
        daemon.wait_for("[orgproxy.worker1#info] orgproxy serving on")
        (child,) = worker_pids(daemon).values()
        before = len(daemon.lines)
        os.kill(child, signal.SIGKILL)
        daemon.wait_for("Worker 1 ended", start=before)
        daemon.wait_for("[orgproxy.worker1#info] orgproxy serving on", start=before)
        assert call(daemon.url, "/health").status == 200
    finally:
        assert daemon.stop() == 0


def test_workers_need_a_shareable_port(tmp_path: Path) -> None:
    daemon = Daemon(["--workers", "2", "--port", "ssl:0:privateKey=x.pem"], cwd=tmp_path)
    assert daemon.wait_exit() != 0
    assert "--workers needs a tcp: or unix: --port" in daemon.output


class _QuietReactor:
    """Just enough reactor for a real listening port whose reads the test drives itself."""

    def addReader(self, _: object) -> None: ...
    def removeReader(self, _: object) -> None: ...
    def addWriter(self, _: object) -> None: ...
    def removeWriter(self, _: object) -> None: ...


def test_each_wake_up_accepts_one_connection_however_many_wait() -> None:
    # Twisted raises a port's accepts per wake-up by 20 after each full one: set once,
    # the limit would be gone after the first connection, and with it the sharing.
    import socket

    from twisted.internet import tcp
    from twisted.internet.protocol import Factory, Protocol

    from orgproxy.ops.workers import share_accepts

    built: list[object] = []

    class Counting(Factory):
        def buildProtocol(self, addr: object) -> Protocol:
            built.append(addr)
            return Protocol()

    port = tcp.Port(0, Counting(), interface="127.0.0.1", reactor=_QuietReactor())
    port.startListening()
    clients = []
    try:
        share_accepts(port)
        address = port.getHost()
        clients = [socket.create_connection((address.host, address.port)) for _ in range(5)]
        for woken in range(1, 4):
            port.doRead()
            assert len(built) == woken
    finally:
        for client in clients:
            client.close()
        port.connectionLost(None)
