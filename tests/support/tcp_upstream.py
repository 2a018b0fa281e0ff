"""A local stand-in for OpenAI's Admin API: serves the spec's example bodies and records
every request exactly as it arrived, and can misbehave on demand.

It runs in a thread of the test process (the daemon under test is a separate process),
so blocking clients such as the openai SDK can be used from the test itself.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.fake_admin import PROJECTS, AdminApi, Org
from tests.support.fake_openai import example_path

@dataclass
class Received:
    method: str
    target: bytes  # the request target exactly as sent: path and query
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "application/json")])
    body: bytes = b""


Behaviour = Callable[["Handler", Received], None]


class Handler(BaseHTTPRequestHandler):
    server: FakeUpstream
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: with Nagle's algorithm the body waited for
    # the daemon's delayed ACK, 40 ms on every request over a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def handle_one(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(self.command, self.path.encode("latin-1"), list(self.headers.items()), body)
        self.server.record(received)
        behaviour = self.server.behaviour_for(received)
        behaviour(self, received)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = handle_one

    def send_reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.wfile.flush()

    def wait_for_client_to_leave(self, limit: float) -> bool:
        """Block until the proxy closes this connection (True) or ``limit`` seconds pass."""
        deadline = time.monotonic() + limit
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:
                    return True
        return False


def serve_examples(handler: Handler, received: Received) -> None:
    path = example_path(received.method, received.target.decode("latin-1"))
    if path.exists():
        handler.send_reply(Reply(body=path.read_bytes()))
    else:
        handler.send_reply(Reply(404, body=json.dumps({"error": {
            "message": f"no example for {received.method} {received.target!r}",
            "type": "invalid_request_error", "param": None, "code": "unknown_url"}}).encode()))


def reply(status: int = 200, body: bytes | str | dict | list = b"", headers: list[tuple[str, str]] | None = None,
          content_type: str | None = "application/json") -> Behaviour:
    """A behaviour that answers with a fixed reply."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    all_headers = ([("Content-Type", content_type)] if content_type else []) + (headers or [])

    def answer(handler: Handler, received: Received) -> None:
        handler.send_reply(Reply(status, all_headers, body))
    return answer


def _start_a_1000_byte_body(handler: Handler) -> None:
    """Headers announcing 1000 bytes of JSON, and the first few of them."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"object": "page", "data": [')
    handler.wfile.flush()


def _note_when_the_proxy_leaves(handler: Handler, limit: float) -> None:
    if handler.wait_for_client_to_leave(limit):
        handler.server.cancelled.set()
    handler.close_connection = True


def hold(limit: float = 15.0) -> Behaviour:
    """Never answer; note whether the proxy gave up on the connection."""
    return lambda handler, received: _note_when_the_proxy_leaves(handler, limit)


def headers_then_stall(limit: float = 15.0) -> Behaviour:
    """Send headers announcing a body and the start of it, then nothing more."""
    def stall(handler: Handler, received: Received) -> None:
        _start_a_1000_byte_body(handler)
        _note_when_the_proxy_leaves(handler, limit)
    return stall


def close_mid_body(handler: Handler, received: Received) -> None:
    """Announce 1000 bytes, send a few, and close the connection."""
    _start_a_1000_byte_body(handler)
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


class FakeUpstream(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def behaviour_for(self, received: Received) -> Behaviour:
        path = received.target.split(b"?", 1)[0].decode("latin-1")
        return self.behaviours.get(path, serve_examples)

    def on(self, path: str, behaviour: Behaviour) -> None:
        """Answer requests for ``path`` (no query) with ``behaviour``."""
        self.behaviours[path] = behaviour

    def last(self) -> Received:
        with self._lock:
            return self.received[-1]

    def received_so_far(self) -> list[Received]:
        """Every request yet, safely from another thread than the server's."""
        with self._lock:
            return list(self.received)


class TcpAdmin(AdminApi):
    """The Admin API's lists of ``org`` (``fake_admin.AdminApi``: the same pages as the
    in-memory fake), served on a FakeUpstream, for a real daemon's discovery."""

    def __init__(self, upstream: FakeUpstream, org: Org):
        super().__init__(org)
        self.upstream = upstream
        self.install()

    def install(self) -> None:
        for path in self.routes():
            self.upstream.on(path, self._serve)

    def _serve(self, handler: Handler, received: Received) -> None:
        path, _, query = received.target.decode("latin-1").partition("?")
        answered = self.answer(path, query) if received.method == "GET" else None
        if answered is None:
            serve_examples(handler, received)
            return
        status, body = answered
        handler.send_reply(Reply(status, body=json.dumps(body, ensure_ascii=False).encode("utf-8")))

    def walks(self) -> list[Received]:
        """Every walk of the Admin API begun: the first page of the projects' list."""
        return [r for r in self.upstream.received_so_far()
                if r.target.split(b"?", 1)[0] == PROJECTS.encode() and b"after=" not in r.target]


def upstream_fixture(scope: str = "function") -> Any:
    """A pytest fixture named ``upstream``: a FakeUpstream on a real socket (in a thread),
    for tests that run the daemon, started and stopped once per ``scope``. A module sets
    ``upstream = upstream_fixture("module")`` to share one among its tests."""
    import pytest  # here, so that ``make demo`` serves these fakes without the test extra

    @pytest.fixture(scope=scope, name="upstream")
    def serving() -> Iterator[FakeUpstream]:
        server = FakeUpstream().start()
        yield server
        server.stop()
    return serving
