from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import values
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher

from orgproxy.infra import metrics

from tests.support.answers import AUTH, TOKEN
from tests.support.browser import Browser
from tests.support.daemon import Daemon
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.memory import InMemoryProxy
from tests.support.tcp_upstream import FakeUpstream, upstream_fixture
from tests.support.tools import promtool, python312

__all__ = ["AUTH", "ROOT", "TOKEN", "assert_clean_output"]

ROOT = Path(__file__).resolve().parents[1]

# Tests of tools that are not Python packages run where the tool is, as their issue asks:
# the FinOps FOCUS validator where Python 3.12 is (make test then installs it), promtool
# where Debian's prometheus package is (make test installs it). Nowhere are they skipped: where
# the tool is, a test that cannot run it fails.
collect_ignore = [module for module, present in (("report/test_focus_validator.py", python312()),
                                                 ("test_prometheus_tools.py", promtool()))
                  if present is None]


# Modules whose tests share a browser, a server, a daemon or a costly import (a session or
# module fixture, an SDK imported in the test): make test (-n 3) runs each group in one process,
# so that it starts once, and spreads every other test one by one, as --dist load does.
# (pytest-xdist's own --dist loadgroup would read xdist_group marks, but under pytest 9.2 it
# cannot tag the tests it groups.)
ONE_PROCESS = {
    "tests/support/test_browser.py": "chromium",
    "tests/process/test_browser.py": "chromium",
    "tests/process/test_dashboard.py": "chromium",
    "tests/process/test_prometheus_server.py": "prometheus",
    "tests/report/test_focus_validator.py": "focus-validator",  # one validator run, for all files
    "tests/process/test_sdk.py": "openai-sdk",  # a daemon for the module; the SDK's import
    "tests/web/test_by_name.py": "openai-sdk",
    "tests/web/test_anthropic_sdk.py": "anthropic-sdk",  # 2 s to import
    "tests/process/test_report_cli.py": "report-cli-daemon",
    "tests/process/test_anthropic.py": "anthropic-daemon",
    "tests/process/test_load.py": "loaded-daemon",
    "tests/test_demo.py": "demo-upstream",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "load":
        return None  # another --dist asked for: xdist's own
    from xdist.scheduler import LoadScopeScheduling  # only where xdist runs the suite

    class GroupsInOneProcess(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return ONE_PROCESS.get(nodeid.split("::", 1)[0], nodeid)

    return GroupsInOneProcess(config, log)


@pytest.fixture(autouse=True)
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every log event of the test, in the test process; a test that logs a traceback
    (an error nobody handled, a bug) fails, unless it takes them with ``logged_failures``.
    Events never hold the admin key the tests send."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    # A failed Deferred nobody handled reports when it is collected. Objects that
    # survive are frozen, so that the next test's collection scans only its own.
    gc.collect()
    gc.freeze()
    globalLogPublisher.removeObserver(events.append)
    failures = [e for e in events if "log_failure" in e and not e.get("expected_by_test")]
    assert not failures, "logged tracebacks:\n" + "\n".join(
        e["log_failure"].getTraceback() for e in failures)
    assert not any(TOKEN in repr(e) for e in events), "the admin key appeared in a log event"


@pytest.fixture(autouse=True)
def metrics_mode() -> Iterator[None]:
    """A test that makes a daemon of several processes puts prometheus_client in
    multiprocess mode, which belongs to the process: the next test finds it as it was."""
    variable = metrics.MULTIPROC_DIR_VARIABLE
    saved_directory, saved_class = os.environ.get(variable), values.ValueClass
    yield
    values.ValueClass = saved_class
    if saved_directory is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = saved_directory


@pytest.fixture
def logged_failures(logged: list[dict[str, Any]]) -> Callable[[], list[dict[str, Any]]]:
    """The traceback events so far, taken (the test expects them)."""
    def take() -> list[dict[str, Any]]:
        found = [e for e in logged if "log_failure" in e]
        for event in found:
            event["expected_by_test"] = True
        return found
    return take


@pytest.fixture
def aliases(tmp_path: Path) -> Path:
    """A copy of the shipped example alias map."""
    path = tmp_path / "aliases.toml"
    shutil.copy(ROOT / "etc" / "aliases.toml", path)
    return path


@pytest.fixture
def fake() -> FakeOpenAI:
    """An in-memory OpenAI, serving the spec's examples."""
    return FakeOpenAI()


@pytest.fixture
def fake_anthropic() -> FakeAnthropic:
    """An in-memory Anthropic Admin API, serving a sample organization built from its examples."""
    return FakeAnthropic()


@pytest.fixture
def make_proxy(fake: FakeOpenAI, fake_anthropic: FakeAnthropic, tmp_path: Path
               ) -> Iterator[Callable[..., InMemoryProxy]]:
    """orgproxy in memory in front of ``fake`` (and ``fake_anthropic``, for /v1/organizations/):
    ``make_proxy("--aliases", path, ...)`` (``reactor=``: a memory reactor of the test's own)."""
    made: list[InMemoryProxy] = []

    def make(*args: str, environ: dict[str, str] | None = None,
             reactor: MemoryReactorClock | None = None) -> InMemoryProxy:
        proxy = InMemoryProxy(fake, tmp_path / "state", args, environ, reactor, anthropic=fake_anthropic)
        made.append(proxy)
        return proxy
    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def proxy(make_proxy: Callable[..., InMemoryProxy], aliases: Path) -> InMemoryProxy:
    """orgproxy in memory, with the example alias map, in front of the fake OpenAI."""
    return make_proxy("--aliases", str(aliases))


# --- real processes, where a process is the point ------------------------------------------

# A fake OpenAI on a real socket (in a thread), for tests that run the daemon.
upstream = upstream_fixture()


def assert_clean_output(daemon: Daemon) -> None:
    """No failure logged (an event with a traceback), nor a traceback written anywhere else;
    the admin key nowhere."""
    output = daemon.output
    assert not [e for e in daemon.events if "traceback" in e], output
    assert "Traceback" not in output, output
    assert TOKEN not in output, "the admin key appeared in the daemon's output"


@contextmanager
def serving(args: Sequence[str], cwd: Path, **daemon: Any) -> Iterator[Daemon]:
    """The real daemon (``Daemon(args, cwd, **daemon)``), serving; at the end stopped, and
    checked to have stopped with status 0 and a clean output."""
    running = Daemon(args, cwd=cwd, **daemon).wait_ready()
    try:
        yield running
    finally:
        code = running.stop()
    assert_clean_output(running)
    assert code == 0, running.output


@pytest.fixture
def daemon(upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> Iterator[Daemon]:
    """The real daemon, in front of the fake upstream, with the example alias map."""
    with serving(["--upstream", upstream.url, "--aliases", str(aliases), "--timeout", "5"], tmp_path) as running:
        yield running


# --- a real browser, where what a person sees is the point -----------------------------------

@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium (Debian's), started once per session: tests take ``browser``."""
    started = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield started
    started.close()


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """The session's Chromium on a blank page, with no cookies and no credentials."""
    chromium.reset()
    return chromium
