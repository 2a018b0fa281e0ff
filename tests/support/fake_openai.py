"""An in-memory stand-in for OpenAI: a Twisted resource that serves the spec's example
bodies, records every request exactly as it arrived, and misbehaves on demand.

Served to the proxy through ``treq.testing.RequestTraversalAgent`` (see ``memory.py``),
so a whole exchange, client to proxy to this fake and back, runs in the test process.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.web import server
from twisted.web.resource import Resource

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "openai-admin-api"
# The spec's name for the id that follows a collection in a path.
PATH_PARAMETERS = {"projects": "project_id", "api_keys": "api_key_id", "users": "user_id",
                   "service_accounts": "service_account_id", "admin_api_keys": "key_id",
                   "groups": "group_id", "roles": "role_id"}


def example_path(method: str, path: str) -> Path:
    """The spec's example body for a request: GET /v1/organization/usage/completions ->
    get_organization_usage_completions.response.json, DELETE .../projects/proj_1/api_keys/key_2
    -> delete_organization_projects_project_id_api_keys_api_key_id.response.json."""
    segments = path.split("?", 1)[0].removeprefix("/v1/").strip("/").split("/")
    route = [segments[0]] + [PATH_PARAMETERS.get(before, segment) if before in PATH_PARAMETERS else segment
                             for before, segment in zip(segments, segments[1:])]
    return EXAMPLES / f"{method.lower()}_{'_'.join(route)}.response.json"


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


@dataclass
class Received:
    method: bytes
    target: bytes  # the request target exactly as sent: path and query
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def path(self) -> bytes:
        return self.target.split(b"?", 1)[0]

    def header(self, name: str | bytes) -> bytes | None:
        wanted = name.encode() if isinstance(name, str) else name
        values = [v for k, v in self.headers if k.lower() == wanted.lower()]
        return values[-1] if values else None


# What the fake does with a request: write and finish it (returning NOT_DONE_YET), or
# return the body to send.
Behaviour = Callable[[server.Request, Received], "bytes | int"]


def openai_error(message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def serve_example(request: server.Request, received: Received) -> bytes:
    path = example_path(received.method.decode(), received.target.decode("latin-1"))
    request.setHeader(b"content-type", b"application/json")
    if path.exists():
        return path.read_bytes()
    request.setResponseCode(404)
    return json.dumps(openai_error(f"no example for {received.method.decode()} {received.target!r}",
                                   code="unknown_url")).encode()


def reply(status: int = 200, body: bytes | str | dict[str, Any] | list[Any] = b"",
          headers: list[tuple[str, str]] | None = None,
          content_type: str | None = "application/json") -> Behaviour:
    """A behaviour that answers with a fixed reply."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    data: bytes = body

    def answer(request: server.Request, received: Received) -> bytes:
        request.setResponseCode(status)
        if content_type is not None:
            request.setHeader(b"content-type", content_type.encode())
        for name, value in headers or []:
            request.responseHeaders.addRawHeader(name.encode(), value.encode())
        return data
    return answer


def gzipped(body: bytes, content_type: str = "application/json") -> Behaviour:
    """Answers ``body`` compressed with gzip, as OpenAI does when asked."""
    def answer(request: server.Request, received: Received) -> bytes:
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"content-encoding", b"gzip")
        return gzip.compress(body)
    return answer


class FakeOpenAI(Resource):
    """Every path answered: by a behaviour set with ``on``, else by the spec's example."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.behaviours: dict[bytes, Behaviour] = {}
        # Requests whose connection the proxy closed before they were answered.
        self.abandoned: list[Received] = []

    def on(self, path: str, behaviour: Behaviour) -> None:
        """Answer requests for ``path`` (no query) with ``behaviour``."""
        self.behaviours[path.encode()] = behaviour

    def render(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        received = Received(request.method, request.uri,
                            [(k, v) for k, vs in request.requestHeaders.getAllRawHeaders() for v in vs],
                            request.content.read())
        self.received.append(received)
        request.notifyFinish().addErrback(lambda _: self.abandoned.append(received))
        behaviour = self.behaviours.get(received.path)
        return behaviour(request, received) if behaviour is not None else self.fallback(request, received)

    def fallback(self, request: server.Request, received: Received) -> bytes | int:
        """What a path with no behaviour of its own gets: the spec's example."""
        return serve_example(request, received)

    def last(self) -> Received:
        return self.received[-1]

    def paths(self) -> list[bytes]:
        return [r.path for r in self.received]


def hold(request: server.Request, received: Received) -> int:
    """Never answer."""
    return server.NOT_DONE_YET


def headers_then_stall(request: server.Request, received: Received) -> int:
    """Headers announcing 1000 bytes of JSON and the first few of them, then nothing more."""
    _start_a_1000_byte_body(request)
    return server.NOT_DONE_YET


def close_mid_body(request: server.Request, received: Received) -> int:
    """Announce 1000 bytes, send a few, and close the connection."""
    _start_a_1000_byte_body(request)
    request.channel.transport.loseConnection()
    return server.NOT_DONE_YET


def _start_a_1000_byte_body(request: server.Request) -> None:
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"1000")
    request.write(b'{"object": "page", "data": [')


@dataclass
class Script:
    """Answers each request with the next behaviour of a list (the last one repeats)."""

    behaviours: list[Behaviour] = field(default_factory=list)

    def __call__(self, request: server.Request, received: Received) -> bytes | int:
        behaviour = self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]
        return behaviour(request, received)
