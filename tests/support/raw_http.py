"""A raw HTTP client for tests: sends the request target exactly as given (no
normalisation of ``..`` or escapes), and returns status, headers and body bytes."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from tests.support.answers import AUTH, Answer


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
