"""Fixtures for the real daemon's cost series, shared by the modules that look at them from
outside: a month of OpenAI costs up to today on the socket fake, the daemon refreshing its cost
series from it, and a real Prometheus scraping the daemon with the shipped rules. Each module
that uses them gets its own (module scope); a module adds daemon options by defining its own
``costs_daemon_args`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_clean_output
from tests.support.answers import TOKEN
from tests.support.daemon import Daemon
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
def costs_daemon(costs_daemon_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[CostsDaemon]:
    """orgproxy over ``month_around_today()``'s costs, named by FakeUsage's alias file, with
    the admin key (so the cost series are on), once the series hold the first refresh."""
    directory = tmp_path_factory.mktemp("costs-daemon")
    aliases = directory / "aliases.toml"
    aliases.write_text(ALIASES_TOML, encoding="utf-8")
    upstream = FakeUpstream().start()
    usage = month_around_today().install(upstream)
    running = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--timeout", "5",
                      "--state-dir", str(directory / "state"), *costs_daemon_args],
                     cwd=directory, env={"OPENAI_ADMIN_KEY": TOKEN}).wait_ready()
    try:
        running.wait_for("Cost series (start)")  # the first refresh, done (a failure says "refresh")
        yield CostsDaemon(running, upstream, usage)
    finally:
        code = running.stop()
        upstream.stop()
    assert_clean_output(running)
    assert code == 0, running.output


@pytest.fixture(scope="module")
def prometheus(costs_daemon: CostsDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping ``costs_daemon`` every second with etc/prometheus's rules,
    once it has scraped it."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), costs_daemon.url, rule_files=[RULES],
                          token=costs_daemon.client_token) as server:
        server.wait_scraped()
        yield server


def month_of(moment: float) -> tuple[date, date]:
    """(the first of the month, the day) of a Unix time, in UTC, as the cost series count."""
    day = datetime.fromtimestamp(moment, UTC).date()
    return day.replace(day=1), day
