"""Anthropic's paths under the rules that hold the proxy under attack, in memory: two
credentials of one kind refused, ``;``-parameter dot segments refused, a trickling request
cut off, a corrupt gzip body refused and a sound one undone, and the cache keyed by the
headers as they are sent; each of the proxy's own answers there in Anthropic's error shape
(and OpenAI's shape kept where the path is OpenAI's, or not known yet)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import pytest
from twisted.web import server

from tests.support.answers import Answer
from tests.support.fake_anthropic import API_KEYS, COSTS, FakeAnthropic, example
from tests.support.fake_openai import FakeOpenAI, Received, gzipped, reply
from tests.support.memory import InMemoryProxy
from tests.web.test_anthropic import CALLER, CALLER_KEY, anthropic_error
from tests.web.test_faults import raw_answer

MakeProxy = Callable[..., InMemoryProxy]
LIST = (API_KEYS + "?limit=2").encode()


def raw_request(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    """A request exactly as a client would write it, with the caller's Anthropic headers."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: orgproxy.test", b"x-api-key: " + CALLER_KEY.encode(),
             b"anthropic-version: 2023-06-01", *headers]
    return b"\r\n".join([*lines, b"", b""])


def assert_anthropic_error(answer: Answer, status: int) -> dict[str, str]:
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.header("Content-Type") == "application/json"
    assert CALLER_KEY.encode() not in answer.body
    return anthropic_error(answer)


def assert_serves_anthropic(proxy: InMemoryProxy) -> None:
    answer = proxy.get(API_KEYS + "?limit=2", headers=CALLER)
    assert answer.status == 200 and answer.json()["data"], answer.body[:300]


@pytest.mark.parametrize("second", [b"x-api-key: sk-ant-admin01-someone-else", b"X-API-Key: sk-ant-admin01-x",
                                    b"Authorization: Bearer a\r\nauthorization: Bearer b"],
                         ids=["x-api-key twice", "x-api-key in another case", "Authorization twice"])
def test_two_credentials_of_one_kind_are_an_anthropic_400_never_forwarded(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic, second: bytes) -> None:
    answer = raw_answer(proxy.raw(raw_request(LIST, second)))
    error = assert_anthropic_error(answer, 400)
    assert error["type"] == "invalid_request_error"
    header = "Authorization" if second.startswith(b"Authorization") else "x-api-key"
    assert f"more than one {header} header" in error["message"]
    assert b"someone-else" not in answer.body and fake_anthropic.received == []
    assert_serves_anthropic(proxy)


def test_a_bearer_token_beside_an_x_api_key_is_not_a_duplicate(proxy: InMemoryProxy,
                                                               fake_anthropic: FakeAnthropic) -> None:
    answer = raw_answer(proxy.raw(raw_request(LIST, b"Authorization: Bearer sk-ant-oat01-x")))
    assert answer.status == 200
    assert fake_anthropic.last().header("authorization") == b"Bearer sk-ant-oat01-x"


