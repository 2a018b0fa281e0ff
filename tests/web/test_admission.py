"""What is let in, in memory: methods (only those the Admin APIs use are forwarded)."""

from __future__ import annotations

import itertools

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.memory import InMemoryProxy
from tests.web.test_faults import raw_answer, raw_get
from tests.web.test_site import requests_counted

COSTS = "/v1/organization/costs"
PROJECTS = "/v1/organization/projects"
TARGET = COSTS + "?start_time=1"


# --- methods ------------------------------------------------------------------------------------------

def test_only_the_admin_apis_methods_are_forwarded_the_others_are_405_with_allow(
        proxy: InMemoryProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    for method, target in itertools.product(
            (b"TRACE", b"CONNECT", b"PUT", b"PATCH", b"get", b"Post", b"PROPFIND"),
            (TARGET.encode(), b"/v1/organizations/api_keys")):
        answer = raw_answer(proxy.raw(raw_get(target).replace(b"GET ", method + b" ", 1)))
        assert answer.status == 405, (method, target)
        assert answer.header("Allow") == "GET, POST, DELETE, HEAD, OPTIONS"
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error.get("code", "method_not_allowed") == "method_not_allowed"  # Anthropic's shape has no code
    assert fake.received == [] and fake_anthropic.received == []


def test_connect_to_an_authority_is_never_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    exchange = proxy.raw(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n")
    assert raw_answer(exchange).status in (404, 405)
    assert fake.received == []


def test_the_admin_apis_methods_are_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    methods = ["GET", "POST", "DELETE", "HEAD", "OPTIONS"]
    for method in methods:
        proxy.call(method, PROJECTS, body=b"{}" if method == "POST" else None)
    assert [received.method for received in fake.received] == [method.encode() for method in methods]


def test_a_refused_method_is_counted(proxy: InMemoryProxy) -> None:
    before = requests_counted(proxy)
    assert raw_answer(proxy.raw(raw_get(TARGET).replace(b"GET ", b"TRACE ", 1))).status == 405
    after = requests_counted(proxy)
    assert [key for key in after if after[key] != before.get(key, 0) and key[0] == "proxy"] == [
        ("proxy", "OTHER", "405")]

