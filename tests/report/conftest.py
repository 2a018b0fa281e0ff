"""The report in the test process, against FakeUsage on a real socket with no daemon.

``orgproxy-report`` talks plain HTTP to whatever ``--proxy`` names. What it relies on from
orgproxy is small: ``group_by=api_key_name`` is accepted, and every row holds ``api_key_name``
beside ``api_key_id`` ("unknown" for an id nobody named). ``NamesBesideIds`` plays that part
in front of FakeUsage, and deliberately merges nothing: rows of two keys that share a name
arrive apart, and the report must add them up itself. The real daemon's merging is
tested with the real processes in tests/process/test_report_cli.py.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from orgproxy.report.cli import main
from tests.support.analytics_month import AnalyticsNamesBesideIds
from tests.support.answers import TOKEN
from tests.support.fake_usage import COMPLETIONS, COSTS, FakeUsage, name_of
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply


class _Naming:
    """Stands in for the handler FakeUsage answers: puts names into a 200 page's rows."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def send_reply(self, reply: Reply) -> None:
        if reply.status == 200:
            page = json.loads(reply.body)
            for bucket in page["data"]:
                for row in bucket["results"]:
                    key_id = row["api_key_id"]
                    row["api_key_name"] = None if key_id is None else name_of(key_id)
            reply = dataclasses.replace(reply, body=json.dumps(page, indent=2).encode())
        self.handler.send_reply(reply)


@dataclass
class NamesBesideIds:
    """orgproxy's contract, as far as the report needs it, in front of FakeUsage."""
    usage: FakeUsage

    def install(self, upstream: FakeUpstream) -> NamesBesideIds:
        upstream.on(COSTS, self.answer)
        upstream.on(COMPLETIONS, self.answer)
        return self

    def answer(self, handler: Handler, received: Received) -> None:
        by_id = received.target.replace(b"group_by=api_key_name", b"group_by=api_key_id")
        self.usage.answer(_Naming(handler), dataclasses.replace(received, target=by_id))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def one_upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(one_upstream: FakeUpstream) -> FakeUpstream:
    """The fake OpenAI on a real socket, as in tests/conftest.py, but started once for all
    these tests (each stop waits out the server's poll interval) and emptied for each."""
    one_upstream.behaviours.clear()
    one_upstream.received.clear()
    one_upstream.cancelled.clear()
    return one_upstream


@pytest.fixture
def usage(upstream: FakeUpstream) -> FakeUsage:
    """FakeUsage's month, with names beside the ids, at ``upstream.url``."""
    fake = FakeUsage(token=TOKEN)
    NamesBesideIds(fake).install(upstream)
    return fake


@pytest.fixture
def install_usage(upstream: FakeUpstream) -> Callable[..., FakeUsage]:
    """Another range of FakeUsage (``FakeUsage(**options)``), with names, at ``upstream.url``."""
    def install(**options: Any) -> FakeUsage:
        fake = FakeUsage(token=TOKEN, **options)
        NamesBesideIds(fake).install(upstream)
        return fake
    return install


ANTHROPIC_KEY = "sk-ant-admin01-report-key-never-logged"


@pytest.fixture
def analytics(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> AnalyticsNamesBesideIds:
    """Anthropic's analytics month (tests/support/analytics_month.py), with names beside the
    ids, at ``upstream.url``; its admin key in ANTHROPIC_ADMIN_KEY."""
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", ANTHROPIC_KEY)
    return AnalyticsNamesBesideIds().install(upstream)


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def ok(self) -> str:
        """A successful run's stdout."""
        assert self.code == 0, f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"
        assert "Traceback" not in self.err, self.err
        return self.out

    def json(self, exact: bool = False) -> dict[str, Any]:
        """The JSON printed; ``exact``: its numbers with a point as Decimal."""
        out = self.ok()
        try:
            return json.loads(out, parse_float=Decimal) if exact else json.loads(out)
        except ValueError:
            raise AssertionError(f"--format json printed no JSON:\n{out}") from None


Run = Callable[..., Ran]


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``report(*args, key=TOKEN)``: ``orgproxy-report args`` in this process (its ``main``),
    with the admin key in OPENAI_ADMIN_KEY (none if None) and no ORGPROXY_URL."""
    monkeypatch.delenv("ORGPROXY_URL", raising=False)

    def run(*args: str, key: str | None = TOKEN) -> Ran:
        if key is None:
            monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
        else:
            monkeypatch.setenv("OPENAI_ADMIN_KEY", key)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)
    return run


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """The URL of a server that reads each request and closes the connection unanswered
    (a proxy killed mid-request, or something else on the port)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return  # closed: the test is over
            with connection:
                connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
    server.close()
    thread.join(5)
