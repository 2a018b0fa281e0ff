"""Who may call, how many at once, /metrics, and logs for shippers: the real daemon."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AUTH, TOKEN, assert_clean_output
from tests.support.daemon import Daemon, free_port
from tests.support.tcp_upstream import FakeUpstream, hold, reply
from tests.support.raw_http import Answer, call

COSTS = "/v1/organization/costs"


def call_from(source: str, daemon: Daemon, target: str) -> Answer:
    """A request whose source address is ``source`` (any 127/8 address is this machine)."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request("GET", target, headers=AUTH)
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def stop(daemon: Daemon) -> None:
    assert daemon.stop() == 0
    assert_clean_output(daemon)


def test_a_source_outside_allow_from_gets_403_and_nothing_is_forwarded(upstream: FakeUpstream,
                                                                      tmp_path: Path) -> None:
    upstream.on(COSTS, reply(body={"data": []}))
    daemon = Daemon(["--upstream", upstream.url, "--allow-from", "127.0.0.1/32"], cwd=tmp_path).wait_ready()
    try:
        for target in (COSTS + "?start_time=1", "/metrics", "/health"):
            answer = call_from("127.0.0.2", daemon, target)
            assert answer.status == 403
            assert answer.error()["code"] == "forbidden_source"
        assert upstream.received == []
        assert call_from("127.0.0.1", daemon, COSTS + "?start_time=1").status == 200
    finally:
        stop(daemon)


def test_the_default_allow_list_admits_loopback(daemon: Daemon) -> None:
    assert call_from("127.0.0.2", daemon, "/health").status == 200


def test_a_client_token_is_required_compared_and_never_forwarded(upstream: FakeUpstream, tmp_path: Path) -> None:
    token_file = tmp_path / "client.token"
    token_file.write_text("team-secret-4f9a\n")
    upstream.on(COSTS, reply(body={"data": []}))
    daemon = Daemon(["--upstream", upstream.url, "--client-token-file", str(token_file)], cwd=tmp_path).wait_ready()
    try:
        for headers in (AUTH, {**AUTH, "X-Orgproxy-Token": "team-secret-4f9"},
                        {**AUTH, "X-Orgproxy-Token": "team-secret-4f9a-and-more"}):
            answer = call(daemon.url, COSTS + "?start_time=1", headers=headers)
            assert answer.status == 401
            assert answer.error()["code"] == "invalid_orgproxy_token"
        assert upstream.received == []
        assert call(daemon.url, "/metrics", headers={}).status == 401
        answer = call(daemon.url, COSTS + "?start_time=1", headers={**AUTH, "X-Orgproxy-Token": "team-secret-4f9a"})
        assert answer.status == 200
        assert upstream.last().header("X-Orgproxy-Token") is None
        assert call(daemon.url, "/health", headers={}).status == 200  # probes carry no token
        assert "team-secret-4f9a" not in daemon.output
    finally:
        stop(daemon)


def test_listening_beyond_loopback_unrestricted_is_warned_about_loudly(upstream: FakeUpstream,
                                                                       tmp_path: Path) -> None:
    port = free_port()
    wide = Daemon(["--upstream", upstream.url, "--port", f"tcp:{port}"], cwd=tmp_path).wait_ready()
    try:
        assert f"!!! Listening on tcp:{port}, beyond this machine" in wide.output
    finally:
        stop(wide)
    for restriction in (["--allow-from", "10.1.0.0/16,127.0.0.1"], []):
        port = free_port()
        args = ["--upstream", upstream.url, "--port", f"tcp:{port}", *restriction]
        if not restriction:
            args[-1:] = [f"tcp:{port}:interface=127.0.0.1"]
        quiet = Daemon(args, cwd=tmp_path).wait_ready()
        try:
            assert "!!!" not in quiet.output
        finally:
            stop(quiet)


