"""A raw HTTP client for tests: sends the request target exactly as given (no
normalisation of ``..`` or escapes), and returns status, headers and body bytes."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import AUTH


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The OpenAI-shaped error, checked for its exact shape."""
        body = self.json()
        assert list(body) == ["error"], body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]


def call(base_url: str, target: str | bytes, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 20) -> Answer:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.putrequest(method, target if isinstance(target, str) else target.decode("latin-1"),
                              skip_host=False, skip_accept_encoding=True)
        all_headers = dict(AUTH) if headers is None else headers
        for name, value in all_headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()
