"""Safe to leave running, in memory: who may call, the warning when nobody is kept out,
/metrics with bounded labels and no secrets, and logs for shippers.

(The client token and the 503 beyond --max-concurrency are tested in ``test_site.py``
and ``test_faults.py``.)
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel

from orgproxy.ops.logs import json_lines
from orgproxy.ops.reload import ReloadService
from orgproxy.web.access import AllowList, parse_networks
from orgproxy.web.site import OrgproxyChannel
from tests.support.answers import TOKEN
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.memory import InMemoryProxy

# A guard against a test that waits forever, never a way to wait.
pytestmark = pytest.mark.timeout(30)

COSTS = "/v1/organization/costs"

MakeProxy = Callable[..., InMemoryProxy]
Events = list[dict[str, Any]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def status_from(proxy: InMemoryProxy, source: str, target: str) -> int | None:
    """The status of a GET sent from the address ``source``; None if the connection was
    closed as it was accepted."""
    exchange = proxy.raw(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), client=source)
    if exchange.refused_at_accept:
        return None
    status_line = exchange.written.split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


# --- who may call ---------------------------------------------------------------------------

def test_a_source_outside_allow_from_is_closed_unread_and_nothing_is_forwarded(make_proxy: MakeProxy,
                                                                              fake: FakeOpenAI) -> None:
    proxy = make_proxy("--allow-from", "127.0.0.1/32")
    fake.on(COSTS, reply(body={"data": []}))
    for target in (COSTS + "?start_time=1", "/metrics", "/health"):
        assert status_from(proxy, "127.0.0.2", target) is None
    assert fake.received == []
    assert status_from(proxy, "127.0.0.1", COSTS + "?start_time=1") == 200


@pytest.mark.parametrize(("source", "status"), [
    ("127.0.0.2", 200), ("10.1.2.3", 200), ("172.16.5.4", 200), ("172.31.255.1", 200), ("192.168.1.1", 200),
    ("8.8.8.8", None), ("172.32.0.1", None), ("100.64.0.1", None), ("169.254.1.1", None),
])
def test_the_default_allow_list_admits_loopback_and_private_ranges(proxy: InMemoryProxy, source: str,
                                                                   status: int | None) -> None:
    assert status_from(proxy, source, "/health") == status


def test_allow_list_decisions_are_remembered_per_address_within_a_bound() -> None:
    allow = AllowList(parse_networks("10.0.0.0/8,::1"))
    for _ in range(2):  # the second round answers from memory, the same way
        assert allow.allows("10.1.2.3") and allow.allows("::ffff:10.0.0.1") and allow.allows("::1")
        assert not allow.allows("192.168.0.1") and not allow.allows("not-an-address")
    for i in range(AllowList.REMEMBERED + 100):
        allow.allows(f"172.16.{i // 256}.{i % 256}")
    assert len(allow.decided) == AllowList.REMEMBERED
    assert allow.allows("10.9.9.9") and not allow.allows("172.16.200.1")


# --- the warning when nobody is kept out ----------------------------------------------------

def start_up_warnings(proxy: InMemoryProxy, logged: Events) -> list[str]:
    """The warnings the daemon logs as it starts (makeService's service, started, and the
    reactor running)."""
    proxy.start_service()
    proxy.clock.run()  # the memory reactor runs its when-running hooks, then stops
    # Those hooks install the daemon's SIGTERM handler, on this very process: put it back.
    proxy.service.sigterm.uninstall()
    return [event["note"] for event in logged
            if event.get("log_level") == LogLevel.warn and isinstance(event.get("note"), str)]


@pytest.mark.parametrize("port", ["tcp:18080", "tcp:18080:interface=0.0.0.0", "tcp6:18080:interface=\\:\\:"])
def test_listening_beyond_loopback_unrestricted_is_warned_about_loudly(make_proxy: MakeProxy, logged: Events,
                                                                       port: str) -> None:
    warnings = start_up_warnings(make_proxy("--port", port), logged)
    loud = [note for note in warnings if note.startswith(f"!!! Listening on {port}, beyond this machine")]
    assert len(loud) == 1, warnings


@pytest.mark.parametrize(("args", "environ"), [
    (["--port", "tcp:18080:interface=127.0.0.1"], {}),
    (["--port", "unix:/tmp/orgproxy-test.sock"], {}),
    (["--port", "tcp:18080", "--allow-from", "10.1.0.0/16,127.0.0.1"], {}),
    (["--port", "tcp:18080"], {"ORGPROXY_ALLOW_FROM": "10.1.0.0/16"}),
    (["--port", "tcp:18080", "--client-token-file", "TOKEN_FILE"], {}),
], ids=["loopback", "unix socket", "--allow-from", "ORGPROXY_ALLOW_FROM", "--client-token-file"])
def test_a_restricted_or_local_listener_is_not_warned_about(make_proxy: MakeProxy, logged: Events,
                                                            tmp_path: Path, args: list[str],
                                                            environ: dict[str, str]) -> None:
    token_file = tmp_path / "client.token"
    token_file.write_text("team-secret-4f9a\n")
    proxy = make_proxy(*[str(token_file) if arg == "TOKEN_FILE" else arg for arg in args], environ=environ)
    warnings = start_up_warnings(proxy, logged)
    assert warnings, "no start-up warning at all: the check below would be empty"  # discovery is off
    assert not [note for note in warnings if "!!!" in note], warnings


# --- /metrics -------------------------------------------------------------------------------

def metric_samples(proxy: InMemoryProxy) -> Samples:
    answer = proxy.get("/metrics")
    assert answer.status == 200
    assert answer.header("Content-Type").startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_requests_latency_ids_reloads_and_names_with_bounded_labels(
        proxy: InMemoryProxy, fake: FakeOpenAI, aliases: Path) -> None:
    fake.on(COSTS, reply(body={"data": [{"api_key_id": "key_1234567890abcdef"}, {"api_key_id": "key_zzz"},
                                        {"project_id": "proj_abc"}]}))
    # The registry lives as long as the process: counters are compared with their values before.
    before = metric_samples(proxy)
    proxy.get(COSTS + "?start_time=1")
    proxy.get(COSTS + "?start_time=1")
    proxy.get("/v1/chat/completions")
    aliases.write_text("[api_keys]\nkey_a = 5\n")
    (reloads,) = [service for service in proxy.service if isinstance(service, ReloadService)]
    reloads.on_sighup()  # what a SIGHUP hands to the reactor
    after = metric_samples(proxy)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("orgproxy_requests_total", method="GET", route="proxy", status="200", provider="openai") == 2
    assert grew("orgproxy_requests_total", method="GET", route="other", status="404", provider="none") == 1
    assert grew("orgproxy_upstream_seconds_count", provider="openai") == 2
    assert grew("orgproxy_ids_total", provider="openai", field="api_key_id", result="named") == 2
    assert grew("orgproxy_ids_total", provider="openai", field="api_key_id", result="unknown") == 2
    assert grew("orgproxy_ids_total", provider="openai", field="project_id", result="named") == 2
    assert grew("orgproxy_alias_reloads_total", result="failed") == 1
    assert grew("orgproxy_alias_reloads_total", result="ok") == 0
    assert grew("orgproxy_discovery_runs_total", provider="openai", result="ok") == 0
    assert after[("orgproxy_requests_in_flight", ())] == 0
    assert after[("orgproxy_names_loaded", (("source", "aliases"),))] == 5  # the old names stay in force
    text = proxy.get("/metrics").body.decode()
    for secret_or_id in ("key_1234567890abcdef", "key_zzz", "checkout", TOKEN, "/v1/"):
        assert secret_or_id not in text


# --- logs for shippers ----------------------------------------------------------------------

def test_json_lines_logs_carry_fields_and_no_secret(proxy: InMemoryProxy, fake: FakeOpenAI, logged: Events,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake.on(COSTS, reply(body={"data": [{"api_key_id": "key_zzz"}]}))
    assert proxy.get(COSTS + "?start_time=1").status == 200
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", out)  # where the observer writes, past twistd's stdout
    observe = json_lines()
    for event in logged:
        observe(event)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records and all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    (request,) = [r for r in records if r.get("status") == 200]
    assert (request["method"], request["path"], request["unknown"], request["unknown_ids"]) == (
        "GET", "/v1/organization/costs", 1, ["key_zzz"])
    assert (request["level"], request["namespace"]) == ("info", "orgproxy")
    assert request["message"].startswith("GET /v1/organization/costs -> 200 in ")
    assert TOKEN not in out.getvalue()


# --- sending ----------------------------------------------------------------------------------

def test_each_send_takes_up_to_a_mebibyte_of_a_large_answer() -> None:
    # A 10 MB page in a dozen sends, not a hundred.
    class SocketLike(StringTransport):
        SEND_LIMIT = 128 * 1024  # Twisted's FileDescriptor default

    transport = SocketLike()
    channel = OrgproxyChannel()
    channel.makeConnection(transport)
    assert transport.SEND_LIMIT == 1024 * 1024
    channel.connectionLost(None)
