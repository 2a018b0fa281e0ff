"""The proxy leaf, in memory: what goes upstream (byte for byte), what comes back (names
beside ids, nothing else changed), and what the proxy answers when the upstream fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.logger import LogLevel
from twisted.web.client import ResponseNeverReceived

from orgproxy.body.exact import amend_exact
from orgproxy.body.runs import id_member_runs
from tests.support.answers import AUTH, TOKEN, Answer
from tests.support.fake_openai import (
    Behaviour,
    FakeOpenAI,
    close_mid_body,
    example,
    gzipped,
    headers_then_stall,
    hold,
    reply,
)
from tests.support.memory import InMemoryProxy

COMPLETIONS = "/v1/organization/usage/completions"
COSTS = "/v1/organization/costs"
INDENT = "\n" + " " * 20  # the results' member indent in OpenAI's example pages
NAMED_KEY = "key_1234567890abcdef"  # "checkout-service-production" in etc/aliases.toml

MakeProxy = Callable[..., InMemoryProxy]
Events = list[dict[str, Any]]


def example_text(name: str) -> str:
    return example(name).decode()


def grouped(page: str, **ids: str) -> str:
    """An example page as OpenAI sends it when grouped by the given id fields."""
    for field, value in ids.items():
        page = page.replace(f'"{field}": null', f'"{field}": "{value}"')
    return page


def raw_call(proxy: InMemoryProxy, method: str, target: str, headers: dict[str, str] = AUTH) -> Answer:
    """A request over a raw connection, and the answer exactly as written: every header
    the proxy sent, Content-Length and hop-by-hop ones included (an HTTP client keeps
    those to itself)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: orgproxy.test", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    written = proxy.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")).written
    head, _, body = written.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in header_lines)]
    return Answer(int(status_line.split()[1]), answer_headers, body)


def request_lines(logged: Events) -> Events:
    """The one event per answered request (its fields are what the log line says)."""
    return [e for e in logged if e.get("event") == "request"]


# --- forwarding ---------------------------------------------------------------------

