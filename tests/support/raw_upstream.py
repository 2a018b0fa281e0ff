"""An upstream that writes exactly the bytes a test scripts, for the answers no web
server would write: a second answer after the first, a body after a 204, bytes after the
end. Served in memory through ``MemoryUpstreams`` (pass it to ``InMemoryProxy`` in place
of a fake resource).

    upstream = RawUpstream(lambda request: b"HTTP/1.1 204 No Content\\r\\n\\r\\n")
    proxy = InMemoryProxy(upstream, tmp_path)

``answer(request)`` gives the bytes to write for each request (its head, parsed just
enough: method, target, headers); ``late(request)`` gives bytes the upstream writes after
them, later: when the next request arrives on the same connection (before that request's
own answer, as a late answer would reach the proxy just after it wrote the request), or
at once with ``write_late_now()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.protocol import Factory, Protocol


@dataclass
class RawRequest:
    method: bytes
    target: bytes
    headers: dict[bytes, bytes]  # lower-case names; a repeated header's last value
    connection: RawConnection = field(repr=False)

    def header(self, name: bytes) -> bytes | None:
        return self.headers.get(name)


Script = Callable[[RawRequest], bytes]


class RawConnection(Protocol):
    factory: RawUpstream

    def __init__(self) -> None:
        self.buffer = b""
        self.pending_late = b""  # bytes to write before the next answer on this connection
        self.requests: list[RawRequest] = []

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # the proxy sends these requests no body
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            request_line, *lines = head.split(b"\r\n")
            method, target, _ = request_line.split(b" ", 2)
            headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
            request = RawRequest(method, target, headers, self)
            self.requests.append(request)
            self.factory.requests.append(request)
            late, self.pending_late = self.pending_late, self.factory.late(request)
            self.transport.write(late + self.factory.answer(request))

    def write_late_now(self) -> None:
        late, self.pending_late = self.pending_late, b""
        self.transport.write(late)


class RawUpstream(Factory):
    protocol = RawConnection
    noisy = False

    def __init__(self, answer: Script, late: Script = lambda request: b""):
        self.answer = answer
        self.late = late
        self.requests: list[RawRequest] = []
