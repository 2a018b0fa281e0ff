"""The resource tree ``make_site`` builds, in memory: the proxy's own pages, the 404s every
other path gets, the access guard in front of it all, and the limits on a request."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.web.client import ResponseNeverReceived

from orgproxy.errors import ProxyError, bad_request, headers_too_large, too_many_headers, uri_too_long
from orgproxy.web.site import OrgproxyChannel
from tests.support.answers import AUTH
from tests.support.fake_openai import FakeOpenAI, hold, reply
from tests.support.memory import InMemoryProxy
from tests.support.scraped import scraped

COSTS = "/v1/organization/costs"
PROJECTS = "/v1/organization/projects"
MIB = 1024 * 1024
CLIENT_TOKEN = "team-secret-4f9a"

MakeProxy = Callable[..., InMemoryProxy]


def requests_counted(proxy: InMemoryProxy) -> dict[tuple[str, str, str], float]:
    """``orgproxy_requests_total`` by (route, method, status), read from /metrics (summed over
    the providers)."""
    answer = proxy.get("/metrics")
    assert answer.status == 200
    counted: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            if sample.name == "orgproxy_requests_total":
                labels = sample.labels
                key = (labels["route"], labels["method"], labels["status"])
                counted[key] = counted.get(key, 0.0) + sample.value
    return counted


def counted_since(before: dict[tuple[str, str, str], float],
                  after: dict[tuple[str, str, str], float]) -> dict[tuple[str, str, str], float]:
    """The series that grew, and by how much (the metrics registry lives for the process)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


# --- the proxy's own pages --------------------------------------------------------------

def test_health_counts_names_and_never_lists_them(proxy: InMemoryProxy, aliases: Path) -> None:
    answer = proxy.get("/health", headers={})
    assert answer.status == 200
    assert answer.header("Content-Type") == "application/json"
    body = answer.json()
    assert body["status"] == "ok"
    assert body["names_loaded"] == 5
    # [users] names OpenAI's user_id and Anthropic's account_id alike; the user counts once,
    # under its table's first field, so the fields' counts add up to names_loaded.
    assert body["names_by_field"] == {"api_key_id": 3, "project_id": 1, "user_id": 1, "workspace_id": 0,
                                      "account_id": 0, "service_account_id": 0}
    assert body["names_by_source"]["aliases"] == 5
    assert (body["aliases"]["path"], body["aliases"]["names"], body["aliases"]["error"]) == (str(aliases), 5, None)
    assert body["discovery"] == {"enabled": False}
    assert b"checkout" not in answer.body and b"key_1234567890abcdef" not in answer.body


class RefusesPerNameWork(dict[str, dict[str, str]]):
    """An id field's names that fail any look at them: a call that touches them is
    doing work per name."""

    def _refuse(self, *args: object) -> None:
        raise AssertionError("/health looked at every name")

    __iter__ = __len__ = __getitem__ = get = items = keys = values = __contains__ = _refuse  # type: ignore[assignment]


def test_health_takes_every_count_from_the_snapshot_and_looks_at_no_name(proxy: InMemoryProxy) -> None:
    """What it shows was counted when the snapshot was built: a call costs the same with
    200,000 names as with five."""
    current = proxy.service.current
    expected = proxy.get("/health").json()
    current.names = dataclasses.replace(current.names, by_field=RefusesPerNameWork(),
                                        records=RefusesPerNameWork(), ids_by_name=RefusesPerNameWork())
    body = proxy.get("/health").json()
    assert {key: body[key] for key in ("names_loaded", "names_by_field", "names_by_source")} == {
        key: expected[key] for key in ("names_loaded", "names_by_field", "names_by_source")}
    assert sum(body["names_by_field"].values()) == body["names_loaded"] == 5


def test_head_on_health_has_no_body(proxy: InMemoryProxy) -> None:
    answer = proxy.call("HEAD", "/health")
    assert (answer.status, answer.body) == (200, b"")


