"""Fixtures for the real daemon's cost series, shared by the modules that look at them from
outside: a month of OpenAI costs up to today on the socket fake, the daemon refreshing its cost
series from it, and a real Prometheus scraping the daemon with the shipped rules. Each module
that uses them gets its own (module scope). A module changes the daemon by defining its own
``costs_daemon_args`` (more options), ``costs_aliases`` (the alias file's text) or
``costs_client_token`` (a client token the daemon requires, and Prometheus sends)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import ROOT, assert_clean_output
from tests.support.answers import TOKEN
from tests.support.daemon import Daemon, free_port
from tests.support.fake_usage import ALIASES_TOML, FakeUsage
from tests.support.prometheus_server import PrometheusServer
from tests.support.tcp_upstream import FakeUpstream

RULES = ROOT / "etc" / "prometheus" / "orgproxy-rules.yml"


def month_around_today() -> FakeUsage:
    """FakeUsage's keys from the first of last month to today included (the admin key: TOKEN):
    the daemon, on the real clock, finds this month and the last 30 days full."""
    today = datetime.now(UTC).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return FakeUsage(token=TOKEN, since=last_month, until=today + timedelta(days=1))


@dataclass
class CostsDaemon:
    """The real daemon with an admin key, its first cost refresh done, over ``usage``."""

    daemon: Daemon
    upstream: FakeUpstream
    usage: FakeUsage
    client_token: str | None = None  # what a scrape must send, where the daemon was given one

    @property
    def url(self) -> str:
        return self.daemon.url


@pytest.fixture(scope="module")
def costs_daemon_args() -> list[str]:
    """More options for ``costs_daemon`` (a module overrides this fixture to add some)."""
    return []


@pytest.fixture(scope="module")
def costs_aliases() -> str:
    """The alias file ``costs_daemon`` names keys with (a module overrides it for other names)."""
    return ALIASES_TOML


@pytest.fixture(scope="module")
def costs_client_token() -> str | None:
    """The client token ``costs_daemon`` requires (--client-token-file); None: none."""
    return None


@pytest.fixture(scope="module")
def costs_daemon_port() -> int:
    """The port ``costs_daemon`` listens on, known before it starts (Prometheus is told first)."""
    return free_port()


@pytest.fixture(scope="module")
def costs_daemon(costs_daemon_args: list[str], costs_aliases: str, costs_client_token: str | None,
                 costs_daemon_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CostsDaemon]:
    """orgproxy over ``month_around_today()``'s costs, named by ``costs_aliases``, with the
    admin key (so the cost series are on), once the series hold the first refresh."""
    directory = tmp_path_factory.mktemp("costs-daemon")
    aliases = directory / "aliases.toml"
    aliases.write_text(costs_aliases, encoding="utf-8")
    args = ["--aliases", str(aliases), "--timeout", "5", "--state-dir", str(directory / "state")]
    if costs_client_token is not None:
        token_file = directory / "client-token"
        token_file.write_text(costs_client_token + "\n", encoding="utf-8")
        args += ["--client-token-file", str(token_file)]
    upstream = FakeUpstream().start()
    usage = month_around_today().install(upstream)
    try:
        running = Daemon(["--upstream", upstream.url, *args, *costs_daemon_args], cwd=directory,
                         env={"OPENAI_ADMIN_KEY": TOKEN}, port=costs_daemon_port)
        try:
            running.wait_ready().wait_for("cost_refreshed", provider="OpenAI", why="start")  # the first refresh
            yield CostsDaemon(running, upstream, usage, costs_client_token)
        finally:
            code = running.stop()
    finally:
        upstream.stop()
    assert_clean_output(running)
    assert code == 0, running.output


@pytest.fixture(scope="module")
def prometheus(costs_daemon_port: int, costs_client_token: str | None, request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping ``costs_daemon`` every second with etc/prometheus's rules,
    once it has scraped it. Prometheus starts first: it hands a new target to its scraper
    only after 5 s, during which the daemon starts."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{costs_daemon_port}",
                          rule_files=[RULES], token=costs_client_token) as server:
        request.getfixturevalue("costs_daemon")
        server.wait_scraped()
        yield server


def month_of(moment: float) -> tuple[date, date]:
    """(the first of the month, the day) of a Unix time, in UTC, as the cost series count."""
    day = datetime.fromtimestamp(moment, UTC).date()
    return day.replace(day=1), day
