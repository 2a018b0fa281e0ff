"""A fake OpenAI for the benchmark: precomputed usage pages over keep-alive HTTP/1.1.

Any GET under ``/v1/organization/`` is answered 200 with the page its ``size=`` query
parameter names (small, medium, large; anything else: small), as application/json with a
Content-Length; other paths get a JSON 404. Bodies and headers are built once at start,
so answering costs a header parse and a socket write: the upstream is never what the
benchmark measures.

bench.py starts it by itself. To run it on its own, in front of an orgproxy you started
yourself (see bench.py's --proxy):

    .venv/bin/python bench/fakeupstream.py --port 18999 --write-aliases /tmp/bench-aliases.toml

It prints ``fake upstream listening on http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pages  # noqa: E402

MAX_HEAD = 64 * 1024
PREFIX = b"/v1/organization/"


def _response(status: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % len(body)) + body


class Answers:
    """The full response bytes (head and body) for each size, built once."""

    def __init__(self, sizes: list[str]):
        self.by_size = {size.encode(): _response(b"200 OK", pages.page(size)) for size in sizes}
        self.default = self.by_size.get(b"small") or next(iter(self.by_size.values()))
        self.not_found = _response(b"404 Not Found", b'{"error": {"message": "not found", "type":'
                                   b' "invalid_request_error", "param": null, "code": "not_found"}}')
        self.bad_request = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def for_target(self, target: bytes) -> bytes:
        path, _, query = target.partition(b"?")
        if not path.startswith(PREFIX):
            return self.not_found
        for part in query.split(b"&"):
            if part.startswith(b"size="):
                return self.by_size.get(part[5:], self.default)
        return self.default


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, answers: Answers):
        self.answers = answers
        self.buffer = b""
        self.body_left = 0  # request body bytes still to skip
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            if self.body_left:
                skipped = min(self.body_left, len(buffer))
                self.body_left -= skipped
                buffer = buffer[skipped:]
                if self.body_left:
                    break
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._refuse()
                    return
                break
            head, buffer = buffer[:end], buffer[end + 4:]
            if not self._answer(head):
                return
        self.buffer = buffer

    def _answer(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self._refuse()
            return False
        _method, target, version = parts
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    self.body_left = int(value.strip())
                except ValueError:
                    self._refuse()
                    return False
            elif name == b"transfer-encoding":
                self._refuse()  # no client of the benchmark sends a chunked request
                return False
            elif name == b"connection":
                tokens = value.strip().lower()
                close = b"close" in tokens or (close and b"keep-alive" not in tokens)
        assert self.transport is not None
        self.transport.write(self.answers.for_target(target))
        if close:
            self.transport.close()
            return False
        return True

    def _refuse(self) -> None:
        assert self.transport is not None
        self.transport.write(self.answers.bad_request)
        self.transport.close()


async def serve(sizes: list[str], port: int, ready: Callable[[int], None]) -> None:
    answers = Answers(sizes)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(answers), "127.0.0.1", port,
                                      backlog=1024, reuse_address=True)
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="orgproxy benchmark's fake upstream (127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--sizes", default=",".join(pages.SIZES), help="pages to serve (default: all)")
    parser.add_argument("--write-aliases", metavar="PATH",
                        help="also write the matching TOML alias file here, for an orgproxy you start")
    args = parser.parse_args(argv)
    try:
        sizes = pages.parse_sizes(args.sizes)
    except ValueError as e:
        parser.error(str(e))
    if args.write_aliases:
        Path(args.write_aliases).write_text(pages.alias_toml())

    def ready(port: int) -> None:
        print(f"fake upstream listening on http://127.0.0.1:{port}", flush=True)

    asyncio.run(serve(sizes, args.port, ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