def test_metrics_count_requests_by_route_method_and_status(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(429, {"error": {"message": "slow down"}}))
    before = requests_counted(proxy)
    assert proxy.get(COSTS + "?start_time=1").status == 429
    assert proxy.get(PROJECTS).status == 200
    assert proxy.get(PROJECTS).status == 200
    assert proxy.call("POST", "/health").status == 405
    assert proxy.get("/v1/models").status == 404
    assert proxy.get("/orgproxy/unknown").status == 200
    assert counted_since(before, requests_counted(proxy)) == {
        ("proxy", "GET", "429"): 1,
        ("proxy", "GET", "200"): 2,
        ("health", "POST", "405"): 1,
        ("other", "GET", "404"): 1,
        ("unknown_report", "GET", "200"): 1,
        ("metrics", "GET", "200"): 1,  # the first read of /metrics, counted once it finished
    }


def test_a_client_that_left_is_counted_once_as_499(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, hold)
    before = requests_counted(proxy)
    leaving = proxy.start("GET", COSTS + "?start_time=1")
    proxy.flush()
    leaving.addErrback(lambda failure: failure.trap(ResponseNeverReceived))
    leaving.cancel()
    proxy.flush()
    assert counted_since(before, requests_counted(proxy)) == {
        ("proxy", "GET", "499"): 1,
        ("metrics", "GET", "200"): 1,
    }


def test_metrics_is_prometheus_text(proxy: InMemoryProxy) -> None:
    answer = proxy.get("/metrics")
    assert answer.header("Content-Type").startswith("text/plain")
    families = {family.name for family in text_string_to_metric_families(answer.body.decode())}
    assert {"orgproxy_requests", "orgproxy_upstream_seconds", "orgproxy_requests_in_flight",
            "orgproxy_ids", "orgproxy_names_loaded"} <= families


def see_unknown_ids(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    """Two requests, a minute apart, whose answers carry ids nobody named."""
    fake.on(COSTS, reply(body={"data": [{"api_key_id": "key_9f8e7d6c5b4a3210"}, {"api_key_id": "key_9f8e7d6c5b4a3210"},
                                        {"project_id": "proj_zzz"}, {"api_key_id": "key_1234567890abcdef"}]}))
    proxy.advance(1_764_000_000)  # 2025-11-24T16:00:00Z
    assert proxy.get(COSTS + "?start_time=1").status == 200
    proxy.advance(60)
    assert proxy.get(COSTS + "?start_time=1").status == 200


def test_unknown_report_lists_the_ids_nobody_named(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    assert proxy.get("/orgproxy/unknown").json() == {"object": "list", "data": [], "dropped": 0}
    see_unknown_ids(proxy, fake)
    answer = proxy.get("/orgproxy/unknown")
    assert (answer.status, answer.header("Content-Type")) == (200, "application/json")
    assert answer.json() == {"object": "list", "dropped": 0, "data": [
        {"provider": "openai", "field": "api_key_id", "id": "key_9f8e7d6c5b4a3210",
         "first_seen": "2025-11-24T16:00:00+00:00", "last_seen": "2025-11-24T16:01:00+00:00", "count": 4},
        {"provider": "openai", "field": "project_id", "id": "proj_zzz", "first_seen": "2025-11-24T16:00:00+00:00",
         "last_seen": "2025-11-24T16:01:00+00:00", "count": 2},
    ]}


def test_unknown_report_as_alias_file_tables(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    see_unknown_ids(proxy, fake)
    answer = proxy.get("/orgproxy/unknown?format=toml")
    assert (answer.status, answer.header("Content-Type")) == (200, "application/toml; charset=utf-8")
    lines = answer.body.decode().splitlines()
    assert lines[lines.index("[api_keys]") + 1] == (
        '# key_9f8e7d6c5b4a3210 = ""  # seen 4 times, 2025-11-24T16:00:00+00:00 to 2025-11-24T16:01:00+00:00')
    assert lines[lines.index("[projects]") + 1] == (
        '# proj_zzz = ""  # seen 2 times, 2025-11-24T16:00:00+00:00 to 2025-11-24T16:01:00+00:00')
    assert "[users]" not in lines


def test_an_id_seen_once_is_seen_1_time(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body={"data": [{"api_key_id": "key_once"}]}))
    proxy.advance(1_764_000_000)
    assert proxy.get(COSTS + "?start_time=1").status == 200
    lines = proxy.get("/orgproxy/unknown?format=toml").body.decode().splitlines()
    assert lines[lines.index("[api_keys]") + 1].endswith(
        "# seen 1 time, 2025-11-24T16:00:00+00:00 to 2025-11-24T16:00:00+00:00")


@pytest.mark.parametrize("wanted", ["yaml", "TOML", "json,toml", "%1b%5b31m"])
def test_unknown_report_in_an_unknown_format_is_a_400_in_the_providers_shape(proxy: InMemoryProxy,
                                                                           wanted: str) -> None:
    answer = proxy.get(f"/orgproxy/unknown?format={wanted}")
    assert (answer.status, answer.header("Content-Type")) == (400, "application/json")
    error = answer.error()
    assert (error["code"], error["param"], error["type"]) == ("unknown_format", "format", "invalid_request_error")
    assert "\x1b" not in error["message"], "text from the request is escaped"


@pytest.mark.parametrize("page", ["/health", "/metrics", "/orgproxy/unknown"])
def test_own_pages_answer_other_methods_with_405_and_allow(proxy: InMemoryProxy, page: str) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        answer = proxy.call(method, page, body=b"{}")
        assert answer.status == 405, method
        assert answer.header("Allow") == "GET, HEAD"
        assert answer.error()["type"] == "invalid_request_error"


# --- every other path ---------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/",
    "/v1",
    "/v1/",
    "/v1/chat/completions",
    "/v1/models",
    "/v2/organization/costs",
    "/health/x",
    "/metrics/x",
    "/orgproxy/unknown/x",
    "/orgproxy/other",
    "/v1/organization",
    "/v1/organization/",
    "/v1/%6frganization/costs",
    "/v1/organization%2Fcosts",
    "/v1/organization%2fx",
    "/%761/organization/costs",
    "/v1//organization/costs",
    "/v1/./organization/costs",
    "/v1/x/../organization/costs",
])
def test_every_other_path_is_an_openai_shaped_404_never_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                                  target: str) -> None:
    for method, body in (("GET", None), ("HEAD", None), ("POST", b"{}"), ("DELETE", None)):
        answer = proxy.call(method, target + "?start_time=1", body=body)
        assert answer.status == 404, method
        if method != "HEAD":
            assert answer.header("Content-Type") == "application/json"
            error = answer.error()
            assert (error["type"], error["code"]) == ("invalid_request_error", "not_found")
    assert fake.received == []