def test_path_query_and_authorization_arrive_unchanged(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    target = (COMPLETIONS + "?start_time=1730419200&end_time=1730505600&bucket_width=1d"
              "&api_key_ids[]=key_a&api_key_ids[]=key_b&models=gpt-4o,o3&project_ids=proj_1"
              "&page=page_AAAAAGdGxdEiJdKOAAAAAGcqsYA%3D&limit=7&x=a+b%20c&y=%E2%9C%93&group_by[]=model")
    answer = proxy.get(target, headers={**AUTH, "OpenAI-Organization": "org-123"})
    assert answer.status == 200
    received = fake.last()
    assert received.method == b"GET"
    assert received.target == target.encode()
    assert received.header("Authorization") == f"Bearer {TOKEN}".encode()
    assert received.header("OpenAI-Organization") == b"org-123"
    assert received.header("Host") == b"openai.test"


def test_a_query_string_with_nothing_to_rewrite_keeps_every_byte(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    target = COSTS + "?start_time=1&group_by=api_key_id,line_item&&odd=%zz&empty=&bare"
    assert proxy.get(target).status == 200
    assert fake.last().target == target.encode()


@pytest.mark.parametrize(("sent", "forwarded"), [
    ("group_by[]=api_key_name&group_by[]=model", "group_by[]=api_key_id&group_by[]=model"),
    ("group_by=api_key_name&group_by=project_name", "group_by=api_key_id&group_by=project_id"),
    ("group_by=api_key_name,user_name,model", "group_by=api_key_id,user_id,model"),
    ("group_by=api_key_name&group_by=api_key_id", "group_by=api_key_id"),
    ("group_by%5B%5D=project_name", "group_by%5B%5D=project_id"),
])
def test_group_by_names_are_sent_upstream_as_ids(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                 sent: str, forwarded: str) -> None:
    answer = proxy.get(f"{COMPLETIONS}?start_time=1730419200&{sent}&limit=3")
    assert answer.status == 200
    assert fake.last().target == f"{COMPLETIONS}?start_time=1730419200&{forwarded}&limit=3".encode()


def test_post_forwards_method_body_and_content_type(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    body = json.dumps({"name": "Project ABC"}).encode()
    answer = proxy.call("POST", "/v1/organization/projects", headers={**AUTH, "Content-Type": "application/json"},
                        body=body)
    assert answer.status == 200
    assert answer.json() == json.loads(example("post_organization_projects.response.json"))
    received = fake.last()
    assert (received.method, received.body) == (b"POST", body)
    assert received.header("Content-Type") == b"application/json"
    assert received.header("Content-Length") == str(len(body)).encode()


def test_hop_by_hop_request_headers_are_not_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    proxy.get(COSTS + "?start_time=1", headers={
        **AUTH, "Connection": "X-Hop-Only", "X-Hop-Only": "1", "Proxy-Authorization": "Basic eDp5",
        "Keep-Alive": "timeout=5", "X-End-To-End": "kept"})
    received = fake.last()
    names = {name.lower() for name, _ in received.headers}
    assert {b"x-hop-only", b"proxy-authorization", b"keep-alive"}.isdisjoint(names)
    assert received.header("X-End-To-End") == b"kept"


def test_delete_is_forwarded_with_its_path(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    answer = proxy.call("DELETE", "/v1/organization/projects/proj_abc/api_keys/key_abc")
    assert answer.status == 200
    assert answer.json() == json.loads(
        example("delete_organization_projects_project_id_api_keys_api_key_id.response.json"))
    received = fake.last()
    assert (received.method, received.target) == (b"DELETE", b"/v1/organization/projects/proj_abc/api_keys/key_abc")


def test_head_is_forwarded_and_keeps_the_upstreams_length(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    page = example("get_organization_costs.response.json")
    fake.on(COSTS, reply(body=page, headers=[("X-Request-Id", "req_head")]))
    answer = raw_call(proxy, "HEAD", COSTS + "?start_time=1&group_by=api_key_name")
    assert answer.status == 200
    assert answer.body == b""
    # No body came to amend: the length announced is the upstream's.
    assert answer.header("Content-Length") == str(len(page))
    assert (answer.header("Content-Type"), answer.header("X-Request-Id")) == ("application/json", "req_head")
    received = fake.last()
    assert (received.method, received.target) == (b"HEAD", COSTS.encode() + b"?start_time=1&group_by=api_key_id")


# --- names ----------------------------------------------------------------------------

def test_names_come_back_beside_ids_and_nothing_else_changes(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    page = grouped(example_text("get_organization_usage_completions.response.json"),
                   api_key_id=NAMED_KEY, project_id="proj_abc", user_id="user-nobody")
    fake.on(COMPLETIONS, reply(body=page))
    answer = raw_call(proxy, "GET", COMPLETIONS + "?start_time=1730419200&group_by=api_key_id,project_id,user_id")
    assert answer.status == 200
    expected = (page
                .replace('"project_id": "proj_abc",' + INDENT,
                         '"project_id": "proj_abc",' + INDENT + '"project_name": "checkout",' + INDENT)
                .replace('"user_id": "user-nobody",' + INDENT,
                         '"user_id": "user-nobody",' + INDENT + '"user_name": "unknown",' + INDENT)
                .replace(f'"api_key_id": "{NAMED_KEY}",' + INDENT,
                         f'"api_key_id": "{NAMED_KEY}",' + INDENT
                         + '"api_key_name": "checkout-service-production",' + INDENT))
    assert expected != page
    assert answer.body.decode() == expected
    assert answer.header("Content-Length") == str(len(answer.body))


@pytest.mark.parametrize(("path", "name"), [
    (COMPLETIONS, "get_organization_usage_completions.response.json"),
    (COSTS, "get_organization_costs.response.json"),
    ("/v1/organization/usage/embeddings", "get_organization_usage_embeddings.response.json"),
    ("/v1/organization/usage/vector_stores", "get_organization_usage_vector_stores.response.json"),
])
def test_example_pages_with_ungrouped_dimensions_get_null_names(proxy: InMemoryProxy, path: str, name: str) -> None:
    answer = proxy.get(path + "?start_time=1730419200")
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


def test_unicode_and_number_spellings_survive_byte_for_byte(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    body = ('{"data":[{"api_key_id":"key_1234567890abcdef","note":"Zo\\u00eb \\ud83d\\ude00 日本",'
            '"v":1.50,"w":1e-7,"big":123456789012345678901234567890,"esc":"a\\/b"}]}').encode()
    fake.on(COSTS, reply(body=body, content_type="application/json; charset=utf-8"))
    answer = proxy.get(COSTS + "?start_time=1")
    assert answer.body == body.replace(b'"key_1234567890abcdef",',
                                       b'"key_1234567890abcdef","api_key_name":"checkout-service-production",')


def test_gzip_from_upstream_is_decoded_and_amended(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, gzipped(b'{"api_key_id": "key_abcdef1234567890"}'))
    answer = raw_call(proxy, "GET", COSTS + "?start_time=1")
    assert answer.body == b'{"api_key_id": "key_abcdef1234567890", "api_key_name": "mobile-app-production"}'
    assert answer.header("Content-Encoding") is None
    assert answer.header("Content-Length") == str(len(answer.body))
    assert fake.last().header("Accept-Encoding") == b"gzip"


def test_non_json_bodies_pass_through_untouched(proxy: InMemoryProxy, fake: FakeOpenAI, logged: Events) -> None:
    body = b'api_key_id,"key_1234567890abcdef"\n{"api_key_id": "key_1234567890abcdef"}'
    fake.on(COSTS, reply(body=body, content_type="text/csv"))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.body, answer.header("Content-Type")) == (200, body, "text/csv")
    assert not [e for e in logged if e.get("log_level") == LogLevel.warn]  # nothing to warn about


def test_names_for_ids_in_list_endpoints_objects(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    # Not only usage pages: any object at any depth with an id field is named.
    fake.on("/v1/organization/audit_logs", reply(body={"object": "list", "data": [
        {"nested": {"deeper": [{"user_id": "user-abc"}]}}]}))
    answer = proxy.get("/v1/organization/audit_logs")
    assert answer.json()["data"][0]["nested"]["deeper"][0] == {"user_id": "user-abc", "user_name": "Alice Example"}


def test_request_log_event_counts_named_and_unknown_ids(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                        logged: Events) -> None:
    rows = [{"api_key_id": i} for i in [NAMED_KEY, "key_unknown_1", "key_unknown_1", "key_unknown_2", None]]
    fake.on(COSTS, reply(body={"data": rows}))
    proxy.get(COSTS + "?start_time=1&secret_marker=zz")
    (line,) = request_lines(logged)
    assert {k: line[k] for k in ("method", "path", "status", "named", "unknown", "unknown_ids")} == {
        "method": "GET", "path": COSTS, "status": 200, "named": 1, "unknown": 3,
        "unknown_ids": ["key_unknown_1", "key_unknown_2"]}
    assert "secret_marker" not in repr(logged)  # the query string is not logged


def test_a_request_line_lists_at_most_ten_unknown_ids(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                      logged: Events) -> None:
    fake.on(COSTS, reply(body={"data": [{"api_key_id": f"key_unknown_{i:02}"} for i in range(12)]}))
    proxy.get(COSTS + "?start_time=1")
    (line,) = request_lines(logged)
    assert (line["unknown"], line["unknown_ids"]) == (12, [f"key_unknown_{i:02}" for i in range(10)])


@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_per_id_detail_is_logged_only_at_debug_level(make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path,
                                                     logged: Events, level: str, shown: bool) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--log-level", level)
    fake.on(COSTS, reply(body={"data": [{"api_key_id": NAMED_KEY}, {"api_key_id": NAMED_KEY},
                                        {"project_id": "proj_zzz"}]}))
    assert proxy.get(COSTS + "?start_time=1").status == 200
    detail = {(e["id_field"], e["id"], e["name"], e["times"]) for e in logged if "id_field" in e}
    expected = {("api_key_id", NAMED_KEY, "checkout-service-production", 2), ("project_id", "proj_zzz", "unknown", 1)}
    assert detail == (expected if shown else set())
    assert len(request_lines(logged)) == 1


# --- upstream answers and failures ------------------------------------------------------

def test_upstream_status_headers_and_error_body_come_back_as_sent(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    error = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded",
                       "param": None, "code": "rate_limit_exceeded"}}
    fake.on(COSTS, reply(429, error, headers=[("Retry-After", "17"), ("X-Request-Id", "req_1"),
                                              ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic")]))
    answer = raw_call(proxy, "GET", COSTS + "?start_time=1")
    assert answer.status == 429
    assert answer.header("Retry-After") == "17"
    assert answer.header("X-Request-Id") == "req_1"
    assert answer.header("Keep-Alive") is None and answer.header("Proxy-Authenticate") is None
    assert answer.json() == error
    assert answer.body == json.dumps(error).encode()


def test_upstream_redirect_is_passed_back_not_followed(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(302, b"", headers=[("Location", "https://elsewhere.example/x")], content_type=None))
    answer = proxy.get(COSTS + "?start_time=1")
    assert (answer.status, answer.header("Location"), answer.body) == (302, "https://elsewhere.example/x", b"")
    assert len(fake.received) == 1


def test_unreachable_upstream_is_a_502(proxy: InMemoryProxy, monkeypatch: pytest.MonkeyPatch,
                                       logged: Events) -> None:
    # What connecting does when nothing listens at the upstream's address.
    monkeypatch.setattr(proxy.upstreams, "refusal", ConnectionRefusedError())
    answer = proxy.get(COSTS + "?start_time=1")
    assert answer.status == 502
    assert answer.error()["code"] == "upstream_unreachable"
    (warning,) = [e for e in logged if e.get("log_level") == LogLevel.warn]
    assert (warning["method"], warning["path"], warning["status"], warning["code"]) == (
        "GET", COSTS, 502, "upstream_unreachable")
    assert proxy.get("/health").status == 200  # still serving


@pytest.mark.parametrize("behaviour", [hold, headers_then_stall], ids=["silent", "stalled body"])
def test_upstream_too_slow_is_a_504_and_its_request_is_dropped(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                               behaviour: Behaviour) -> None:
    proxy = make_proxy("--timeout", "0.5")
    fake.on(COSTS, behaviour)
    waiting = proxy.start("GET", COSTS + "?start_time=1")
    answered: list[Any] = []
    waiting.addCallback(lambda response: answered.append(response) or response)
    proxy.advance(0.49)
    assert answered == [] and fake.abandoned == []
    proxy.advance(0.01)
    answer = proxy.answer(waiting)
    assert answer.status == 504
    assert answer.error()["code"] == "upstream_timeout"
    assert fake.abandoned == fake.received, "the proxy kept the upstream connection open"


def test_connection_closed_mid_body_is_a_502(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, close_mid_body)
    answer = proxy.get(COSTS + "?start_time=1")
    assert answer.status == 502
    assert answer.error()["code"] == "upstream_connection_lost"
    fake.on(COSTS, reply(body={"ok": True}))
    assert proxy.get(COSTS + "?start_time=1").json() == {"ok": True}


def test_upstream_body_over_the_cap_is_a_502(make_proxy: MakeProxy, fake: FakeOpenAI) -> None:
    proxy = make_proxy("--max-response-bytes", "1000")
    fake.on(COSTS, reply(body=b'{"pad": "' + b"x" * 5000 + b'"}'))
    fake.on("/v1/organization/users", reply(body=b'{"pad": "' + b"x" * 900 + b'"}'))
    answer = proxy.get(COSTS + "?start_time=1")
    assert answer.status == 502
    assert answer.error()["code"] == "upstream_response_too_large"
    assert answer.header("x-should-retry") == "false"
    assert proxy.get("/v1/organization/users").status == 200  # under the cap


def test_client_that_disconnects_cancels_its_upstream_request(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                              logged: Events) -> None:
    fake.on(COSTS, hold)
    leaving: Deferred[Any] = proxy.start("GET", COSTS + "?start_time=1")
    proxy.flush()
    assert len(fake.received) == 1 and fake.abandoned == []
    leaving.addErrback(lambda failure: failure.trap(ResponseNeverReceived))
    leaving.cancel()
    proxy.flush()
    assert fake.abandoned == fake.received, "the upstream request outlived its client"
    assert request_lines(logged) == []  # nothing was answered
    (left,) = [e for e in logged if e.get("path") == COSTS]
    assert (left["method"], left["log_level"]) == ("GET", LogLevel.info)
    fake.on(COSTS, reply(body={"ok": True}))
    assert proxy.get(COSTS + "?start_time=1").json() == {"ok": True}


# --- paths the leaf refuses ---------------------------------------------------------------

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
    "/v1/organization/usage/completions/",
    "/v1/organization/usage%00/x",
])
def test_paths_that_would_leave_the_organization_api_are_404_and_never_forwarded(
        proxy: InMemoryProxy, fake: FakeOpenAI, target: str) -> None:
    answer = proxy.get(target + "?start_time=1")
    assert answer.status == 404
    assert answer.error()["type"] == "invalid_request_error"
    assert fake.received == []


# --- large pages ---------------------------------------------------------------------------

def test_a_page_of_thousands_of_rows_comes_back_named_to_the_byte(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    # Large enough for the array route (id members found by runs, not by a walk): the
    # answer must be exactly what the member-by-member walk makes of the same bytes.
    names = proxy.service.current.names
    known = list(names.by_field["api_key_id"])
    rows = [{"object": "organization.usage.completions.result", "input_tokens": i * 7919 % 100_003,
             "project_id": f"proj_{i % 5}", "user_id": None, "api_key_id": [*known, "key_unknown"][i % (len(known) + 1)],
             "model": "gpt-4o-mini", "batch": None} for i in range(3_000)]
    body = json.dumps({"object": "page", "data": [{"object": "bucket", "results": rows}],
                       "has_more": False, "next_page": None}, indent=2).encode()
    assert id_member_runs(body) is not None  # the route this test is for
    fake.on(COMPLETIONS, reply(body=body))
    answer = proxy.get(COMPLETIONS + "?start_time=1730419200")
    assert answer.status == 200
    assert answer.body == amend_exact(body, names.members).body
    assert answer.json()["data"][0]["results"][0]["api_key_name"] == names.by_field["api_key_id"][known[0]]
