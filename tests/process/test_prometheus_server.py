"""A real Prometheus (Debian's) scraping the real daemon's cost series over a month of costs
up to today, with the shipped rules and the daemon's client token: what the recording rule
says per key name equals the sums of the fake's own rows."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.process.conftest import CostsDaemon, month_of
from tests.support.fake_usage import name_of
from tests.support.prometheus_server import JOB, PrometheusServer
from tests.support.raw_http import call

RECORDED = "api_key_name:orgproxy_cost_month_to_date_usd:sum"
CLIENT_TOKEN = "prometheus-scrapes-with-this-4f1c"


@pytest.fixture(scope="module")
def costs_client_token() -> str:
    return CLIENT_TOKEN


def test_the_recording_rule_sums_this_month_s_cost_per_key_name(prometheus: PrometheusServer,
                                                                costs_daemon: CostsDaemon) -> None:
    recorded = prometheus.wait_for(RECORDED)
    # The month the daemon counted: that of its last refresh, as Prometheus scraped it.
    (refreshed_at,) = [value for _, value in prometheus.instant("orgproxy_cost_refresh_timestamp_seconds")]
    first, last = month_of(refreshed_at)
    want: dict[str, float] = defaultdict(float)
    for row in costs_daemon.usage.costs_rows:
        if first <= row.day <= last:
            want[name_of(row.api_key_id)] += row.value
    got = {labels["api_key_name"]: value for labels, value in recorded}
    assert len(got) == len(recorded), "one series per key name"
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name


def test_prometheus_scrapes_the_daemon_with_its_client_token(prometheus: PrometheusServer,
                                                             costs_daemon: CostsDaemon) -> None:
    (target,) = prometheus.targets()
    assert target["health"] == "up" and target["scrapeUrl"] == costs_daemon.url + "/metrics"
    assert prometheus.instant(f'up{{job="{JOB}"}}')[0][1] == 1.0
    # The token is what let it in.
    assert call(costs_daemon.url, "/metrics", headers={}).status == 401
    assert call(costs_daemon.url, "/metrics", headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}).status == 200