# --- who may call -------------------------------------------------------------------------

@pytest.fixture
def guarded(make_proxy: MakeProxy, aliases: Path, tmp_path: Path) -> InMemoryProxy:
    token_file = tmp_path / "client.token"
    token_file.write_text(CLIENT_TOKEN + "\n")  # surrounding whitespace is not part of it
    return make_proxy("--aliases", str(aliases), "--client-token-file", str(token_file))


@pytest.mark.parametrize("token", [None, "", "team-secret-4f9", CLIENT_TOKEN + "-and-more", CLIENT_TOKEN.upper()])
def test_without_the_right_client_token_the_answer_is_401(guarded: InMemoryProxy, fake: FakeOpenAI,
                                                          token: str | None) -> None:
    headers = AUTH if token is None else {**AUTH, "X-Orgproxy-Token": token}
    for target in (COSTS + "?start_time=1", "/metrics", "/orgproxy/unknown", "/v1/models"):
        answer = guarded.get(target, headers=headers)
        assert answer.status == 401, target
        assert answer.error()["code"] == "invalid_orgproxy_token"
    assert fake.received == []


def test_with_the_client_token_requests_pass_and_the_token_is_never_forwarded(
        guarded: InMemoryProxy, fake: FakeOpenAI, logged: list[dict]) -> None:
    headers = {**AUTH, "X-Orgproxy-Token": CLIENT_TOKEN}
    assert guarded.get(COSTS + "?start_time=1", headers=headers).status == 200
    assert guarded.get("/metrics", headers=headers).status == 200
    received = fake.last()
    assert received.header("X-Orgproxy-Token") is None
    assert all(CLIENT_TOKEN.encode() not in value for _, value in received.headers)
    assert CLIENT_TOKEN not in repr(logged)