def test_openai_s_paths_do_not_care_about_x_api_key(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    target = b"/v1/organization/projects"
    answer = raw_answer(proxy.raw(raw_request(target, b"x-api-key: second", b"Authorization: Bearer sk-admin-x")))
    assert answer.status == 200 and len(fake.received) == 1


@pytest.mark.parametrize("target", [
    "/v1/organizations/..;/..;/v1/messages",
    "/v1/organizations/%2e%2e;/%2e%2e;/v1/messages",
    "/v1/organizations/..;x=1/..;x=1/v1/messages",
    "/v1/organizations/..%3b/..%3B/v1/messages",
    "/v1/organizations/api_keys/;x",
    "/v1/organizations/workspaces/..;/../v1/complete",
])
def test_a_parameter_dot_segment_under_organizations_is_an_anthropic_404_never_forwarded(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic, target: str) -> None:
    answer = raw_answer(proxy.raw(raw_request(target.encode())))
    assert assert_anthropic_error(answer, 404)["type"] == "not_found_error"
    assert fake_anthropic.received == []
    assert_serves_anthropic(proxy)


def test_a_request_trickling_in_under_organizations_is_cut_off_in_anthropic_s_shape(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    request = raw_request(LIST)
    exchange = proxy.raw(request[:60])  # the request line, and part of the headers
    proxy.advance(10)
    answer = raw_answer(exchange)
    assert assert_anthropic_error(answer, 408)["type"] == "timeout_error"
    assert exchange.closed_by_proxy and fake_anthropic.received == []
    # Before its request line has come, a request's path is not known: OpenAI's shape.
    unknown = proxy.raw(b"GET /v1/organiz")
    proxy.advance(10)
    assert raw_answer(unknown).error()["code"] == "request_timeout"
    # And the next request on a connection gets a shape of its own.
    kept = proxy.raw(raw_request(LIST))
    assert kept.written.startswith(b"HTTP/1.1 200 ")
    kept.send(b"GET /v1/organization/costs HTTP/1.1\r\nHost: x\r\n")
    proxy.advance(10)
    assert kept.written.endswith(b'"code":"request_timeout"}}')
    assert_serves_anthropic(proxy)


def test_headers_too_many_under_organizations_are_refused_in_anthropic_s_shape(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    flood = [b"x-filler-%d: 1" % n for n in range(600)]
    answer = raw_answer(proxy.raw(raw_request(LIST, *flood)))
    assert assert_anthropic_error(answer, 431)["type"] == "invalid_request_error"
    assert fake_anthropic.received == []


def _gzip_cut_short(request: server.Request, received: Received) -> bytes:
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-encoding", b"gzip")
    data = gzip.compress(example("get_organizations_cost_report.response.json"))
    return data[:len(data) // 2]


def test_a_corrupt_gzip_body_from_anthropic_is_an_anthropic_502_never_cached(
        make_proxy: MakeProxy, fake_anthropic: FakeAnthropic) -> None:
    proxy = make_proxy("--cache-ttl", "60")
    fake_anthropic.on(COSTS, _gzip_cut_short)
    for attempt in (1, 2):
        answer = proxy.get(COSTS + "?starting_at=2026-08-01T00:00:00Z", headers=CALLER)
        error = assert_anthropic_error(answer, 502)
        assert error["type"] == "api_error" and error["message"].startswith("Anthropic's compressed response")
        assert len(fake_anthropic.received) == attempt  # not answered from the cache the second time


def test_a_gzip_body_from_anthropic_is_undone_and_named(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    page = {"data": [{"starting_at": "2026-08-01T00:00:00Z", "ending_at": "2026-08-02T00:00:00Z",
                      "results": [{"workspace_id": None, "amount": "12.5", "currency": "USD"}]}],
            "has_more": False, "next_page": None}
    fake_anthropic.on(COSTS, gzipped(json.dumps(page).encode()))
    answer = proxy.get(COSTS + "?starting_at=2026-08-01T00:00:00Z&group_by[]=workspace_id", headers=CALLER)
    assert answer.status == 200 and answer.header("Content-Encoding") is None
    assert answer.json()["data"][0]["results"][0]["workspace_name"] == "Default"


def test_an_x_api_key_the_connection_header_drops_is_not_in_the_cache_key(
        make_proxy: MakeProxy, fake_anthropic: FakeAnthropic) -> None:
    proxy = make_proxy("--cache-ttl", "60")
    fake_anthropic.on(API_KEYS, reply(body={"data": [], "has_more": False, "first_id": None, "last_id": None}))
    # Forwarded without x-api-key (Connection names it): Anthropic refuses or answers for
    # no one; that answer must never be served to the key's holder.
    dropped = raw_answer(proxy.raw(raw_request(LIST, b"Connection: x-api-key")))
    assert dropped.status == 200 and fake_anthropic.last().header("x-api-key") is None
    with_key = proxy.get(API_KEYS + "?limit=2", headers=CALLER)
    assert with_key.header("X-Orgproxy-Cache") == "miss"
    assert fake_anthropic.last().header("x-api-key") == CALLER_KEY.encode()
    assert proxy.get(API_KEYS + "?limit=2", headers=CALLER).header("X-Orgproxy-Cache") == "hit"
    assert len(fake_anthropic.received) == 2
