"""Every answer says ``Server: orgproxy``, with no version: proxied ones (whatever the upstream
said), the proxy's own pages, its errors, and what the channel answers by itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.answers import AUTH
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.memory import InMemoryProxy

COSTS = "/v1/organization/costs"


def server_of(head: bytes) -> list[bytes]:
    """The Server header lines of a raw answer's head."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [line.split(b":", 1)[1].strip() for line in lines if line.lower().startswith(b"server:")]


def test_a_proxied_answer_says_orgproxy_not_the_upstreams_server(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    # The fake upstream, a plain Twisted site, says TwistedWeb/<version>, and here cloudflare too.
    fake.on(COSTS, reply(200, {"data": []}, headers=[("Server", "cloudflare")]))
    answer = proxy.get(COSTS + "?start_time=1", headers=AUTH)
    assert answer.status == 200
    assert [v for k, v in answer.headers if k.lower() == "server"] == ["orgproxy"]


def test_own_pages_and_errors_say_orgproxy(make_proxy: Callable[..., InMemoryProxy]) -> None:
    proxy = make_proxy()
    for method, target in (("GET", "/health"), ("HEAD", "/health"), ("GET", "/metrics"), ("GET", "/v1/models"),
                           ("POST", "/health"), ("GET", "/orgproxy/unknown")):
        answer = proxy.call(method, target)
        assert [v for k, v in answer.headers if k.lower() == "server"] == ["orgproxy"], (method, target)


def test_the_channels_own_answers_say_orgproxy(proxy: InMemoryProxy) -> None:
    malformed = proxy.raw(b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n")
    assert malformed.written.startswith(b"HTTP/1.1 400 ")
    assert server_of(malformed.written) == [b"orgproxy"]
    too_long = proxy.raw(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert too_long.written.startswith(b"HTTP/1.1 414 ")
    assert server_of(too_long.written) == [b"orgproxy"]


def test_a_twisted_site_would_say_its_version_where_orgproxy_does_not(proxy: InMemoryProxy) -> None:
    # What the header replaces: Twisted's default names itself and its version.
    from twisted.web import server

    assert server.version.startswith(b"TwistedWeb/")
    answer = proxy.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.written.startswith(b"HTTP/1.1 200 ")
    assert server_of(answer.written) == [b"orgproxy"]
    assert server.version not in answer.written


def test_a_request_the_channel_refuses_before_its_body_says_orgproxy(make_proxy: Callable[..., InMemoryProxy],
                                                                      tmp_path: Path) -> None:
    token = tmp_path / "client-token"
    token.write_text("team-secret-4f9a\n")
    proxy = make_proxy("--client-token-file", str(token))
    refused = proxy.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # no token: refused once the head is in
    assert refused.written.startswith(b"HTTP/1.1 401 ")
    assert server_of(refused.written) == [b"orgproxy"]
