"""The opt-in response cache and request coalescing, in memory: the clock moves only when
a test moves it, so expiry is checked to the second."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.web import server
from twisted.web.client import ResponseNeverReceived

from orgproxy.ops.reload import ReloadService
from tests.support.answers import AUTH
from tests.support.fake_openai import FakeOpenAI, Received, reply
from tests.support.memory import InMemoryProxy

COSTS = "/v1/organization/costs"
PAGE = {"data": [{"api_key_id": "key_1234567890abcdef"}]}
TTL = 600

MakeProxy = Callable[..., InMemoryProxy]


class Held:
    """Keeps every request unanswered until ``release`` answers them all with one page."""

    def __init__(self) -> None:
        self.requests: list[server.Request] = []

    def __call__(self, request: server.Request, received: Received) -> int:
        self.requests.append(request)
        return server.NOT_DONE_YET

    def release(self, body: bytes) -> None:
        for request in self.requests:
            request.setHeader(b"content-type", b"application/json")
            request.write(body)
            request.finish()


def costs_calls(fake: FakeOpenAI) -> int:
    return fake.paths().count(COSTS.encode())


def outcome(proxy: InMemoryProxy, target: str = COSTS + "?start_time=1",
            headers: dict[str, str] | None = None) -> str | None:
    answer = proxy.get(target, headers=headers)
    assert answer.status == 200, answer.body
    return answer.header("X-Orgproxy-Cache")


def in_flight(proxy: InMemoryProxy) -> float:
    for family in text_string_to_metric_families(proxy.get("/metrics").body.decode()):
        for sample in family.samples:
            if sample.name == "orgproxy_requests_in_flight":
                return sample.value
    raise AssertionError("no in-flight gauge")


@pytest.fixture
def cached(make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path) -> InMemoryProxy:
    fake.on(COSTS, reply(body=PAGE))
    return make_proxy("--aliases", str(aliases), "--cache-ttl", str(TTL))


def test_an_identical_get_is_a_hit_and_the_upstream_is_asked_once(cached: InMemoryProxy, fake: FakeOpenAI) -> None:
    first = cached.get(COSTS + "?start_time=1")
    second = cached.get(COSTS + "?start_time=1")
    assert (first.header("X-Orgproxy-Cache"), second.header("X-Orgproxy-Cache")) == ("miss", "hit")
    assert first.body == second.body
    assert second.json()["data"][0]["api_key_name"] == "checkout-service-production"
    assert costs_calls(fake) == 1
    assert outcome(cached, COSTS + "?start_time=2") == "miss"  # another query
    assert costs_calls(fake) == 2


def test_another_credential_never_gets_the_first_ones_entry(cached: InMemoryProxy, fake: FakeOpenAI) -> None:
    assert outcome(cached, headers={"Authorization": "Bearer sk-admin-first"}) == "miss"
    assert outcome(cached, headers={"Authorization": "Bearer sk-admin-second"}) == "miss"
    assert costs_calls(fake) == 2
    assert fake.last().header("Authorization") == b"Bearer sk-admin-second"
    assert outcome(cached, headers={"Authorization": "Bearer sk-admin-second"}) == "hit"


def test_requests_without_a_credential_are_never_cached(cached: InMemoryProxy, fake: FakeOpenAI) -> None:
    """They would all share one entry: each goes upstream, and says nothing of the cache."""
    for _ in range(2):
        assert outcome(cached, headers={}) is None
    assert costs_calls(fake) == 2
    assert fake.last().header("Authorization") is None


@pytest.mark.parametrize("variant", [
    [("OpenAI-Beta", "assistants=v2")],
    [("Accept", "text/csv")],
    [("OpenAI-Organization", "org-a"), ("OpenAI-Organization", "org-b")],
], ids=["openai-beta", "accept", "two-organization-headers"])
def test_every_forwarded_header_is_in_the_key(cached: InMemoryProxy, fake: FakeOpenAI,
                                               variant: list[tuple[str, str]]) -> None:
    plain = [*AUTH.items(), ("OpenAI-Organization", "org-a,org-b"), ("Accept", "application/json")]
    assert outcome(cached, headers=plain) == "miss"
    changed = [*AUTH.items(), *variant] + [(name, value) for name, value in plain[1:]
                                         if name not in {n for n, _ in variant}]
    assert outcome(cached, headers=changed) == "miss"
    assert costs_calls(fake) == 2
    sent = fake.last()
    for name, _ in variant:
        assert [v for k, v in sent.headers if k.lower() == name.lower().encode()] == [
            v.encode() for n, v in variant if n == name]
    assert outcome(cached, headers=changed) == "hit"


def test_other_organization_headers_are_other_entries(cached: InMemoryProxy) -> None:
    assert outcome(cached, headers={**AUTH, "OpenAI-Organization": "org-a"}) == "miss"
    assert outcome(cached, headers={**AUTH, "OpenAI-Organization": "org-b"}) == "miss"
    assert outcome(cached, headers={**AUTH, "OpenAI-Project": "proj-b", "OpenAI-Organization": "org-b"}) == "miss"
    assert outcome(cached, headers={**AUTH, "OpenAI-Organization": "org-a"}) == "hit"


def test_answers_other_than_200_are_never_cached(cached: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(500, "<html>oops</html>", content_type="text/html"))
    for _ in range(2):
        answer = cached.get(COSTS + "?start_time=1")
        assert (answer.status, answer.header("X-Orgproxy-Cache")) == (500, "miss")
    assert costs_calls(fake) == 2


def test_only_gets_are_cached(cached: InMemoryProxy, fake: FakeOpenAI) -> None:
    for _ in range(2):
        answer = cached.call("POST", COSTS, body=b"{}")
        assert answer.header("X-Orgproxy-Cache") is None
    assert costs_calls(fake) == 2


def test_names_changed_by_a_reload_show_on_a_cached_entry(cached: InMemoryProxy, aliases: Path) -> None:
    assert outcome(cached) == "miss"
    aliases.write_text('[api_keys]\nkey_1234567890abcdef = "renamed"\n')
    reloader = next(service for service in cached.service if isinstance(service, ReloadService))
    reloader.on_sighup()  # what SIGHUP runs
    answer = cached.get(COSTS + "?start_time=1")
    assert answer.header("X-Orgproxy-Cache") == "hit"
    assert answer.json()["data"][0]["api_key_name"] == "renamed"


def test_one_cached_page_answers_each_grouping_its_own_way(make_proxy: MakeProxy, fake: FakeOpenAI,
                                                           tmp_path: Path) -> None:
    # Asked by name or by id, the upstream is asked the same: one entry, merged or not
    # per request.
    aliases = tmp_path / "rotated.toml"
    aliases.write_text('[api_keys]\nkey_a = "checkout"\nkey_b = "checkout"\n')
    proxy = make_proxy("--aliases", str(aliases), "--cache-ttl", str(TTL))
    rows = [{"api_key_id": "key_a", "amount": {"value": 1, "currency": "usd"}},
            {"api_key_id": "key_b", "amount": {"value": 2, "currency": "usd"}}]
    fake.on(COSTS, reply(body={"object": "page", "data": [{"object": "bucket", "results": rows}]}))
    by_id = proxy.get(COSTS + "?start_time=1&group_by=api_key_id")
    by_name = proxy.get(COSTS + "?start_time=1&group_by=api_key_name")
    assert (by_id.header("X-Orgproxy-Cache"), by_name.header("X-Orgproxy-Cache")) == ("miss", "hit")
    assert [r["api_key_id"] for r in by_id.json()["data"][0]["results"]] == ["key_a", "key_b"]
    (merged,) = by_name.json()["data"][0]["results"]
    assert (merged["api_key_ids"], merged["amount"]["value"]) == (["key_a", "key_b"], 3)
    assert costs_calls(fake) == 1


def test_an_entry_expires_after_the_ttl(make_proxy: MakeProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=PAGE))
    proxy = make_proxy("--cache-ttl", "30")
    assert outcome(proxy) == "miss"
    proxy.advance(29.9)
    assert outcome(proxy) == "hit"  # not before its time
    proxy.advance(0.1)
    assert outcome(proxy) == "miss"
    assert costs_calls(fake) == 2
    assert outcome(proxy) == "hit"  # stored afresh


def test_identical_gets_in_flight_share_one_upstream_call(cached: InMemoryProxy, fake: FakeOpenAI) -> None:
    held = Held()
    fake.on(COSTS, held)
    waiting = [cached.start("GET", COSTS + "?start_time=1") for _ in range(8)]
    cached.flush()
    assert in_flight(cached) == 8  # all eight are waiting in the proxy
    assert costs_calls(fake) == 1
    held.release(json.dumps(PAGE).encode())
    answers = [cached.answer(response) for response in waiting]
    assert all(a.status == 200 for a in answers)
    assert sorted(a.header("X-Orgproxy-Cache") for a in answers) == ["coalesced"] * 7 + ["miss"]
    assert all(a.json()["data"][0]["api_key_name"] == "checkout-service-production" for a in answers)
    assert costs_calls(fake) == 1


def test_a_coalesced_client_that_leaves_does_not_cancel_the_shared_call(cached: InMemoryProxy,
                                                                        fake: FakeOpenAI) -> None:
    held = Held()
    fake.on(COSTS, held)
    first, second = (cached.start("GET", COSTS + "?start_time=1") for _ in range(2))
    cached.flush()
    first.addErrback(lambda failure: failure.trap(ResponseNeverReceived))
    first.cancel()
    cached.flush()
    assert fake.abandoned == []
    held.release(json.dumps(PAGE).encode())
    answer = cached.answer(second)
    assert (answer.status, answer.header("X-Orgproxy-Cache")) == (200, "coalesced")
    assert costs_calls(fake) == 1


def test_when_every_coalesced_client_leaves_the_upstream_call_is_cancelled(cached: InMemoryProxy,
                                                                          fake: FakeOpenAI) -> None:
    fake.on(COSTS, Held())
    leaving = [cached.start("GET", COSTS + "?start_time=1") for _ in range(2)]
    cached.flush()
    for response in leaving:
        response.addErrback(lambda failure: failure.trap(ResponseNeverReceived))
        response.cancel()
    cached.flush()
    assert fake.abandoned == fake.received and costs_calls(fake) == 1


def test_without_a_ttl_nothing_is_cached(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=PAGE))
    for _ in range(2):
        assert outcome(proxy) is None
    assert costs_calls(fake) == 2