def test_metrics_also_take_the_client_token_as_a_bearer_credential_as_prometheus_sends_it(
        guarded: InMemoryProxy, fake: FakeOpenAI) -> None:
    assert guarded.get("/metrics", headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}).status == 200
    assert guarded.get("/metrics", headers={"Authorization": f"bearer {CLIENT_TOKEN}"}).status == 200
    for wrong in (f"Bearer {CLIENT_TOKEN}x", f"Basic {CLIENT_TOKEN}", CLIENT_TOKEN, "Bearer "):
        assert guarded.get("/metrics", headers={"Authorization": wrong}).status == 401, wrong
    # Elsewhere Authorization is the caller's admin key, for OpenAI: never the client token.
    for target in (COSTS + "?start_time=1", "/orgproxy/unknown"):
        assert guarded.get(target, headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}).status == 401, target
    assert fake.received == []


def test_health_is_open_without_the_client_token(guarded: InMemoryProxy) -> None:
    # Liveness probes cannot send one, and /health tells nothing but counts.
    assert guarded.get("/health", headers={}).status == 200


def test_a_connection_from_outside_allow_from_is_closed_as_it_is_accepted(make_proxy: MakeProxy,
                                                                          fake: FakeOpenAI) -> None:
    proxy = make_proxy("--allow-from", "10.0.0.0/8")
    before = scraped("orgproxy_connections_closed_total", {"reason": "forbidden_source"})
    for target in (COSTS + "?start_time=1", "/health", "/metrics", "/orgproxy/unknown", "/", "/v1/models"):
        exchange = proxy.raw(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), client="127.0.0.1")
        assert exchange.refused_at_accept, target  # no channel: not a byte of it is read
        assert exchange.written == b""
    assert scraped("orgproxy_connections_closed_total", {"reason": "forbidden_source"}) == before + 6
    assert fake.received == []


def test_a_caller_inside_allow_from_is_answered(make_proxy: MakeProxy, fake: FakeOpenAI) -> None:
    proxy = make_proxy("--allow-from", "10.0.0.0/8")
    exchange = proxy.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", client="10.1.2.3")
    assert exchange.written.startswith(b"HTTP/1.1 200 ")
    assert proxy.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", client="11.1.2.3").refused_at_accept


# --- limits on a request --------------------------------------------------------------------

def test_a_request_body_over_1_mib_is_413_and_not_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    answer = proxy.call("POST", PROJECTS, headers={**AUTH, "Content-Type": "application/json"},
                        body=b"x" * (MIB + 1))
    assert answer.status == 413
    assert answer.error()["code"] == "request_too_large"
    assert fake.received == []


