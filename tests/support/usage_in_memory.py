"""FakeUsage's costs and usage pages served by the in-memory FakeOpenAI, for tests of the
daemon's own calls (the cost series) that run on the memory reactor."""

from __future__ import annotations

from twisted.web import server

from tests.support import tcp_upstream
from tests.support.fake_openai import FakeOpenAI, Received
from tests.support.fake_usage import COMPLETIONS, COSTS, FakeUsage


class _Capture:
    """Stands in for the socket handler FakeUsage answers through."""

    def __init__(self) -> None:
        self.replies: list[tcp_upstream.Reply] = []

    def send_reply(self, reply: tcp_upstream.Reply) -> None:
        self.replies.append(reply)


def serve_in_memory(usage: FakeUsage, fake: FakeOpenAI) -> FakeUsage:
    """Answer ``fake``'s costs and completions requests with ``usage``'s pages."""
    def answer(request: server.Request, received: Received) -> bytes:
        capture = _Capture()
        usage.answer(capture, tcp_upstream.Received(  # type: ignore[arg-type]
            received.method.decode(), received.target,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in received.headers], received.body))
        (reply,) = capture.replies
        request.setResponseCode(reply.status)
        for name, value in reply.headers:
            request.responseHeaders.addRawHeader(name.encode(), value.encode())
        return reply.body
    fake.on(COSTS, answer)
    fake.on(COMPLETIONS, answer)
    return usage