def test_beyond_max_concurrency_a_request_gets_503_with_retry_after(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.on(COSTS, hold())
    upstream.on("/v1/organization/users", reply(body={"data": []}))
    daemon = Daemon(["--upstream", upstream.url, "--max-concurrency", "1"], cwd=tmp_path).wait_ready()
    held = socket.create_connection(("127.0.0.1", daemon.port))
    try:
        held.sendall(f"GET {COSTS}?start_time=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        arrived = threading.Event()
        for _ in range(500):  # until the held request is in flight upstream
            if upstream.received:
                arrived.set()
                break
            arrived.wait(0.01)
        assert arrived.is_set()
        answer = call(daemon.url, "/v1/organization/users")
        assert answer.status == 503
        assert answer.error()["code"] == "too_many_requests"
        assert answer.header("Retry-After") == "1"
    finally:
        held.close()
    assert upstream.cancelled.wait(10)
    daemon.wait_for("the client left")
    assert call(daemon.url, "/v1/organization/users").status == 200
    stop(daemon)


def metric_samples(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = call(daemon.url, "/metrics")
    assert answer.status == 200
    assert answer.header("Content-Type").startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_requests_latency_ids_reloads_and_names_with_bounded_labels(
        upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> None:
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": "key_1234567890abcdef"}, {"api_key_id": "key_zzz"},
                                            {"project_id": "proj_abc"}]}))
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--watch", "off"],
                    cwd=tmp_path).wait_ready()
    try:
        call(daemon.url, COSTS + "?start_time=1")
        call(daemon.url, COSTS + "?start_time=1")
        call(daemon.url, "/v1/chat/completions")
        aliases.write_text("[api_keys]\nkey_a = 5\n")
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for("Alias file not reloaded (SIGHUP)")
        samples = metric_samples(daemon)
        assert samples[("orgproxy_requests_total", (("method", "GET"), ("route", "proxy"), ("status", "200")))] == 2
        assert samples[("orgproxy_requests_total", (("method", "GET"), ("route", "other"), ("status", "404")))] == 1
        assert samples[("orgproxy_upstream_seconds_count", ())] == 2
        assert samples[("orgproxy_requests_in_flight", ())] == 0
        assert samples[("orgproxy_ids_total", (("field", "api_key_id"), ("result", "named")))] == 2
        assert samples[("orgproxy_ids_total", (("field", "api_key_id"), ("result", "unknown")))] == 2
        assert samples[("orgproxy_ids_total", (("field", "project_id"), ("result", "named")))] == 2
        assert samples[("orgproxy_alias_reloads_total", (("result", "failed"),))] == 1
        assert samples[("orgproxy_alias_reloads_total", (("result", "ok"),))] == 0
        assert samples[("orgproxy_names_loaded", (("source", "aliases"),))] == 5
        assert samples[("orgproxy_discovery_runs_total", (("result", "ok"),))] == 0
        text = call(daemon.url, "/metrics").body.decode()
        for secret_or_id in ("key_1234567890abcdef", "key_zzz", "checkout", TOKEN, "/v1/"):
            assert secret_or_id not in text
    finally:
        stop(daemon)


def test_json_lines_logs_carry_fields_and_no_secret(upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> None:
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": "key_zzz"}]}))
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases)], cwd=tmp_path,
                    twistd_args=["--logger", "orgproxy.ops.logs.json_lines"]).wait_ready()
    try:
        call(daemon.url, COSTS + "?start_time=1")
        daemon.wait_for("GET /v1/organization/costs -> 200")
    finally:
        stop(daemon)
    records = [json.loads(line) for line in daemon.lines]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    (request,) = [r for r in records if r.get("status") == 200]
    assert (request["method"], request["path"], request["unknown"], request["unknown_ids"]) == (
        "GET", "/v1/organization/costs", 1, ["key_zzz"])
    assert request["level"] == "info" and request["namespace"] == "orgproxy"
    assert TOKEN not in "\n".join(daemon.lines)


def test_each_send_takes_up_to_a_mebibyte_of_a_large_answer() -> None:
    # A 10 MB page in a dozen sends, not a hundred; the answer itself is checked whole by
    # the large-page tests through the daemon.
    from twisted.internet.testing import StringTransport

    from orgproxy.web.site import OrgproxyChannel

    class SocketLike(StringTransport):
        SEND_LIMIT = 128 * 1024  # Twisted's FileDescriptor default

    transport = SocketLike()
    channel = OrgproxyChannel()
    channel.makeConnection(transport)
    assert transport.SEND_LIMIT == 1024 * 1024
    channel.connectionLost(None)


def test_allow_list_decisions_are_remembered_per_address_within_a_bound() -> None:
    from orgproxy.web.access import AllowList, parse_networks

    allow = AllowList(parse_networks("10.0.0.0/8,::1"))
    for _ in range(2):  # the second round answers from memory, the same way
        assert allow.allows("10.1.2.3") and allow.allows("::ffff:10.0.0.1") and allow.allows("::1")
        assert not allow.allows("192.168.0.1") and not allow.allows("not-an-address")
    for i in range(AllowList.REMEMBERED + 100):
        allow.allows(f"172.16.{i // 256}.{i % 256}")
    assert len(allow.decided) == AllowList.REMEMBERED
    assert allow.allows("10.9.9.9") and not allow.allows("172.16.200.1")
