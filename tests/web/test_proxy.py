"""The real daemon (``twistd -n orgproxy``) over TCP, in front of a local fake OpenAI."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import AUTH, TOKEN, assert_clean_output
from tests.support.daemon import Daemon, free_port
from tests.support.tcp_upstream import (
    EXAMPLES,
    Behaviour,
    FakeUpstream,
    close_mid_body,
    headers_then_stall,
    hold,
    reply,
)
from tests.support.raw_http import call

COMPLETIONS = "/v1/organization/usage/completions"
COSTS = "/v1/organization/costs"
INDENT = "\n" + " " * 20  # the results' member indent in OpenAI's example pages


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


def grouped(example_text: str, **ids: str) -> str:
    """An example page as OpenAI sends it when grouped by the given id fields."""
    for field, value in ids.items():
        example_text = example_text.replace(f'"{field}": null', f'"{field}": "{value}"')
    return example_text


def start_daemon(upstream_url: str, cwd: Path, *args: str) -> Daemon:
    return Daemon(["--upstream", upstream_url, *args], cwd=cwd).wait_ready()


def stop_cleanly(daemon: Daemon) -> None:
    assert daemon.stop() == 0, daemon.output
    assert_clean_output(daemon)


# --- forwarding ---------------------------------------------------------------------

def test_path_query_and_authorization_arrive_unchanged(daemon: Daemon, upstream: FakeUpstream) -> None:
    target = (COMPLETIONS + "?start_time=1730419200&end_time=1730505600&bucket_width=1d"
              "&api_key_ids[]=key_a&api_key_ids[]=key_b&models=gpt-4o,o3&project_ids=proj_1"
              "&page=page_AAAAAGdGxdEiJdKOAAAAAGcqsYA%3D&limit=7&x=a+b%20c&y=%E2%9C%93&group_by[]=model")
    answer = call(daemon.url, target, headers={**AUTH, "OpenAI-Organization": "org-123"})
    assert answer.status == 200
    received = upstream.last()
    assert received.method == "GET"
    assert received.target == target.encode()
    assert received.header("Authorization") == f"Bearer {TOKEN}"
    assert received.header("OpenAI-Organization") == "org-123"
    assert received.header("Host") == upstream.url.removeprefix("http://")


def test_a_query_string_with_nothing_to_rewrite_keeps_every_byte(daemon: Daemon, upstream: FakeUpstream) -> None:
    target = COSTS + "?start_time=1&group_by=api_key_id,line_item&&odd=%zz&empty=&bare"
    assert call(daemon.url, target).status == 200
    assert upstream.last().target == target.encode()


@pytest.mark.parametrize(("sent", "forwarded"), [
    ("group_by[]=api_key_name&group_by[]=model", "group_by[]=api_key_id&group_by[]=model"),
    ("group_by=api_key_name&group_by=project_name", "group_by=api_key_id&group_by=project_id"),
    ("group_by=api_key_name,user_name,model", "group_by=api_key_id,user_id,model"),
    ("group_by=api_key_name&group_by=api_key_id", "group_by=api_key_id"),
    ("group_by%5B%5D=project_name", "group_by%5B%5D=project_id"),
])
def test_group_by_names_are_sent_upstream_as_ids(daemon: Daemon, upstream: FakeUpstream,
                                                 sent: str, forwarded: str) -> None:
    answer = call(daemon.url, f"{COMPLETIONS}?start_time=1730419200&{sent}&limit=3")
    assert answer.status == 200
    assert upstream.last().target == f"{COMPLETIONS}?start_time=1730419200&{forwarded}&limit=3".encode()


def test_post_forwards_method_body_and_content_type(daemon: Daemon, upstream: FakeUpstream) -> None:
    body = json.dumps({"name": "Project ABC"}).encode()
    answer = call(daemon.url, "/v1/organization/projects", method="POST", body=body,
                  headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status == 200
    assert answer.json() == json.loads(example("post_organization_projects.response.json"))
    received = upstream.last()
    assert (received.method, received.body) == ("POST", body)
    assert received.header("Content-Type") == "application/json"
    assert received.header("Content-Length") == str(len(body))


def test_hop_by_hop_request_headers_are_not_forwarded(daemon: Daemon, upstream: FakeUpstream) -> None:
    call(daemon.url, COSTS + "?start_time=1", headers={
        **AUTH, "Connection": "X-Hop-Only", "X-Hop-Only": "1", "Proxy-Authorization": "Basic eDp5",
        "Keep-Alive": "timeout=5", "X-End-To-End": "kept"})
    received = upstream.last()
    names = {name.lower() for name, _ in received.headers}
    assert {"x-hop-only", "proxy-authorization", "keep-alive"}.isdisjoint(names)
    assert received.header("X-End-To-End") == "kept"


def test_delete_is_forwarded_with_its_path(daemon: Daemon, upstream: FakeUpstream) -> None:
    answer = call(daemon.url, "/v1/organization/projects/proj_abc/api_keys/key_abc", method="DELETE")
    assert answer.status == 200
    assert answer.json() == json.loads(
        example("delete_organization_projects_project_id_api_keys_api_key_id.response.json"))
    assert upstream.last().target == b"/v1/organization/projects/proj_abc/api_keys/key_abc"


# --- names ----------------------------------------------------------------------------

def test_names_come_back_beside_ids_and_nothing_else_changes(daemon: Daemon, upstream: FakeUpstream) -> None:
    page = grouped(example("get_organization_usage_completions.response.json"),
                   api_key_id="key_1234567890abcdef", project_id="proj_abc", user_id="user-nobody")
    upstream.on(COMPLETIONS, reply(body=page))
    answer = call(daemon.url, COMPLETIONS + "?start_time=1730419200&group_by=api_key_id,project_id,user_id")
    assert answer.status == 200
    expected = (page
                .replace('"project_id": "proj_abc",' + INDENT,
                         '"project_id": "proj_abc",' + INDENT + '"project_name": "checkout",' + INDENT)
                .replace('"user_id": "user-nobody",' + INDENT,
                         '"user_id": "user-nobody",' + INDENT + '"user_name": "unknown",' + INDENT)
                .replace('"api_key_id": "key_1234567890abcdef",' + INDENT,
                         '"api_key_id": "key_1234567890abcdef",' + INDENT
                         + '"api_key_name": "checkout-service-production",' + INDENT))
    assert answer.body.decode() == expected
    assert answer.header("Content-Length") == str(len(answer.body))


@pytest.mark.parametrize(("path", "name"), [
    (COMPLETIONS, "get_organization_usage_completions.response.json"),
    (COSTS, "get_organization_costs.response.json"),
    ("/v1/organization/usage/embeddings", "get_organization_usage_embeddings.response.json"),
    ("/v1/organization/usage/vector_stores", "get_organization_usage_vector_stores.response.json"),
])
def test_example_pages_with_ungrouped_dimensions_get_null_names(daemon: Daemon, path: str, name: str) -> None:
    answer = call(daemon.url, path + "?start_time=1730419200")
    assert answer.status == 200, answer.body
    original = json.loads(example(name))
    amended = answer.json()
    for bucket_in, bucket_out in zip(original["data"], amended["data"], strict=True):
        for row_in, row_out in zip(bucket_in["results"], bucket_out["results"], strict=True):
            added = {k: row_out[k] for k in set(row_out) - set(row_in)}
            expected = {f.replace("_id", "_name"): None for f in ("api_key_id", "project_id", "user_id")
                        if f in row_in}
            assert added == expected
            assert {k: v for k, v in row_out.items() if k not in added} == row_in


def test_unicode_and_number_spellings_survive_byte_for_byte(daemon: Daemon, upstream: FakeUpstream,
                                                          aliases: Path) -> None:
    body = ('{"data":[{"api_key_id":"key_1234567890abcdef","note":"Zo\\u00eb \\ud83d\\ude00 日本",'
            '"v":1.50,"w":1e-7,"big":123456789012345678901234567890,"esc":"a\\/b"}]}').encode()
    upstream.on(COSTS, reply(body=body, content_type="application/json; charset=utf-8"))
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert answer.body == body.replace(b'"key_1234567890abcdef",',
                                       b'"key_1234567890abcdef","api_key_name":"checkout-service-production",')


def test_gzip_from_upstream_is_decoded_and_amended(daemon: Daemon, upstream: FakeUpstream) -> None:
    body = b'{"api_key_id": "key_abcdef1234567890"}'
    upstream.on(COSTS, reply(body=gzip.compress(body), headers=[("Content-Encoding", "gzip")]))
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert answer.body == b'{"api_key_id": "key_abcdef1234567890", "api_key_name": "mobile-app-production"}'
    assert answer.header("Content-Encoding") is None
    assert upstream.last().header("Accept-Encoding") == "gzip"


def test_non_json_bodies_pass_through_untouched(daemon: Daemon, upstream: FakeUpstream) -> None:
    body = b'api_key_id,"key_1234567890abcdef"\n{"api_key_id": "key_1234567890abcdef"}'
    upstream.on(COSTS, reply(body=body, content_type="text/csv"))
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert (answer.status, answer.body, answer.header("Content-Type")) == (200, body, "text/csv")


def test_invalid_json_labelled_json_passes_through_with_a_warning(daemon: Daemon, upstream: FakeUpstream) -> None:
    body = b'{"api_key_id": "key_1234567890abcdef", "truncated": '
    upstream.on(COSTS, reply(body=body))
    before = len(daemon.lines)
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert answer.body == body
    line = daemon.wait_for("does not parse", start=before)
    assert "/v1/organization/costs" in line and "warn" in line


def test_names_for_ids_in_list_endpoints_objects(daemon: Daemon, upstream: FakeUpstream) -> None:
    # Not only usage pages: any object at any depth with an id field is named.
    body = {"object": "list", "data": [{"nested": {"deeper": [{"user_id": "user-abc"}]}}]}
    upstream.on("/v1/organization/audit_logs", reply(body=body))
    answer = call(daemon.url, "/v1/organization/audit_logs")
    assert answer.json()["data"][0]["nested"]["deeper"][0] == {"user_id": "user-abc", "user_name": "Alice Example"}


def test_request_log_line_counts_named_and_unknown_ids(daemon: Daemon, upstream: FakeUpstream) -> None:
    rows = [{"api_key_id": i} for i in ["key_1234567890abcdef", "key_unknown_1", "key_unknown_1",
                                        "key_unknown_2", None]]
    upstream.on(COSTS, reply(body={"data": rows}))
    before = len(daemon.lines)
    call(daemon.url, COSTS + "?start_time=1&secret_marker=zz")
    line = daemon.wait_for("GET /v1/organization/costs -> 200", start=before)
    assert "1 named, 3 unknown (key_unknown_1, key_unknown_2)" in line
    assert "secret_marker" not in line  # the query string is not logged


def test_per_object_detail_is_logged_only_at_debug_level(upstream: FakeUpstream, tmp_path: Path,
                                                         aliases: Path) -> None:
    rows = [{"api_key_id": "key_1234567890abcdef"}, {"api_key_id": "key_1234567890abcdef"},
            {"project_id": "proj_zzz"}]
    upstream.on(COSTS, reply(body={"data": rows}))
    for level, shown in (("info", False), ("debug", True)):
        daemon = start_daemon(upstream.url, tmp_path, "--aliases", str(aliases), "--log-level", level)
        try:
            call(daemon.url, COSTS + "?start_time=1")
            daemon.wait_for("GET /v1/organization/costs -> 200")
            named = "api_key_id key_1234567890abcdef named 'checkout-service-production' in 2 objects"
            unknown = "project_id proj_zzz named 'unknown' in 1 objects"
            assert (named in daemon.output, unknown in daemon.output) == (shown, shown)
        finally:
            stop_cleanly(daemon)


# --- upstream answers and failures ------------------------------------------------------

def test_upstream_status_headers_and_error_body_come_back_as_sent(daemon: Daemon, upstream: FakeUpstream) -> None:
    error = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded",
                       "param": None, "code": "rate_limit_exceeded"}}
    upstream.on(COSTS, reply(429, error, headers=[("Retry-After", "17"), ("X-Request-Id", "req_1"),
                                                  ("Keep-Alive", "timeout=5"),
                                                  ("Proxy-Authenticate", "Basic")]))
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert answer.status == 429
    assert answer.header("Retry-After") == "17"
    assert answer.header("X-Request-Id") == "req_1"
    assert answer.header("Keep-Alive") is None and answer.header("Proxy-Authenticate") is None
    assert answer.json() == error


def test_upstream_redirect_is_passed_back_not_followed(daemon: Daemon, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(302, b"", headers=[("Location", "https://elsewhere.example/x")], content_type=None))
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert (answer.status, answer.header("Location")) == (302, "https://elsewhere.example/x")
    assert len([r for r in upstream.received if r.target.startswith(COSTS.encode())]) == 1


def test_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    daemon = start_daemon(f"http://127.0.0.1:{free_port()}", tmp_path)
    try:
        answer = call(daemon.url, COSTS + "?start_time=1")
        assert answer.status == 502
        assert answer.error()["code"] == "upstream_unreachable"
        assert call(daemon.url, "/health").status == 200  # still serving
    finally:
        stop_cleanly(daemon)


@pytest.mark.parametrize("behaviour", [hold(), headers_then_stall()], ids=["silent", "stalled body"])
def test_upstream_too_slow_is_a_504_and_its_request_is_dropped(upstream: FakeUpstream, tmp_path: Path,
                                                               behaviour: Behaviour) -> None:
    upstream.on(COSTS, behaviour)
    daemon = start_daemon(upstream.url, tmp_path, "--timeout", "0.5")
    try:
        answer = call(daemon.url, COSTS + "?start_time=1")
        assert answer.status == 504
        assert answer.error()["code"] == "upstream_timeout"
        assert upstream.cancelled.wait(10), "the proxy kept the upstream connection open"
    finally:
        stop_cleanly(daemon)


def test_connection_closed_mid_body_is_a_502(daemon: Daemon, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, close_mid_body)
    answer = call(daemon.url, COSTS + "?start_time=1")
    assert answer.status == 502
    assert answer.error()["code"] == "upstream_connection_lost"
    upstream.on(COSTS, reply(body={"ok": True}))
    assert call(daemon.url, COSTS + "?start_time=1").json() == {"ok": True}


def test_upstream_body_over_the_cap_is_a_502(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.on(COSTS, reply(body=b'{"pad": "' + b"x" * 5000 + b'"}'))
    upstream.on("/v1/organization/users", reply(body=b'{"pad": "' + b"x" * 900 + b'"}'))
    daemon = start_daemon(upstream.url, tmp_path, "--max-response-bytes", "1000")
    try:
        answer = call(daemon.url, COSTS + "?start_time=1")
        assert answer.status == 502
        error = answer.error()
        assert error["code"] == "upstream_response_too_large"
        assert answer.header("x-should-retry") == "false"
        assert call(daemon.url, "/v1/organization/users").status == 200  # under the cap
    finally:
        stop_cleanly(daemon)


def test_client_that_disconnects_cancels_its_upstream_request(daemon: Daemon, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, hold())
    before = len(daemon.lines)
    with socket.create_connection(("127.0.0.1", daemon.port)) as client:
        client.sendall(f"GET {COSTS}?start_time=1 HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
        # Wait until the request has reached the upstream before leaving.
        _wait_until(lambda: any(r.target.startswith(COSTS.encode()) for r in upstream.received))
    assert upstream.cancelled.wait(10), "the upstream request outlived its client"
    daemon.wait_for("the client left", start=before)
    upstream.on(COSTS, reply(body={"ok": True}))
    assert call(daemon.url, COSTS + "?start_time=1").json() == {"ok": True}


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition set by another thread (the fake upstream's) until it holds."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        event.wait(0.01)


# --- the proxy's own answers -------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/v1/organization/../chat/completions",
    "/v1/organization/%2e%2e/chat/completions",
    "/v1/organization/%2E%2e/%2e%2e/v1/models",
    "/v1/organization/usage%2F..%2F..%2Fchat",
    "/v1/organization/usage%2fcompletions",
    "/v1/organization//usage/completions",
    "/v1/organization/usage/./completions",
    "/v1/organization/usage/%2e/completions",
    "/v1/organization/usage%5c..%5cx",
    "/v1/organization/%252e%252e/x",
    "/v1/organization/",
    "/v1/organization",
    "/v1/chat/completions",
    "/v1/models",
    "/",
    "/health/x",
])
def test_paths_outside_the_organization_api_are_404_and_never_forwarded(
        daemon: Daemon, upstream: FakeUpstream, target: str) -> None:
    answer = call(daemon.url, target + "?start_time=1")
    assert answer.status == 404
    assert answer.error()["type"] == "invalid_request_error"
    assert upstream.received == []


def test_request_body_over_1_mib_is_413_and_not_forwarded(daemon: Daemon, upstream: FakeUpstream) -> None:
    answer = call(daemon.url, "/v1/organization/projects", method="POST", body=b"x" * (1024 * 1024 + 1))
    assert answer.status == 413
    assert answer.error()["code"] == "request_too_large"
    assert upstream.received == []
    exactly = json.dumps({"name": "p" * (1024 * 1024 - 12)}).encode()
    assert len(exactly) == 1024 * 1024
    assert call(daemon.url, "/v1/organization/projects", method="POST", body=exactly).status == 200
    assert upstream.last().body == exactly


def test_health_counts_names_and_never_lists_them(daemon: Daemon) -> None:
    answer = call(daemon.url, "/health", headers={})
    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["names_loaded"] == 5
    assert body["names_by_field"] == {"api_key_id": 3, "project_id": 1, "user_id": 1}
    assert b"checkout" not in answer.body and b"key_1234567890abcdef" not in answer.body


def test_a_page_of_thousands_of_rows_comes_back_named_to_the_byte(daemon: Daemon, upstream: FakeUpstream,
                                                                 aliases: Path) -> None:
    # Large enough for the array route (and a dozen sends): the daemon's answer must be
    # exactly what the member-by-member walk makes of the same bytes.
    from orgproxy.names.aliasfile import load_aliases
    from orgproxy.body.amend import _amend_exact
    from orgproxy.names.snapshot import Names

    names = Names.from_aliases(load_aliases(str(aliases)))
    known = list(names.by_field["api_key_id"]) or ["key_none"]
    rows = [{"object": "organization.usage.completions.result", "input_tokens": i * 7919 % 100_003,
             "project_id": f"proj_{i % 5}", "user_id": None, "api_key_id": [*known, "key_unknown"][i % (len(known) + 1)],
             "model": "gpt-4o-mini", "batch": None} for i in range(20_000)]
    body = json.dumps({"object": "page", "data": [{"object": "bucket", "results": rows}],
                       "has_more": False, "next_page": None}, indent=2).encode()
    upstream.on(COMPLETIONS, reply(body=body))
    from orgproxy.body.runs import id_member_runs

    assert id_member_runs(body) is not None  # the route this test is for

    answer = call(daemon.url, COMPLETIONS + "?start_time=1730419200", headers=AUTH)

    assert answer.status == 200
    assert answer.body == _amend_exact(body, names.members).body
    assert answer.json()["data"][0]["results"][0]["api_key_name"] == names.by_field["api_key_id"][known[0]]