def test_a_request_body_of_exactly_1_mib_is_forwarded_whole(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    exactly = json.dumps({"name": "p" * (MIB - 12)}).encode()
    assert len(exactly) == MIB
    assert proxy.call("POST", PROJECTS, body=exactly).status == 200
    assert fake.last().body == exactly


def test_a_body_over_1_mib_sent_in_pieces_is_413_and_not_forwarded(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    exchange = proxy.raw(b"POST /v1/organization/projects HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                         % (MIB + 1) + b"x" * 1000)
    assert exchange.written == b""  # the rest of the body has yet to come
    exchange.send(b"x" * (MIB + 1 - 1000))
    head, _, body = exchange.written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert fake.received == []


def test_beyond_max_concurrency_a_request_gets_503_with_retry_after(make_proxy: MakeProxy,
                                                                  fake: FakeOpenAI) -> None:
    proxy = make_proxy("--max-concurrency", "1")
    fake.on(COSTS, hold)
    held = proxy.start("GET", COSTS + "?start_time=1")
    proxy.flush()
    assert len(fake.received) == 1
    answer = proxy.get(PROJECTS)
    assert answer.status == 503
    assert answer.header("Retry-After") == "1"
    assert answer.error()["code"] == "too_many_requests"
    assert proxy.get("/health").status == 200  # the proxy's own pages are not limited
    assert len(fake.received) == 1
    held.addErrback(lambda failure: failure.trap(ResponseNeverReceived))
    held.cancel()  # the held request's client leaves: its place is free again
    proxy.flush()
    assert proxy.get(PROJECTS).status == 200


# --- 414, 431 or 400: the channel's own counts agree with Twisted's ----------------------------

class AnswersAsTwistedsCountsWould(OrgproxyChannel):
    """The site's channel, recording at each refusal the answer it gives and the one
    Twisted's own private counts (``_receivedHeaderSize``, ``_receivedHeaderCount``,
    ``_HTTPChannel__first_line``, which the channel no longer reads) would have given."""

    given: list[ProxyError]
    expected: list[ProxyError]

    def connectionMade(self) -> None:
        self.given, self.expected = [], []
        super().connectionMade()

    def refuse_malformed(self) -> None:
        if self._receivedHeaderSize > self.totalHeadersSize:  # type: ignore[attr-defined]
            self.expected.append(headers_too_large(self.totalHeadersSize))
        elif self._receivedHeaderCount > self.maxHeaders:  # type: ignore[attr-defined]
            self.expected.append(too_many_headers(self.maxHeaders))
        else:
            self.expected.append(bad_request())
        super().refuse_malformed()

    def lineLengthExceeded(self, line: bytes) -> None:
        reading_request_line = self._HTTPChannel__first_line  # type: ignore[attr-defined]
        self.expected.append(uri_too_long(self.MAX_LENGTH) if reading_request_line
                             else headers_too_large(self.MAX_LENGTH))
        super().lineLengthExceeded(line)

    def answer_and_close(self, error: ProxyError) -> None:
        self.given.append(error)
        super().answer_and_close(error)


def head(*lines: bytes, end: bytes = b"\r\n") -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + end


GET = b"GET /v1/organization/costs HTTP/1.1"
HEADERS = [b"X-%d: y" % i for i in range(600)]
MALFORMED_HEADS = {
    "request line too long": head(b"GET /" + b"a" * 17000 + b" HTTP/1.1"),
    "request line too long, no end yet": b"GET /" + b"a" * 17000,
    "after a blank line, a request line too long": b"\r\n" + head(b"GET /" + b"a" * 17000 + b" HTTP/1.1"),
    "header line too long": head(GET, b"X-Big: " + b"b" * 17000),
    "header line too long, no end yet": head(GET, end=b"X-Big: " + b"b" * 17000),
    "request line and headers over 16 KiB": head(GET, *[b"X-Filler-%d: %s" % (i, b"z" * 100) for i in range(160)]),
    "exactly 16 KiB then one byte more": head(b"GET / HTTP/1.1", b"X: " + b"z" * (16384 - 14 - 3), b"Y"),
    "exactly 16 KiB, the last header malformed": head(b"GET / HTTP/1.1", b"X" * (16384 - 14)),
    "16 KiB and a byte, the last header malformed": head(b"GET / HTTP/1.1", b"X" * (16384 - 13)),
    "500 headers and a malformed one": head(GET, *HEADERS[:500], b"no colon"),
    "499 headers and a malformed one": head(GET, *HEADERS[:499], b"no colon"),
    "501 headers": head(GET, *HEADERS[:501]),
    "501 headers, the last one folded on": head(GET, *HEADERS[:500], b"X-Last: a", b" folded"),
    "500 headers, the last malformed, then more": head(GET, *HEADERS[:499], b"no colon", *HEADERS[499:520]),
    "600 headers": head(GET, *HEADERS),
    "not a request line": head(b"NONSENSE"),
    "two lengths": head(GET, b"Content-Length: 1", b"Content-Length: 2"),
    "a length that is not a number": head(GET, b"Content-Length: 1x"),
    "a NUL in a header": head(GET, b"X-A: a\x00b"),
    "a header name with a space": head(GET, b"X A: b"),
}


def test_refusals_are_414_431_or_400_exactly_as_twisteds_own_counts_say(proxy: InMemoryProxy,
                                                                       fake: FakeOpenAI) -> None:
    proxy.parts.front.site.protocol = AnswersAsTwistedsCountsWould
    for (name, data), piece in itertools.product(MALFORMED_HEADS.items(), (None, 1000, 97)):
        # A request answered first on the same connection: the counts start again for the next.
        exchange = proxy.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
        for part in pieces:
            if exchange.closed_by_proxy:
                break
            exchange.send(part)
        channel = exchange.channel
        assert channel.given and channel.given == channel.expected, (name, piece)
        assert exchange.written.count(b"HTTP/1.1 %d " % channel.given[0].status) == 1, (name, piece)
    assert fake.received == []
