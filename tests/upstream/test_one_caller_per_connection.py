"""No caller ever receives an answer meant for another credential: two callers (admin keys
VICTIM and OTHER) through one proxy, in memory, against an upstream that writes raw bytes
(tests/support/raw_upstream.py): a second answer after the first, a body after a 204, a
304 or a HEAD's answer, bytes after the end; with and without the cache.

The late bytes reach the proxy as they would on the wire at the worst moment: just after
it has written the next request on the same connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.memory import InMemoryProxy
from tests.support.raw_upstream import RawRequest, RawUpstream

COSTS = "/v1/organization/costs?start_time=1730419200"
VICTIM, OTHER = "sk-admin-VICTIM", "sk-admin-OTHER"


def owner(request: RawRequest) -> str:
    authorization = request.header(b"authorization") or b""
    return authorization.decode().removeprefix("Bearer ")


def answer(body: dict[str, object], head: bytes = b"HTTP/1.1 200 OK\r\n") -> bytes:
    data = json.dumps(body).encode()
    return head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data


def own_page(request: RawRequest) -> bytes:
    return answer({"object": "page", "data": [], "owner": owner(request)})


def victims_data(request: RawRequest) -> bytes:
    """A whole second answer, with the data of the caller who asked first."""
    return answer({"object": "page", "data": [{"secret": "VICTIM's costs"}], "owner": owner(request)})


def first_then(first: Callable[[RawRequest], bytes]) -> Callable[[RawRequest], bytes]:
    """``first`` for VICTIM's request, each caller's own page for the others."""
    return lambda request: first(request) if owner(request) == VICTIM else own_page(request)


def only_victims(late: Callable[[RawRequest], bytes]) -> Callable[[RawRequest], bytes]:
    return lambda request: late(request) if owner(request) == VICTIM else b""


# name: (VICTIM's method, the upstream's answer to VICTIM, what it writes later on that connection)
CASES = {
    "a late second answer": (
        "GET", own_page, victims_data),
    "a late second answer while idle": (
        "GET", own_page, victims_data),
    "a body after a 204": (
        "GET", lambda request: b"HTTP/1.1 204 No Content\r\n\r\n", victims_data),
    "a body after a 304": (
        "GET", lambda request: b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n", victims_data),
    "a body after a HEAD's answer": (
        "HEAD", lambda request: own_page(request)[:own_page(request).index(b"\r\n\r\n") + 4], victims_data),
    "an answer after a 100 Continue": (
        "GET", lambda request: b"HTTP/1.1 100 Continue\r\n\r\n" + own_page(request), victims_data),
    "extra bytes after the end": (
        "GET", lambda request: own_page(request) + victims_data(request), lambda request: b""),
}


@pytest.fixture(params=[[], ["--cache-ttl", "60"]], ids=["without the cache", "with the cache"])
def cache_args(request: pytest.FixtureRequest) -> list[str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make(tmp_path: Path, cache_args: list[str]) -> Iterator[Callable[[RawUpstream], InMemoryProxy]]:
    made: list[InMemoryProxy] = []

    def build(upstream: RawUpstream) -> InMemoryProxy:
        made.append(InMemoryProxy(upstream, tmp_path / "state", cache_args))
        return made[-1]
    yield build
    for proxy in made:
        proxy.close()


@pytest.mark.parametrize("case", list(CASES))
def test_a_caller_never_receives_an_answer_meant_for_another_credential(
        make: Callable[[RawUpstream], InMemoryProxy], case: str) -> None:
    method, first, late = CASES[case]
    upstream = RawUpstream(first_then(first), only_victims(late))
    proxy = make(upstream)
    victims = proxy.call(method, COSTS, {"Authorization": f"Bearer {VICTIM}"})
    assert victims.status in (200, 204, 304)
    if case.endswith("while idle"):
        upstream.requests[0].connection.write_late_now()
        proxy.flush()
    for _ in range(2):  # the second time, a cache hit where there is a cache
        others = proxy.get(COSTS, {"Authorization": f"Bearer {OTHER}"})
        assert others.status == 200
        assert b"VICTIM" not in others.body
        assert others.json()["owner"] == OTHER
    # And upstream, no connection ever carried both callers' requests.
    for connection in {id(request.connection): request.connection for request in upstream.requests}.values():
        assert len({owner(request) for request in connection.requests}) == 1
