"""The benchmark's load generator: N keep-alive HTTP/1.1 connections in one asyncio loop.

Each connection sends one GET, reads the status line, the headers and exactly
Content-Length bytes of body, and sends the next, until the duration is over (a closed
loop, as wrk does). A request counts when its whole answer arrived within the duration;
its latency is from the first byte written to the last byte read. At the end, requests
still in flight are abandoned (their connections closed) and not counted. Only 200
answers count as successes; anything else is an error, reported by kind.

bench.py runs it in a process of its own (so that it does not share an interpreter with
the fake upstream) and reads the JSON it prints. On its own:

    .venv/bin/python bench/loadgen.py --url 'http://127.0.0.1:18080/v1/organization/costs?size=medium' \\
        --connections 16 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    pass


class Client(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, int]] | None = None
        self.head = b""
        self.status = 0
        self.length = 0
        self.left = -1  # body bytes still expected; -1 while the head is being read
        self.close_after = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, data: bytes) -> asyncio.Future[tuple[int, int]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.head = b""
        self.left = -1
        self.transport.write(data)
        return self.waiter

    def abort(self, reason: BaseException | None = None) -> None:
        if reason is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(reason)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.abort(ProtocolError("bytes received with no request outstanding"))
            return
        if self.left < 0:
            head = self.head + data if self.head else data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                if len(head) > MAX_HEAD:
                    self.abort(ProtocolError("response head over 64 KiB"))
                else:
                    self.head = head
                return
            try:
                self._parse_head(head[:end])
            except ProtocolError as e:
                self.abort(e)
                return
            self.left = self.length - (len(head) - end - 4)
        else:
            self.left -= len(data)
        if self.left < 0:
            self.abort(ProtocolError("more bytes than Content-Length announced"))
        elif self.left == 0:
            waiter.set_result((self.status, self.length))
            if self.close_after:
                self.abort()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or not status_line[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(status_line[1])
        self.close_after = status_line[0] == b"HTTP/1.0"
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding":
                raise ProtocolError("chunked response (the generator reads Content-Length bodies only)")
            elif name == b"connection":
                self.close_after = b"close" in value.lower()
        if length is None:
            raise ProtocolError(f"response {self.status} without Content-Length")
        self.length = length

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed{f': {exc}' if exc else ''}"))


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def run(url: str, connections: int, duration: float, timeout: float,
              headers: list[str]) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"loadgen: only http:// URLs, not {url!r}")
    host, port = parts.hostname, parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = "".join([f"GET {target} HTTP/1.1\r\n", f"Host: {parts.netloc}\r\n",
                       *(f"{h}\r\n" for h in headers), "\r\n"]).encode("latin-1")
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    first_error: list[str] = []
    received = 0
    clients: set[Client] = set()
    stopping = False
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + duration

    def error(kind: str, detail: str) -> None:
        errors[kind] += 1
        if not first_error:
            first_error.append(detail)

    async def connection() -> None:
        nonlocal received
        client: Client | None = None
        while not stopping and time.perf_counter() < deadline:
            if client is None or client.lost:
                try:
                    _, client = await asyncio.wait_for(loop.create_connection(Client, host, port), timeout)
                except (OSError, asyncio.TimeoutError) as e:
                    if stopping:
                        return
                    error("connect", f"connect to {host}:{port}: {e!r}")
                    client = None
                    await asyncio.sleep(0.05)  # bounded by the deadline of the loop
                    continue
                clients.add(client)
            sent = time.perf_counter()
            answer = client.request(request)
            timer = loop.call_later(timeout, client.abort, asyncio.TimeoutError())
            try:
                status, length = await answer
            except (OSError, ProtocolError, asyncio.TimeoutError) as e:
                if stopping:
                    return
                error(type(e).__name__, repr(e))
                clients.discard(client)
                client.abort()
                client = None
                continue
            finally:
                timer.cancel()
            done = time.perf_counter()
            if done > deadline:
                return
            received += length
            if status == 200:
                latencies.append(done - sent)
            else:
                error(f"status {status}", f"answered {status}")

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(duration)
    stopping = True
    elapsed = time.perf_counter() - start
    for client in list(clients):
        client.abort()
    await asyncio.wait(tasks, timeout=timeout + 5)
    for task in tasks:
        task.cancel()
    cpu = time.process_time() - cpu_start
    latencies.sort()
    return {
        "generator": "python",
        "url": url,
        "connections": connections,
        "duration": elapsed,
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p90_ms": _ms(percentile(latencies, 90)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(latencies[-1] if latencies else None),
        "bytes": received,
        "errors": dict(errors),
        "first_error": first_error[0] if first_error else None,
        "cpu_seconds": cpu,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="keep-alive HTTP/1.1 GET load generator (asyncio)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for one answer")
    parser.add_argument("--header", action="append", default=[], help="extra request header, 'Name: value'")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.duration <= 0 or args.timeout <= 0:
        parser.error("--connections, --duration and --timeout must be positive")
    result = asyncio.run(run(args.url, args.connections, args.duration, args.timeout, args.header))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>12}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
