"""An official SDK's HTTP client wired to the in-memory proxy: the openai and anthropic SDKs
both take an ``httpx2.Client``, and this transport hands each of its requests to the proxy."""

from __future__ import annotations

import httpx2

from tests.support.memory import InMemoryProxy

# Headers the SDK's HTTP client sets for its own connection; the in-memory client sets its own.
CONNECTION_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding"})


def through(proxy: InMemoryProxy) -> httpx2.MockTransport:
    """An HTTP transport for the SDK that hands each request to the in-memory proxy."""
    def send(request: httpx2.Request) -> httpx2.Response:
        headers = {name: value for name, value in request.headers.items() if name.lower() not in CONNECTION_HEADERS}
        answer = proxy.call(request.method, request.url.raw_path, headers, request.read() or None)
        return httpx2.Response(answer.status, headers=answer.headers, content=answer.body)
    return httpx2.MockTransport(send)
