"""A worker's ties to its first process (``ops/firstprocess.py``), on real pipes and a memory
reactor: the end of its standard input ends the worker; its requests for discovery go out
at most once per cooldown. (The pool's side: tests/ops/test_workers.py; with real
processes and kill -9: tests/process/test_workers.py.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel

from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.ops.firstprocess import MAX_LINE, FirstProcessLink, RequestLines, discovery_asked


@dataclass
class Link:
    """A worker's link, its standard input and request pipes held by the test (the first
    process's ends)."""

    clock: MemoryReactorClock
    link: FirstProcessLink
    stdin_end: int  # what the first process holds: closing it is the first process ending
    requests_end: int  # what the first process reads
    gone: list[bool] = field(default_factory=list)

    def asked(self) -> bytes:
        try:
            return os.read(self.requests_end, 4096)
        except BlockingIOError:
            return b""


@pytest.fixture
def link() -> Iterator[Link]:
    stdin_read, stdin_write = os.pipe()
    requests_read, requests_write = os.pipe()
    os.set_blocking(requests_read, False)
    clock = MemoryReactorClock()
    gone: list[bool] = []
    made = Link(clock, FirstProcessLink(clock, lambda: gone.append(True), cooldown=60,
                                        stdin=stdin_read, requests=requests_write),
                stdin_write, requests_read, gone)
    made.link.startService()
    yield made
    made.link.stopService()
    for fd in (stdin_read, stdin_write, requests_read, requests_write):
        try:
            os.close(fd)
        except OSError:
            pass  # closed by the test


def test_the_worker_watches_its_standard_input_and_stops_when_it_ends(link: Link) -> None:
    assert link.link in link.clock.readers
    os.write(link.stdin_end, b"anything")  # the first process writes nothing; were it to, no matter
    link.link.doRead()
    assert link.gone == []
    os.close(link.stdin_end)  # the first process ended: the kernel closed its end
    link.link.doRead()
    assert link.gone == [True]
    assert link.link not in link.clock.readers  # end-of-file stays readable: no busy loop
    link.link.connectionLost(None)  # type: ignore[arg-type]
    assert link.gone == [True]  # once


def test_an_unknown_key_or_project_asks_for_discovery_at_most_once_per_cooldown(link: Link) -> None:
    link.link.unknown_seen({"user-x": "user_id"})
    assert link.asked() == b""  # users alone set off no walk
    link.link.unknown_seen({"key_x": "api_key_id"})
    link.link.unknown_seen({"proj_x": "project_id"})
    assert link.asked() == b"discover openai\n"
    link.clock.advance(59.9)
    link.link.unknown_seen({"key_x": "api_key_id"})
    assert link.asked() == b""
    link.clock.advance(0.1)
    link.link.unknown_seen({"key_x": "api_key_id"})
    assert link.asked() == b"discover openai\n"


def test_anthropic_s_unknown_ids_ask_for_its_own_discovery_on_a_cooldown_of_its_own(link: Link) -> None:
    anthropic = link.link.asker("anthropic", ANTHROPIC_FIELDS.triggering_fields)
    assert link.link.asker("anthropic", ANTHROPIC_FIELDS.triggering_fields) is anthropic  # one per provider
    anthropic.unknown_seen({"user_01x": "account_id"})
    assert link.asked() == b""  # accounts alone set off no walk
    anthropic.unknown_seen({"wrkspc_x": "workspace_id"})
    link.link.unknown_seen({"key_x": "api_key_id"})  # OpenAI's cooldown is not Anthropic's
    assert link.asked() == b"discover anthropic\ndiscover openai\n"
    anthropic.unknown_seen({"apikey_x": "api_key_id"})
    assert link.asked() == b""
    assert discovery_asked(b"discover anthropic") == "anthropic"
    assert discovery_asked(b"discover") is None and discovery_asked(b"nonsense anthropic") is None


def test_a_request_the_first_process_cannot_take_is_dropped_with_a_warning(
        link: Link, logged: list[dict[str, Any]]) -> None:
    os.close(link.requests_end)  # nobody reads any more
    link.link.unknown_seen({"key_x": "api_key_id"})  # no exception: the worker goes on serving
    assert [e for e in logged if e.get("log_level") == LogLevel.warn and e.get("error")]


def test_request_lines_are_whole_however_the_bytes_arrive() -> None:
    lines: list[bytes] = []
    reading = RequestLines(lines.append)
    for chunk in (b"disc", b"over\ndiscover", b"\n", b"x" * (MAX_LINE + 1), b"\ndiscover\n"):
        reading.received(chunk)
    assert lines == [b"discover", b"discover", b"discover"]  # the over-long garbage dropped
