"""The opt-in response cache and request coalescing, through the real daemon."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AUTH, assert_clean_output
from tests.support.daemon import Daemon
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply, reply
from tests.support.raw_http import Answer, call

COSTS = "/v1/organization/costs"
PAGE = {"data": [{"api_key_id": "key_1234567890abcdef"}]}


def costs_calls(upstream: FakeUpstream) -> int:
    return sum(r.target.startswith(COSTS.encode()) for r in upstream.received)


@pytest.fixture
def cached(upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> Iterator[Daemon]:
    upstream.on(COSTS, reply(body=PAGE))
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--watch", "off",
                     "--cache-ttl", "600"], cwd=tmp_path).wait_ready()
    yield daemon
    assert daemon.stop() == 0
    assert_clean_output(daemon)


def test_an_identical_get_is_a_hit_and_the_upstream_is_asked_once(cached: Daemon, upstream: FakeUpstream) -> None:
    first = call(cached.url, COSTS + "?start_time=1")
    second = call(cached.url, COSTS + "?start_time=1")
    assert (first.header("X-Orgproxy-Cache"), second.header("X-Orgproxy-Cache")) == ("miss", "hit")
    assert first.body == second.body
    assert second.json()["data"][0]["api_key_name"] == "checkout-service-production"
    assert costs_calls(upstream) == 1
    assert call(cached.url, COSTS + "?start_time=2").header("X-Orgproxy-Cache") == "miss"  # other query
    assert costs_calls(upstream) == 2


def test_another_credential_never_gets_the_first_ones_entry(cached: Daemon, upstream: FakeUpstream) -> None:
    call(cached.url, COSTS + "?start_time=1", headers={"Authorization": "Bearer sk-admin-first"})
    other = call(cached.url, COSTS + "?start_time=1", headers={"Authorization": "Bearer sk-admin-second"})
    assert other.header("X-Orgproxy-Cache") == "miss"
    assert costs_calls(upstream) == 2
    assert upstream.last().header("Authorization") == "Bearer sk-admin-second"
    anonymous = call(cached.url, COSTS + "?start_time=1", headers={})
    assert anonymous.header("X-Orgproxy-Cache") == "miss"


def test_other_organization_headers_are_other_entries(cached: Daemon, upstream: FakeUpstream) -> None:
    call(cached.url, COSTS + "?start_time=1", headers={**AUTH, "OpenAI-Organization": "org-a"})
    answer = call(cached.url, COSTS + "?start_time=1", headers={**AUTH, "OpenAI-Organization": "org-b"})
    assert answer.header("X-Orgproxy-Cache") == "miss"


def test_answers_other_than_200_are_never_cached(cached: Daemon, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(500, "<html>oops</html>", content_type="text/html"))
    for _ in range(2):
        answer = call(cached.url, COSTS + "?start_time=1")
        assert (answer.status, answer.header("X-Orgproxy-Cache")) == (500, "miss")
    assert costs_calls(upstream) == 2


def test_names_changed_by_a_reload_show_on_a_cached_entry(cached: Daemon, upstream: FakeUpstream,
                                                          aliases: Path) -> None:
    call(cached.url, COSTS + "?start_time=1")
    aliases.write_text('[api_keys]\nkey_1234567890abcdef = "renamed"\n')
    cached.process.send_signal(signal.SIGHUP)
    cached.wait_for("Alias file reloaded (SIGHUP)")
    answer = call(cached.url, COSTS + "?start_time=1")
    assert answer.header("X-Orgproxy-Cache") == "hit"
    assert answer.json()["data"][0]["api_key_name"] == "renamed"


def test_an_entry_expires_after_the_ttl(upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> None:
    upstream.on(COSTS, reply(body=PAGE))
    daemon = Daemon(["--upstream", upstream.url, "--cache-ttl", "0.3"], cwd=tmp_path).wait_ready()
    try:
        stored = time.monotonic()
        assert call(daemon.url, COSTS + "?start_time=1").header("X-Orgproxy-Cache") == "miss"
        outcomes = []
        while (outcome := call(daemon.url, COSTS + "?start_time=1").header("X-Orgproxy-Cache")) == "hit":
            outcomes.append(outcome)
            assert time.monotonic() - stored < 10, "the entry never expired"
        assert outcome == "miss"
        assert time.monotonic() - stored >= 0.3  # not before its time
        assert costs_calls(upstream) == 2
    finally:
        assert daemon.stop() == 0
        assert_clean_output(daemon)


def in_flight(daemon: Daemon) -> float:
    text = call(daemon.url, "/metrics").body.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "orgproxy_requests_in_flight":
                return sample.value
    raise AssertionError("no in-flight gauge")


def test_identical_gets_in_flight_share_one_upstream_call(upstream: FakeUpstream, aliases: Path,
                                                         tmp_path: Path) -> None:
    release = threading.Event()

    def slow(handler: Handler, received: Received) -> None:
        release.wait(20)
        handler.send_reply(Reply(body=b'{"data": [{"api_key_id": "key_1234567890abcdef"}]}'))

    upstream.on(COSTS, slow)
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--cache-ttl", "60"],
                    cwd=tmp_path).wait_ready()
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(call(daemon.url, COSTS + "?start_time=1")))
               for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while in_flight(daemon) < 8:  # all eight are waiting in the proxy
            assert time.monotonic() < deadline
        release.set()
        for thread in threads:
            thread.join(20)
        assert len(answers) == 8 and all(a.status == 200 for a in answers)
        assert sorted(a.header("X-Orgproxy-Cache") for a in answers) == ["coalesced"] * 7 + ["miss"]
        assert all(a.json()["data"][0]["api_key_name"] == "checkout-service-production" for a in answers)
        assert costs_calls(upstream) == 1
    finally:
        release.set()
        assert daemon.stop() == 0
        assert_clean_output(daemon)


def test_without_a_ttl_nothing_is_cached(daemon: Daemon, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(body=PAGE))
    for _ in range(2):
        assert call(daemon.url, COSTS + "?start_time=1").header("X-Orgproxy-Cache") is None
    assert costs_calls(upstream) == 2
