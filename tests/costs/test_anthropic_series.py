"""Anthropic's cost series on /metrics, and both providers' together: the daemon in memory
with Anthropic's admin key, in front of the fake Anthropic's Usage and Cost Analytics API
(its sample organization's ledger), on a clock at the API's own "now" (2026-10-16 09:30 UTC).
What the series should say is computed here from the ledger's entries (cents as Decimal,
divided by 100), never through the code under test."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from orgproxy.costs.store import FILENAME
from tests.costs.series import Labels, scrape
from tests.support.answers import TOKEN
from tests.support.fake_analytics import BETA, COST
from tests.support.fake_anthropic import (
    ADMIN_KEY,
    BILLING,
    BILLING_KEY,
    BILLING_KEY_OLD,
    BOT_KEY,
    PERSONAL_KEY,
    PLATFORM,
    FakeAnthropic,
)
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.fake_usage import FakeUsage, day_start
from tests.support.memory import InMemoryProxy
from tests.support.usage_in_memory import serve_in_memory

ANTHROPIC_KEY = {"ANTHROPIC_ADMIN_KEY": ADMIN_KEY}
BOTH_KEYS = {**ANTHROPIC_KEY, "OPENAI_ADMIN_KEY": TOKEN}
NOW = day_start(date(2026, 10, 16)) + 9.5 * 3600
MONTH, LAST_DAY = "orgproxy_cost_month_to_date_usd", "orgproxy_cost_last_day_usd"
# The names discovery learns from the fake's Admin API.
KEY_NAMES = {BILLING_KEY: "billing-batch-prod", BILLING_KEY_OLD: "billing-batch-prod", PERSONAL_KEY: "jane-laptop",
             BOT_KEY: "ci-deploy-bot key"}
WORKSPACE_NAMES = {BILLING: "Billing", PLATFORM: "Platform"}
ANTHROPIC: Labels = (("provider", "anthropic"),)
OPENAI: Labels = (("provider", "openai"),)
Start = Callable[..., InMemoryProxy]


@pytest.fixture
def start(make_proxy: Callable[..., InMemoryProxy]) -> Start:
    """orgproxy with Anthropic's admin key (and others, by ``environ``), its clock at
    ``at``, started: its first discovery and refresh done."""
    def started(*args: str, at: float = NOW, environ: dict[str, str] = ANTHROPIC_KEY) -> InMemoryProxy:
        proxy = make_proxy("--discovery-interval", "86400", *args, environ=environ)
        proxy.clock.advance(at)
        proxy.start_service()
        proxy.flush()
        return proxy
    return started




def labels(key: str | None, workspace: str | None) -> Labels:
    return tuple(sorted({"provider": "anthropic", "api_key_id": key or "",
                         "api_key_name": KEY_NAMES.get(key, "unknown") if key else "Console",
                         "workspace_id": workspace or "",
                         "workspace_name": WORKSPACE_NAMES.get(workspace, "unknown") if workspace else "Default"
                         }.items()))


def expected(fake_anthropic: FakeAnthropic, first: str, last: str) -> dict[Labels, Decimal]:
    """Dollars per key and workspace over the days [first, last], from the ledger."""
    sums: dict[Labels, Decimal] = defaultdict(Decimal)
    for entry in fake_anthropic.org.analytics.costs:
        if first <= entry.day <= last:
            sums[labels(entry.dimensions.get("api_key_id"), entry.dimensions.get("workspace_id"))] += (
                Decimal(entry.amount) / 100)
    return dict(sums)


def anthropic_series(samples: dict[str, dict[Labels, float]], name: str) -> dict[Labels, float]:
    return {k: v for k, v in samples[name].items() if ("provider", "anthropic") in k}


def analytics_calls(fake_anthropic: FakeAnthropic) -> list[Any]:
    return [r for r in fake_anthropic.received if r.path == COST.encode()]


# --- what the series say ----------------------------------------------------------------------

def test_month_to_date_and_last_day_per_key_and_workspace_are_the_ledger_s_exact_dollars(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    proxy = start()
    samples = scrape(proxy)
    month = anthropic_series(samples, MONTH)
    want = expected(fake_anthropic, "2026-10-01", "2026-10-16")
    assert month == {k: float(v) for k, v in want.items()}
    assert anthropic_series(samples, LAST_DAY) == {
        k: float(expected(fake_anthropic, "2026-10-15", "2026-10-15").get(k, Decimal(0))) for k in want}
    # The expired key's 10 + 20 cents are $0.3, not a double's 0.1 + 0.2.
    assert month[labels(BILLING_KEY_OLD, BILLING)] == 0.3
    assert f'api_key_id="{BILLING_KEY_OLD}"' in proxy.get("/metrics").body.decode()
    assert [line for line in proxy.get("/metrics").body.decode().splitlines()
            if line.startswith(MONTH) and BILLING_KEY_OLD in line][0].endswith(" 0.3")
    # Rotated keys are two series of one name; the Console and the Default Workspace are named.
    assert sum(dict(k)["api_key_name"] == "billing-batch-prod" for k in month) == 2
    assert labels(None, None) in month and dict(labels(None, None))["api_key_name"] == "Console"
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {ANTHROPIC: NOW}
    assert samples["orgproxy_cost_refresh_failures_total"] == {ANTHROPIC: 0.0}


def test_one_refresh_asks_the_analytics_api_by_key_and_workspace_daily_every_page_with_its_beta(
        start: Start, fake_anthropic: FakeAnthropic, fake: FakeOpenAI) -> None:
    fake_anthropic.org.analytics.default_limit = 3
    start()
    calls = analytics_calls(fake_anthropic)
    queries = [parse_qsl(c.target.decode().partition("?")[2]) for c in calls]
    for query in queries:
        assert [v for k, v in query if k == "group_by[]"] == ["api_key_id", "workspace_id"]
        # The last 30 days (today's so far the last), which hold this month's 16.
        assert dict(query)["starting_at"] == "2026-09-17T00:00:00Z"
        assert dict(query)["time_bucket_width"] == "1d"
    pages = [json.loads(body) for body in fake_anthropic.answered if b'"data_refreshed_at"' in body]
    rows = sum(len(page["data"]) for page in pages)
    assert len(calls) == len(pages) == -(-rows // 3) > 1, "every page of 3 rows"
    assert [page["has_more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    assert [dict(q).get("page") for q in queries] == [None] + [page["next_page"] for page in pages[:-1]]
    for call in calls:
        assert call.header("x-api-key") == ADMIN_KEY.encode()
        assert call.header("anthropic-beta") == BETA.encode()
        assert call.header("anthropic-version") == b"2023-06-01"
        assert call.header("authorization") is None
    # Discovery's calls carry no beta; nothing went to OpenAI.
    assert all(r.header("anthropic-beta") is None for r in fake_anthropic.received if r.path != COST.encode())
    assert fake.received == []


def test_on_the_first_of_a_month_the_last_day_is_the_previous_month_s_last(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.org.analytics.now = fake_anthropic.org.analytics.now.replace(day=1, hour=1)
    proxy = start(at=day_start(date(2026, 10, 1)) + 3600)
    samples = scrape(proxy)
    assert anthropic_series(samples, LAST_DAY)[labels(BILLING_KEY, BILLING)] == float(Decimal("999.99") / 100)
    # The last 30 days: from September 2nd, yesterday the 30th among them.
    assert dict(parse_qsl(analytics_calls(fake_anthropic)[0].target.decode().partition("?")[2]))["starting_at"] == (
        "2026-09-02T00:00:00Z")


# --- both providers ---------------------------------------------------------------------------

@pytest.fixture
def usage(fake: FakeOpenAI) -> FakeUsage:
    return serve_in_memory(FakeUsage(token=TOKEN), fake)


def test_both_providers_series_side_by_side_each_with_its_own_labels(start: Start, usage: FakeUsage) -> None:
    samples = scrape(start(environ=BOTH_KEYS))
    providers = {dict(k)["provider"]: set(dict(k)) for k in samples[MONTH]}
    assert providers == {
        "openai": {"provider", "api_key_id", "api_key_name", "project_id", "project_name"},
        "anthropic": {"provider", "api_key_id", "api_key_name", "workspace_id", "workspace_name"}}
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW, ANTHROPIC: NOW}


def test_cost_series_max_counts_both_providers_and_each_rolls_its_rest_into_other(
        start: Start, usage: FakeUsage, fake_anthropic: FakeAnthropic) -> None:
    every = scrape(start(environ=BOTH_KEYS))[MONTH]
    proxy = start("--cost-series-max", "5", environ=BOTH_KEYS)
    month = scrape(proxy)[MONTH]
    assert len(month) == 5
    others = {dict(k)["provider"]: v for k, v in month.items() if dict(k)["api_key_name"] == "other"}
    kept = {k: v for k, v in month.items() if dict(k)["api_key_name"] != "other"}
    assert set(others) == {"openai", "anthropic"}
    assert sorted(kept.values(), reverse=True) == sorted(every.values(), reverse=True)[:3]
    for provider, rolled in others.items():
        rest = [v for k, v in every.items() if dict(k)["provider"] == provider and k not in kept]
        assert rolled == pytest.approx(sum(rest), rel=1e-12)


def test_a_failing_provider_counts_its_own_failures_and_goes_stale_alone(
        start: Start, usage: FakeUsage, fake_anthropic: FakeAnthropic, logged: list[dict[str, Any]]) -> None:
    fake_anthropic.on(COST, reply(500, {"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    proxy = start(environ=BOTH_KEYS)
    samples = scrape(proxy)
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW, ANTHROPIC: 0.0}
    assert samples["orgproxy_cost_refresh_failures_total"] == {OPENAI: 0.0, ANTHROPIC: 1.0}
    assert not anthropic_series(samples, MONTH) and samples[MONTH]
    assert [e["reason"] for e in logged if str(e.get("reason", "")).startswith(COST)] == [
        f"{COST}: the upstream answered 500"]


@pytest.mark.parametrize("row", [
    {"starting_at": "2026-10-15T00:00:00Z", "group": {"api_key_id": None}, "cost": {"amount": 12.5}},
    {"starting_at": "yesterday", "group": {}, "cost": {"amount": "1"}},
    {"starting_at": "2026-10-15T00:00:00Z", "cost": {"amount": "1"}},
    "a row",
])
def test_a_row_not_shaped_like_the_api_s_is_a_failure_not_a_traceback(start: Start, fake_anthropic: FakeAnthropic,
                                                                      row: Any) -> None:
    fake_anthropic.on(COST, reply(body={"data": [row], "has_more": False, "next_page": None}))
    samples = scrape(start())
    assert samples["orgproxy_cost_refresh_failures_total"] == {ANTHROPIC: 1.0}
    assert not samples.get(MONTH)


# --- the state file ---------------------------------------------------------------------------

def test_the_figures_file_keeps_both_providers_and_a_restart_shows_them_until_a_refresh(
        start: Start, usage: FakeUsage, fake: FakeOpenAI, fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    first = start(environ=BOTH_KEYS)
    shown = scrape(first)
    first.close()
    document = json.loads((tmp_path / "state" / FILENAME).read_text())
    assert set(document["providers"]) == {"openai", "anthropic"}
    assert "billing-batch-prod" not in json.dumps(document), "names are drawn at each scrape"
    # Dollars as decimal strings, never a double's digits.
    [month_to_date] = [s[2] for s in document["providers"]["anthropic"]["series"] if s[0] == BILLING_KEY_OLD]
    assert isinstance(month_to_date, str) and Decimal(month_to_date) == Decimal("0.3")
    fake.on("/v1/organization/costs", reply(503, b"{}"))
    fake_anthropic.on(COST, reply(503, b"{}"))
    again = start(at=0, environ=BOTH_KEYS)  # the same state directory, a clock an hour on
    samples = scrape(again)
    for name in (MONTH, LAST_DAY):
        assert samples[name] == shown[name]
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW, ANTHROPIC: NOW}


def test_a_worker_shows_both_providers_as_the_fetching_process_wrote_them(
        start: Start, usage: FakeUsage, fake_anthropic: FakeAnthropic) -> None:
    shown = scrape(start(environ=BOTH_KEYS))
    calls = len(analytics_calls(fake_anthropic))
    worker = start("--worker-number", "1", environ=BOTH_KEYS)
    worker.advance(7200)
    assert len(analytics_calls(fake_anthropic)) == calls, "a worker never asks for costs"
    assert scrape(worker) == shown


def test_the_figures_of_the_format_before_are_read_as_openai_s(start: Start, fake: FakeOpenAI,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / FILENAME).write_text(json.dumps({
        "version": 1, "refreshed_at": 1000.0, "failures": 2,
        "series": [["key_a", "proj_b", 0.30000000000000004, 0.1, False], [None, None, 5.5, 0.0, True]]}))
    fake.on("/v1/organization/costs", reply(503, b"{}"))
    samples = scrape(start(environ={"OPENAI_ADMIN_KEY": TOKEN}))
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: 1000.0}
    assert samples["orgproxy_cost_refresh_failures_total"] == {OPENAI: 3.0}
    assert sorted(samples[MONTH].values()) == [0.30000000000000004, 5.5]


def test_cost_interval_0_means_no_analytics_calls(start: Start, fake_anthropic: FakeAnthropic) -> None:
    proxy = start("--cost-interval", "0")
    proxy.advance(7200)
    assert not scrape(proxy) and not analytics_calls(fake_anthropic)

