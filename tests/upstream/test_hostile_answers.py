"""What reaches the client of an upstream answer that no API would send, through the proxy
in memory, from an upstream writing raw bytes (tests/support/raw_upstream.py): refused
with a 502 that says so (and never cached), or passed on without what cannot be trusted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orgproxy.upstream.parse import FREE_CHUNKED_BYTES, MAX_HEADER_LINES
from tests.support.answers import AUTH, Answer
from tests.support.memory import InMemoryProxy
from tests.support.raw_upstream import RawRequest, RawUpstream

COSTS = "/v1/organization/costs?start_time=1730419200"
PAGE = b'{"object": "page", "data": []}'
JSON = b"Content-Type: application/json\r\n"


def sized(head: bytes = b"HTTP/1.1 200 OK\r\n", headers: bytes = b"", body: bytes = PAGE) -> bytes:
    return head + JSON + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


def chunked(pieces: list[bytes], coding: bytes = b"chunked") -> bytes:
    return (b"HTTP/1.1 200 OK\r\n" + JSON + b"Transfer-Encoding: " + coding + b"\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., InMemoryProxy]]:
    made: list[InMemoryProxy] = []

    def build(wire: bytes, *args: str) -> InMemoryProxy:
        made.append(InMemoryProxy(RawUpstream(lambda request: wire), tmp_path / "state", args))
        return made[-1]
    yield build
    for proxy in made:
        proxy.close()


def head_as_written(proxy: InMemoryProxy, method: str = "GET") -> tuple[bytes, dict[bytes, list[bytes]]]:
    """The status line and headers exactly as the proxy wrote them to a raw connection."""
    written = proxy.raw(f"{method} {COSTS} HTTP/1.1\r\nHost: orgproxy.test\r\nConnection: close\r\n"
                        f"Authorization: {AUTH['Authorization']}\r\n\r\n".encode()).written
    status_line, *lines = written.partition(b"\r\n\r\n")[0].split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status_line, headers


def assert_bad_response(answer: Answer) -> None:
    assert answer.status == 502
    assert answer.error()["code"] == "upstream_bad_response"


@pytest.mark.parametrize("wire", [
    chunked([b"\x1f\x8b not undone"], coding=b"gzip, chunked"),
    chunked([PAGE], coding=b"chunked, chunked"),
    sized(b"HTTP/1.1 200 O\x00K\r\n"),
    sized(b"HTTP/1.1 200 O\x1b[2JK\r\n"),
    sized(headers=b"X-Request-Id: req\x0b1\r\n"),
    sized(headers=b"X-Request-Id: req\x7f1\r\n"),
    sized(headers=b"X-A: 1\r\n" * MAX_HEADER_LINES),
    chunked([b" "] * (FREE_CHUNKED_BYTES // 6 + 100) + [PAGE]),
], ids=["gzip, chunked", "chunked twice", "NUL in the phrase", "ESC in the phrase", "VT in a value",
        "DEL in a value", "too many headers", "one-byte chunks"])
def test_an_answer_that_cannot_be_trusted_is_502_and_never_cached(serve: Callable[..., InMemoryProxy],
                                                                 wire: bytes) -> None:
    proxy = serve(wire, "--cache-ttl", "60")
    for _ in range(2):
        assert_bad_response(proxy.get(COSTS))
    upstream = proxy.upstreams.sites[b"openai.test"]
    assert isinstance(upstream, RawUpstream) and len(upstream.requests) == 2


def test_a_tab_in_a_value_is_passed_on(serve: Callable[..., InMemoryProxy]) -> None:
    answer = serve(sized(headers=b"X-Note: a\tb\r\n")).get(COSTS)
    assert (answer.status, answer.header("X-Note")) == (200, "a\tb")


@pytest.mark.parametrize(("announced", "forwarded"), [
    (b"Content-Length: 4242\r\n", [b"4242"]),
    (b"Content-Length: 12, 99\r\n", [b"0"]),
    (b"Content-Length: 12\r\nContent-Length: 12\r\n", [b"0"]),
    (b"Content-Length: +12\r\n", [b"0"]),
    (b"Content-Length: 0x12\r\n", [b"0"]),
], ids=["one number", "a list", "repeated", "a sign", "hex"])
def test_a_heads_length_is_passed_on_only_when_it_is_one_number(
        serve: Callable[..., InMemoryProxy], announced: bytes, forwarded: list[bytes]) -> None:
    proxy = serve(b"HTTP/1.1 200 OK\r\n" + JSON + announced + b"\r\n")
    status_line, headers = head_as_written(proxy, "HEAD")
    assert status_line.startswith(b"HTTP/1.1 200 ")
    # Otherwise the proxy's own: the length of the (empty) body it has.
    assert headers[b"content-length"] == forwarded


@pytest.mark.parametrize("cache_args", [[], ["--cache-ttl", "60"]], ids=["without the cache", "with the cache"])
def test_the_proxys_own_headers_are_never_the_upstreams(serve: Callable[..., InMemoryProxy],
                                                        cache_args: list[str]) -> None:
    proxy = serve(sized(headers=b"X-Orgproxy-Cache: hit\r\nx-orgproxy-token: t\r\nX-Orgproxy-Anything: 1\r\n"
                                b"X-Request-Id: req_1\r\n"), *cache_args)
    _, headers = head_as_written(proxy)
    assert headers[b"x-request-id"] == [b"req_1"]
    assert headers.get(b"x-orgproxy-cache") == ([b"miss"] if cache_args else None)
    assert not {b"x-orgproxy-token", b"x-orgproxy-anything"} & set(headers)
