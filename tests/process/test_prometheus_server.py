"""A real Prometheus (Debian's) scraping the real daemon's cost series over a month of costs
up to today, with the shipped rules, the daemon's client token and budgets: what the recording
rule says per key name equals the sums of the fake's own rows, the budget alert fires from the
daemon's budgets file, and every query of the shipped Grafana dashboard returns series of its
panel's shape."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict

import pytest

from tests.conftest import ROOT
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


# --- budgets, and the Grafana dashboard's every query -------------------------------------------

GRAFANA = ROOT / "etc" / "grafana" / "orgproxy-costs.json"
# Grafana's own variables as a dashboard over the last hour would have them, and "All" providers.
VARIABLES = {"$provider": ".*", "$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# What each panel's series are told apart by (labels beyond those Prometheus may add: none).
PANEL_LABELS = {
    "Cost this month": {"provider"},
    "Age of the cost data": {"provider"},
    "Failed cost refreshes (last hour)": {"provider"},
    "Cost this month per key name": {"api_key_name"},
    "Budget used this month": {"api_key_name"},
    "Daily cost per key name": {"api_key_name"},
    "Month so far per key name": {"api_key_name"},
    "Cost this month per project or workspace": {"provider", "project_name"},
    "Budgets": {"api_key_name"},
}


@pytest.fixture(scope="module")
def costs_daemon_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A budget "checkout" is over, and one "mobile-app" is far from."""
    budgets = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    budgets.write_text('[budgets]\ncheckout = 1\n"mobile-app" = 1000000\n', encoding="utf-8")
    return ["--budgets", str(budgets)]


def grafana_queries() -> list[tuple[str, str, bool]]:
    """(panel title, query with Grafana's variables substituted, whether over a range) of
    every target of every panel of the shipped dashboard."""
    dashboard = json.loads(GRAFANA.read_text(encoding="utf-8"))
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            query = target["expr"]
            for variable, value in VARIABLES.items():
                query = query.replace(variable, value)
            assert "$" not in query, query
            found.append((panel["title"], query, bool(target.get("range"))))
    return found


def test_the_budget_alert_fires_for_the_name_over_its_budget_from_the_daemon_s_file(
        prometheus: PrometheusServer) -> None:
    budgets = {labels["api_key_name"]: value for labels, value in
               prometheus.wait_for("api_key_name:orgproxy_budget_monthly_usd:max")}
    assert budgets == {"checkout": 1.0, "mobile-app": 1000000.0}
    alerts = prometheus.wait_for('ALERTS{alertname="OrgproxyMonthlyBudgetExceeded"}')
    assert [labels["api_key_name"] for labels, _ in alerts] == ["checkout"]


def test_every_grafana_panel_s_query_returns_series_of_its_shape(prometheus: PrometheusServer,
                                                                 costs_daemon: CostsDaemon) -> None:
    queries = grafana_queries()
    assert {title for title, _, _ in queries} == set(PANEL_LABELS), "every panel has its expected shape here"
    by_name = {labels["api_key_name"]: value for labels, value in prometheus.wait_for(RECORDED)}
    for title, query, over_a_range in queries:
        samples = prometheus.wait_for(query)  # an instant vector, not empty
        for labels, value in samples:
            told_apart = set(labels) - {"__name__"}  # a bare selector's series keep their name
            assert PANEL_LABELS[title] <= told_apart <= PANEL_LABELS[title] | {"workspace_name"}, (title, labels)
            assert value >= 0, (title, labels, value)
        if title == "Cost this month per key name":
            assert {labels["api_key_name"]: value for labels, value in samples} == by_name
            assert [value for _, value in samples] == sorted(by_name.values(), reverse=True)
        if title == "Age of the cost data":
            assert all(value < 3600 for _, value in samples)
        if over_a_range:
            now = time.time()
            matrix = prometheus.api("query_range", query=query, start=str(now - 30), end=str(now), step="1")
            assert matrix["resultType"] == "matrix" and matrix["result"], (title, matrix)
            assert {frozenset(series["metric"]) - {"__name__"} for series in matrix["result"]} == {
                frozenset(PANEL_LABELS[title])}, title


def test_the_dashboard_s_provider_variable_lists_the_daemon_s_providers(prometheus: PrometheusServer) -> None:
    dashboard = json.loads(GRAFANA.read_text(encoding="utf-8"))
    (provider,) = [v for v in dashboard["templating"]["list"] if v["name"] == "provider"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", provider["query"]["query"]).groups()
    assert prometheus.api(f"label/{label}/values", **{"match[]": metric}) == ["openai"]
