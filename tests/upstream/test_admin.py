"""Discovery's Admin API client (upstream/admin.py) in memory: treq over treq's
RequestTraversalAgent, in front of the fake OpenAI, with a deadline on a MemoryReactorClock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import pytest
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IAgent
from zope.interface import implementer

from orgproxy.errors import ProxyError
from orgproxy.upstream.admin import AdminClient
from orgproxy.upstream.client import UpstreamResponse
from tests.support.answers import TOKEN
from tests.support.fake_openai import (Behaviour, FakeOpenAI, Received, close_mid_body, example, gzipped,
                                       headers_then_stall, hold, reply)

BASE_URL = "http://openai.test/"  # the trailing slash is the client's to drop
CREDENTIAL = [(b"Authorization", f"Bearer {TOKEN}".encode())]
USERS = "/v1/organization/users"
TIMEOUT = 5.0
CAP = 1000


class Harness:
    """An AdminClient in front of ``fake``, on a clock the test moves."""

    def __init__(self, fake: FakeOpenAI, agent: IAgent | None = None):
        self.clock = MemoryReactorClock()
        self.traversal = RequestTraversalAgent(fake)
        self.client = AdminClient(self.clock, BASE_URL, agent or self.traversal, CREDENTIAL, TIMEOUT, CAP)

    def start(self, path: str = USERS, params: Sequence[tuple[str, str]] = ()) -> list[Any]:
        """Send a GET; the list gets its outcome (a response or a Failure) when there is one."""
        outcome: list[Any] = []
        self.get_deferred = self.client.get(path, params)
        self.get_deferred.addBoth(outcome.append)
        self.traversal.flush()
        return outcome

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.traversal.flush()

    def response(self, path: str = USERS, params: Sequence[tuple[str, str]] = ()) -> UpstreamResponse:
        outcome = self.start(path, params)
        assert outcome and isinstance(outcome[0], UpstreamResponse), outcome
        return outcome[0]

    def error(self, outcome: list[Any]) -> ProxyError:
        """The ProxyError the GET failed with; it never holds the credential."""
        assert outcome and isinstance(outcome[0], Failure), outcome
        assert outcome[0].check(ProxyError), outcome[0]
        error: ProxyError = outcome[0].value
        assert TOKEN not in str(error) and TOKEN.encode() not in error.body()
        return error


@pytest.fixture
def harness(fake: FakeOpenAI) -> Harness:
    return Harness(fake)


def streamed(*chunks: bytes) -> Behaviour:
    """Writes ``chunks`` with no Content-Length (chunked), and never finishes."""
    def answer(request: server.Request, received: Received) -> int:
        request.setHeader(b"content-type", b"application/json")
        for chunk in chunks:
            request.write(chunk)
        return server.NOT_DONE_YET
    return answer


def test_parameters_are_encoded_and_the_credential_sent(harness: Harness, fake: FakeOpenAI) -> None:
    params = [("limit", "100"), ("after", "user-a b&c=d/é?#"), ("include_archived", "true")]
    harness.response(USERS, params)
    sent = fake.last()
    path, _, query = sent.target.partition(b"?")
    assert path == USERS.encode()  # the base URL's slash is not doubled
    assert parse_qsl(query.decode("ascii"), keep_blank_values=True) == params  # in order, decoded back
    assert query.count(b"&") == 2 and b" " not in query and b"#" not in query
    assert sent.header("Authorization") == f"Bearer {TOKEN}".encode()
    assert sent.header("Host") == b"openai.test"
    assert sent.method == b"GET" and sent.body == b""


def test_the_answer_comes_back_whole_and_error_statuses_are_answers(harness: Harness, fake: FakeOpenAI) -> None:
    ok = harness.response("/v1/organization/projects", [("limit", "100")])
    assert ok.status == 200 and ok.body == example("get_organization_projects.response.json")
    assert ok.header(b"content-type") == b"application/json"
    fake.on(USERS, reply(429, {"error": "slow down"}, headers=[("Retry-After", "2")]))
    limited = harness.response()
    assert (limited.status, limited.header(b"retry-after"), limited.body) == (429, b"2", b'{"error": "slow down"}')


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(harness: Harness, fake: FakeOpenAI, status: int) -> None:
    # An admin key must not follow a redirect to wherever it points.
    fake.on(USERS, reply(status, "", headers=[("Location", "http://elsewhere.test/steal")]))
    answer = harness.response()
    assert answer.status == status and answer.header(b"location") == b"http://elsewhere.test/steal"
    assert fake.paths() == [USERS.encode()]


def test_a_gzipped_page_is_read_decompressed(harness: Harness, fake: FakeOpenAI) -> None:
    page = b'{"object": "list", "data": [], "has_more": false}'
    fake.on(USERS, gzipped(page))
    assert harness.response().body == page


@pytest.mark.parametrize("behaviour", [
    reply(200, b"x" * (CAP + 1)),  # announced by Content-Length
    streamed(b"x" * 600, b"x" * 600),  # found out while reading
    gzipped(b"0" * (CAP * 50)),  # small on the wire, over the cap once decompressed
], ids=["announced", "streamed", "gzip-bomb"])
def test_a_body_over_the_cap_is_refused(harness: Harness, fake: FakeOpenAI, behaviour: Behaviour) -> None:
    fake.on(USERS, behaviour)
    error = harness.error(harness.start())
    assert (error.status, error.code) == (502, "upstream_response_too_large")
    assert harness.clock.getDelayedCalls() == []  # the deadline is cancelled with the exchange


def test_a_body_at_the_cap_is_read(harness: Harness, fake: FakeOpenAI) -> None:
    fake.on(USERS, reply(200, b"x" * CAP))
    assert len(harness.response().body) == CAP


@pytest.mark.parametrize("behaviour", [hold, headers_then_stall], ids=["no-headers", "stalled-body"])
def test_the_whole_exchange_is_bounded_by_the_deadline(harness: Harness, fake: FakeOpenAI,
                                                       behaviour: Behaviour) -> None:
    fake.on(USERS, behaviour)
    outcome = harness.start()
    harness.advance(TIMEOUT - 0.01)
    assert outcome == []
    harness.advance(0.01)
    error = harness.error(outcome)
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert [r.path for r in fake.abandoned] == [USERS.encode()]  # the connection was dropped
    assert harness.clock.getDelayedCalls() == []


def test_a_connection_lost_mid_body_is_a_proxy_error(harness: Harness, fake: FakeOpenAI) -> None:
    fake.on(USERS, close_mid_body)
    error = harness.error(harness.start())
    assert (error.status, error.code) == (502, "upstream_connection_lost")


@implementer(IAgent)
class RefusingAgent:
    """An agent whose every connection is refused, at once."""

    def request(self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None) -> Deferred[Any]:
        return fail(ConnectionRefusedError("nobody listens"))


def test_an_unreachable_upstream_is_a_proxy_error(fake: FakeOpenAI) -> None:
    harness = Harness(fake, RefusingAgent())
    error = harness.error(harness.start())
    assert (error.status, error.code) == (502, "upstream_unreachable")
    assert harness.clock.getDelayedCalls() == []


@pytest.mark.parametrize("behaviour", [hold, headers_then_stall], ids=["no-headers", "stalled-body"])
def test_a_cancelled_get_is_a_cancellation_not_an_upstream_error(harness: Harness, fake: FakeOpenAI,
                                                                 behaviour: Behaviour) -> None:
    # Discovery cancels its GET when it stops: that is no failure to report and retry.
    fake.on(USERS, behaviour)
    outcome = harness.start()
    harness.get_deferred.cancel()
    harness.traversal.flush()
    assert len(outcome) == 1 and isinstance(outcome[0], Failure) and outcome[0].check(CancelledError)
    assert [r.path for r in fake.abandoned] == [USERS.encode()]
    assert harness.clock.getDelayedCalls() == []
