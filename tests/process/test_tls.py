"""TLS on both sides of the real daemon: an HTTPS upstream trusted through --upstream-ca
(and refused without it, or for the wrong host), and the daemon itself serving on ``ssl:``."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AUTH, assert_clean_output
from tests.support.daemon import SERVING, TWISTD, Daemon, daemon_env, event_of, free_port
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.raw_http import Answer, call
from tests.support.tls import CA, ServerCert, TlsFakeUpstream, client_context, make_ca, make_server_cert

USERS = "/v1/organization/users"
BODY = {"api_key_id": "key_1234567890abcdef"}


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path / "pki")


@pytest.fixture
def localhost_cert(ca: CA, tmp_path: Path) -> ServerCert:
    return make_server_cert(ca, tmp_path / "pki", dns_names=["localhost"], ips=["127.0.0.1"])


def tls_upstream(cert: ServerCert) -> TlsFakeUpstream:
    server = TlsFakeUpstream(cert, host="localhost").start()
    server.on(USERS, reply(body=BODY))
    return server


@pytest.fixture
def https_upstream(localhost_cert: ServerCert) -> Iterator[TlsFakeUpstream]:
    server = tls_upstream(localhost_cert)
    yield server
    server.stop()


def start(upstream: FakeUpstream, aliases: Path, cwd: Path, *extra: str) -> Daemon:
    return Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--timeout", "5", *extra],
                  cwd=cwd).wait_ready()


def finish(daemon: Daemon) -> None:
    code = daemon.stop()
    assert code == 0, daemon.output
    assert_clean_output(daemon)


def assert_tls_refused(answer: Answer) -> dict[str, object]:
    assert answer.status == 502, answer
    error = answer.error()
    assert error["code"] == "upstream_tls_error", error
    return error


def test_https_upstream_trusted_with_upstream_ca_is_forwarded_and_named(
        https_upstream: TlsFakeUpstream, ca: CA, aliases: Path, tmp_path: Path) -> None:
    daemon = start(https_upstream, aliases, tmp_path, "--upstream-ca", str(ca.cert_path))
    try:
        answer = call(daemon.url, USERS)
        assert answer.status == 200, answer
        assert answer.json() == {"api_key_id": "key_1234567890abcdef",
                                 "api_key_name": "checkout-service-production"}
        assert [r.target for r in https_upstream.received] == [USERS.encode()]
        assert https_upstream.last().header("Authorization") == AUTH["Authorization"]
    finally:
        finish(daemon)


def test_https_upstream_with_an_unknown_ca_is_refused_without_upstream_ca(
        https_upstream: TlsFakeUpstream, aliases: Path, tmp_path: Path) -> None:
    daemon = start(https_upstream, aliases, tmp_path)
    try:
        error = assert_tls_refused(call(daemon.url, USERS))
        assert "certificate could not be verified" in str(error["message"]), error
        assert https_upstream.received == []
        health = call(daemon.url, "/health")
        assert (health.status, health.json()["status"]) == (200, "ok")
    finally:
        finish(daemon)


def test_certificate_for_another_host_is_refused_and_nothing_is_sent(
        ca: CA, aliases: Path, tmp_path: Path) -> None:
    wrong = make_server_cert(ca, tmp_path / "pki", dns_names=["otherhost.example"], ips=[], stem="other")
    upstream = tls_upstream(wrong)
    try:
        assert upstream.url.startswith("https://localhost:")
        daemon = start(upstream, aliases, tmp_path, "--upstream-ca", str(ca.cert_path))
        try:
            error = assert_tls_refused(call(daemon.url, USERS))
            assert "host name" in str(error["message"]), error
            # Never a silent downgrade: the upstream saw no request, encrypted or not.
            assert upstream.received == []
        finally:
            finish(daemon)
    finally:
        upstream.stop()


def https_get(port: int, ca: CA, target: str) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("localhost", port, timeout=20, context=client_context(ca))
    try:
        connection.request("GET", target, headers=AUTH)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_daemon_serves_over_tls_on_an_ssl_port(localhost_cert: ServerCert, ca: CA, upstream: FakeUpstream,
                                                   aliases: Path, tmp_path: Path) -> None:
    upstream.on(USERS, reply(body=BODY))
    port = free_port()
    listen = f"ssl:{port}:privateKey={localhost_cert.key_path}:certKey={localhost_cert.cert_path}" \
             ":interface=127.0.0.1"
    # Daemon passes its own --port tcp:... first; the later --port wins.
    daemon = start(upstream, aliases, tmp_path, "--port", listen)
    try:
        assert daemon.wait_for(SERVING)["port"] == listen
        status, body = https_get(port, ca, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, body = https_get(port, ca, USERS)
        assert status == 200
        assert json.loads(body) == {"api_key_id": "key_1234567890abcdef",
                                    "api_key_name": "checkout-service-production"}
        with pytest.raises((http.client.HTTPException, OSError)):
            call(f"http://127.0.0.1:{port}", "/health", timeout=10)
        assert [r.target for r in upstream.received] == [USERS.encode()]
    finally:
        finish(daemon)


@pytest.mark.parametrize("problem", ["missing", "not a PEM"])
def test_malformed_upstream_ca_stops_the_start_with_one_line(problem: str, tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    if problem == "not a PEM":
        path.write_text("this is not a certificate\n")
    result = subprocess.run(
        [TWISTD, "--nodaemon", "--pidfile=", "orgproxy", "--port", f"tcp:{free_port()}:interface=127.0.0.1",
         "--upstream", "https://localhost:1", "--upstream-ca", str(path), "--log-format", "json"],
        cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert not [e for e in map(event_of, output.splitlines()) if e is not None and e.get("event") == SERVING]
    assert "Traceback" not in output, output
    reasons = [line for line in output.splitlines() if str(path) in line]
    assert len(reasons) == 1, output
    assert "--upstream-ca" in reasons[0], output
