"""OpenAI's cost series on /metrics: the daemon in memory, with an admin key, in front of
FakeUsage's month of costs (paged 7 days at a time), on a clock set to a moment of that
month. What the series should say is computed from FakeUsage's rows, never through the
code under test. (Anthropic's, and both together: test_anthropic_series.py.)"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orgproxy.costs.collector import cost_families
from orgproxy.costs.figures import CostFigures, ProviderCosts, Series, bounded
from orgproxy.costs.openai_costs import query
from orgproxy.costs.store import FILENAME
from orgproxy.costs.window import Window
from orgproxy.snapshot import Names
from orgproxy.ops.reload import ReloadService
from tests.costs.series import Labels, scrape
from tests.support.answers import TOKEN
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.fake_usage import ALIASES_TOML, COSTS, DAY, FakeUsage, day_start, name_of
from tests.support.memory import InMemoryProxy
from tests.support.usage_in_memory import serve_in_memory

ADMIN_KEY = {"OPENAI_ADMIN_KEY": TOKEN}
# 2026-10-16 09:30 UTC: the month so far is Oct 1-16, the last complete day Oct 15.
NOW = day_start(date(2026, 10, 16)) + 9.5 * 3600
PROJECT_NAMES = {"proj_shop": "shop"}
SERIES = ("orgproxy_cost_month_to_date_usd", "orgproxy_cost_last_day_usd")
OPENAI: Labels = (("provider", "openai"),)


@pytest.fixture
def usage(fake: FakeOpenAI) -> FakeUsage:
    return serve_in_memory(FakeUsage(token=TOKEN), fake)


@pytest.fixture
def names_file(tmp_path: Path) -> Path:
    path = tmp_path / "aliases.toml"
    path.write_text(ALIASES_TOML, encoding="utf-8")
    return path


Start = Callable[..., InMemoryProxy]


@pytest.fixture
def start(make_proxy: Callable[..., InMemoryProxy], names_file: Path) -> Start:
    """orgproxy with the admin key and FakeUsage's names, its clock at ``at``, started:
    its first refresh done."""
    def started(*args: str, at: float = NOW, environ: dict[str, str] | None = None) -> InMemoryProxy:
        proxy = make_proxy("--aliases", str(names_file), "--discovery-interval", "86400", *args,
                           environ=ADMIN_KEY if environ is None else environ)
        proxy.clock.advance(at)
        proxy.start_service()
        proxy.flush()
        return proxy
    return started




def labels(key: str | None, project: str | None) -> Labels:
    return tuple(sorted({"provider": "openai", "api_key_id": key or "", "api_key_name": name_of(key) if key else "",
                         "project_id": project or "",
                         "project_name": PROJECT_NAMES.get(project, "unknown") if project else ""}.items()))


def expected(usage: FakeUsage, first: date, last: date) -> dict[Labels, float]:
    """Dollars per key and project over [first, last], from the fake's own rows."""
    sums: dict[Labels, float] = defaultdict(float)
    for row in usage.costs_rows:
        if first <= row.day <= last:
            sums[labels(row.api_key_id, row.project_id)] += row.value
    return dict(sums)


def assert_close(got: dict[Labels, float], want: dict[Labels, float]) -> None:
    assert set(got) >= set(want), set(want) - set(got)
    for key, value in got.items():
        assert value == pytest.approx(want.get(key, 0.0), abs=1e-9), key


def costs_calls(fake: FakeOpenAI) -> list[Any]:
    return [r for r in fake.received if r.path == COSTS.encode()]


# --- what the series say ----------------------------------------------------------------------

def test_month_to_date_and_last_day_per_key_and_project_equal_the_fakes_sums(start: Start,
                                                                             usage: FakeUsage) -> None:
    proxy = start()
    samples = scrape(proxy)
    assert_close(samples["orgproxy_cost_month_to_date_usd"], expected(usage, date(2026, 10, 1), date(2026, 10, 16)))
    assert_close(samples["orgproxy_cost_last_day_usd"], expected(usage, date(2026, 10, 15), date(2026, 10, 15)))
    # The rotated "checkout" keys are two series with one name; unknown keys are "unknown".
    month = samples["orgproxy_cost_month_to_date_usd"]
    assert sum(dict(k)["api_key_name"] == "checkout" for k in month) == 2
    assert {dict(k)["api_key_id"] for k in month if dict(k)["api_key_name"] == "unknown"} == {
        "key_9f8e7d6c5b4a3210", "key_0badc0ffee000042"}
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW}
    assert samples["orgproxy_cost_refresh_failures_total"] == {OPENAI: 0.0}


def test_one_refresh_walks_every_page_of_the_month_grouped_by_key_and_project(start: Start,
                                                                              usage: FakeUsage) -> None:
    start()
    served = usage.served_for(COSTS)
    assert len(served) == 5, "30 days in pages of at most 7 buckets"
    # The last 30 days, today's so far the last: they hold the month's 16.
    assert {(s.start_time, s.end_time) for s in served} == {(day_start(date(2026, 9, 17)),
                                                             day_start(date(2026, 10, 17)))}
    assert all(set(s.group_by) == {"api_key_id", "project_id"} for s in served)
    assert [s.page for s in served[1:]] == [s.next_page for s in served[:-1]]
    assert not served[-1].has_more
    assert sorted(b for s in served for b in s.buckets) == list(range(day_start(date(2026, 9, 17)),
                                                                      day_start(date(2026, 10, 17)), DAY))


def test_on_the_first_of_a_month_the_last_day_is_the_previous_month_s_last(
        start: Start, fake: FakeOpenAI) -> None:
    usage = serve_in_memory(FakeUsage(token=TOKEN, since=date(2026, 9, 1), until=date(2026, 11, 1)), fake)
    proxy = start(at=day_start(date(2026, 10, 1)) + 3600)
    samples = scrape(proxy)
    assert_close(samples["orgproxy_cost_month_to_date_usd"], expected(usage, date(2026, 10, 1), date(2026, 10, 1)))
    assert_close(samples["orgproxy_cost_last_day_usd"], expected(usage, date(2026, 9, 30), date(2026, 9, 30)))


def test_every_interval_the_series_are_refreshed_for_the_moment_it_is(start: Start, usage: FakeUsage) -> None:
    proxy = start("--cost-interval", "3600")
    proxy.advance(3599)
    assert len(usage.served_for(COSTS)) == 5
    proxy.advance(1)
    assert len(usage.served_for(COSTS)) == 10
    # A day later (hourly refreshes in between), the month so far has one more day.
    proxy.advance(DAY - 3600)
    samples = scrape(proxy)
    assert_close(samples["orgproxy_cost_month_to_date_usd"], expected(usage, date(2026, 10, 1), date(2026, 10, 17)))
    assert_close(samples["orgproxy_cost_last_day_usd"], expected(usage, date(2026, 10, 16), date(2026, 10, 16)))
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW + DAY}


def test_a_rename_replaces_the_series_and_never_duplicates_it(start: Start, usage: FakeUsage,
                                                              names_file: Path) -> None:
    proxy = start()
    before = scrape(proxy)["orgproxy_cost_month_to_date_usd"]
    names_file.write_text(ALIASES_TOML.replace('"mobile-app"', '"mobile-app-v2"'), encoding="utf-8")
    (reload,) = [s for s in proxy.service if isinstance(s, ReloadService)]
    reload.on_sighup()  # as the operator's SIGHUP does
    proxy.flush()
    after = scrape(proxy)["orgproxy_cost_month_to_date_usd"]
    assert len(after) == len(before)
    mobile = [dict(k) for k in after if dict(k)["api_key_id"] == "key_c4d1a7e93b0f5803"]
    assert [m["api_key_name"] for m in mobile] == ["mobile-app-v2"]
    assert not [k for k in after if dict(k)["api_key_name"] == "mobile-app"]


def test_beyond_cost_series_max_the_smallest_roll_into_other(start: Start, usage: FakeUsage) -> None:
    proxy = start("--cost-series-max", "3")
    want = expected(usage, date(2026, 10, 1), date(2026, 10, 16))
    month = scrape(proxy)["orgproxy_cost_month_to_date_usd"]
    assert len(month) == 3
    largest = sorted(want.items(), key=lambda item: -item[1])[:2]
    other = tuple(sorted({"provider": "openai", "api_key_id": "", "api_key_name": "other", "project_id": "",
                          "project_name": ""}.items()))
    assert_close({k: v for k, v in month.items() if k != other}, dict(largest))
    assert month[other] == pytest.approx(sum(want.values()) - sum(v for _, v in largest), abs=1e-9)


# --- failures ---------------------------------------------------------------------------------

def test_a_failed_refresh_keeps_the_last_values_counts_a_failure_and_backs_off(
        start: Start, usage: FakeUsage, fake: FakeOpenAI, logged: list[dict[str, Any]]) -> None:
    proxy = start()
    first = scrape(proxy)
    fake.on(COSTS, reply(500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}))
    proxy.advance(3600)
    proxy.advance(1)  # the first retry, one second later
    calls = len(costs_calls(fake))
    proxy.advance(1.9)
    assert len(costs_calls(fake)) == calls, "the second retry waits two seconds"
    proxy.advance(0.1)
    assert len(costs_calls(fake)) == calls + 1
    samples = scrape(proxy)
    for name in SERIES:
        assert samples[name] == first[name]
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW}
    assert samples["orgproxy_cost_refresh_failures_total"] == {OPENAI: 3.0}
    failures = [e for e in logged if e.get("reason", "").startswith("/v1/organization/costs")]
    assert [e["reason"] for e in failures] == ["/v1/organization/costs: the upstream answered 500"] * 3
    # Working again: the values return to the month's, and the failures stay counted.
    serve_in_memory(usage, fake)
    proxy.advance(4)
    samples = scrape(proxy)
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW + 3600 + 7}
    assert samples["orgproxy_cost_refresh_failures_total"] == {OPENAI: 3.0}


def test_a_429_is_retried_after_its_retry_after(start: Start, fake: FakeOpenAI, usage: FakeUsage) -> None:
    fake.on(COSTS, reply(429, {"error": {"message": "slow down", "type": "rate_limit", "param": None,
                                         "code": None}}, headers=[("Retry-After", "120")]))
    proxy = start()
    assert len(costs_calls(fake)) == 1
    serve_in_memory(usage, fake)
    proxy.advance(119)
    assert len(costs_calls(fake)) == 1
    proxy.advance(1)
    assert scrape(proxy)["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW + 120}


@pytest.mark.parametrize("page", [
    {"object": "page", "data": [{"object": "bucket", "results": []}], "has_more": False},
    {"object": "page", "data": [{"object": "bucket", "start_time": 1, "results": [{"amount": None}]}]},
    {"object": "page", "data": [], "has_more": True, "next_page": None},
])
def test_a_page_not_shaped_like_openai_s_is_a_failure_not_a_traceback(start: Start, fake: FakeOpenAI,
                                                                      page: dict[str, Any]) -> None:
    fake.on(COSTS, reply(body=page))
    proxy = start()
    samples = scrape(proxy)
    assert samples["orgproxy_cost_refresh_failures_total"] == {OPENAI: 1.0}
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: 0.0}
    assert not samples.get("orgproxy_cost_month_to_date_usd")


def test_a_refused_admin_key_is_counted_and_never_shown(start: Start, fake: FakeOpenAI,
                                                       logged: list[dict[str, Any]], tmp_path: Path) -> None:
    fake.on(COSTS, reply(401, {"error": {"message": f"Incorrect API key provided: {TOKEN[:12]}****",
                                         "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}))
    proxy = start()
    body = proxy.get("/metrics").body.decode()
    assert 'orgproxy_cost_refresh_failures_total{provider="openai"} 1.0' in body
    assert TOKEN[:12] not in body and TOKEN[:12] not in repr(logged)
    assert TOKEN not in (tmp_path / "state" / FILENAME).read_text()
    # The key went only to OpenAI, as discovery's does.
    assert costs_calls(fake)[0].header("authorization") == f"Bearer {TOKEN}".encode()


# --- one process fetches; every process shows; a restart keeps the values ---------------------

def test_a_worker_fetches_nothing_and_shows_what_the_fetching_process_wrote(
        start: Start, usage: FakeUsage, fake: FakeOpenAI) -> None:
    parent = start()
    shown = scrape(parent)
    calls = len(costs_calls(fake))
    worker = start("--worker-number", "1")
    worker.advance(7200)
    assert len(costs_calls(fake)) == calls, "a worker never asks for costs"
    assert scrape(worker) == shown
    # The fetching process refreshes; the worker's next scrape shows the new values.
    parent.advance(3600)
    assert scrape(worker)["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW + 3600}


def test_after_a_restart_the_last_values_are_shown_until_a_refresh_succeeds(
        start: Start, usage: FakeUsage, fake: FakeOpenAI) -> None:
    first = start()
    shown = scrape(first)
    first.close()
    fake.on(COSTS, reply(503, b"{}"))
    again = start(at=0)  # the same state directory, a clock an hour on
    again.advance(3600)
    samples = scrape(again)
    for name in SERIES:
        assert samples[name] == shown[name]
    assert samples["orgproxy_cost_refresh_timestamp_seconds"] == {OPENAI: NOW}, "the time of the values shown"
    assert samples["orgproxy_cost_refresh_failures_total"][OPENAI] >= 1


@pytest.mark.parametrize("content", [b"", b"[]", b'{"version": 2}', b'{"version": 4, "providers": {}}',
                                     b'{"version": 1, "series": [[1]]}', b'{"version": 2, "providers": {"x": {}}}',
                                     b'{"version": 2, "providers": {"openai": {"refreshed_at": 1, "failures": 0,'
                                     b' "series": [["k", "p", "NaN", "1", false]]}}}', b"\xff\xfe"])
def test_a_broken_figures_file_shows_no_series_and_is_reported_once(
        start: Start, tmp_path: Path, logged: list[dict[str, Any]], content: bytes) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / FILENAME).write_bytes(content)
    worker = start("--worker-number", "1")
    for _ in range(3):
        samples = scrape(worker)
        assert not samples.get("orgproxy_cost_month_to_date_usd")
        assert not samples.get("orgproxy_cost_refresh_timestamp_seconds")
    assert len([e for e in logged if str(e.get("path", "")).endswith(FILENAME)]) == 1


def test_cost_interval_0_or_no_admin_key_means_no_cost_series_and_no_costs_calls(
        start: Start, fake: FakeOpenAI, usage: FakeUsage) -> None:
    for proxy in (start("--cost-interval", "0"), start(environ={})):
        proxy.advance(7200)
        assert not scrape(proxy)
    assert not costs_calls(fake)


# --- the pure parts ---------------------------------------------------------------------------

def test_the_window_is_the_month_so_far_and_the_last_30_days_in_utc_days() -> None:
    def at(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    window = Window.at(at("2026-10-16T23:59:59"))
    assert (window.start_time, window.end_time) == (at("2026-09-17T00:00:00"), at("2026-10-17T00:00:00"))
    assert (window.month_start, window.last_day_start) == (at("2026-10-01T00:00:00"), at("2026-10-15T00:00:00"))
    assert dict(query(window))["limit"] == "30"
    first = Window.at(at("2026-03-01T00:00:00"))
    assert (first.start_time, first.month_start, first.last_day_start) == (
        at("2026-01-31T00:00:00"), at("2026-03-01T00:00:00"), at("2026-02-28T00:00:00"))
    # On the 31st the month is the longer: 31 days.
    last = Window.at(at("2026-12-31T12:00:00"))
    assert (last.start_time, last.days) == (at("2026-12-01T00:00:00"), 31)
    assert last.day_of(int(at("2026-12-05T00:00:00"))) == at("2026-12-05T00:00:00")
    assert last.day_of(int(at("2026-11-30T00:00:00"))) is None and last.day_of(int(at("2027-01-01T00:00:00"))) is None


def test_bounded_keeps_the_largest_and_adds_up_the_rest_as_one() -> None:
    series = [Series("openai", f"key_{i}", "proj", Decimal(i), Decimal(i) / 10) for i in range(1, 6)]
    assert [(s.api_key_id, s.other) for s in bounded(series, 5)] == [
        ("key_5", False), ("key_4", False), ("key_3", False), ("key_2", False), ("key_1", False)]
    kept = bounded(series, 3)
    assert [(s.api_key_id, s.month_to_date, s.other) for s in kept] == [
        ("key_5", 5, False), ("key_4", 4, False), (None, 6, True)]
    assert kept[-1].last_day == Decimal("0.6")


def test_the_figures_file_holds_ids_and_dollars_only(start: Start, usage: FakeUsage, tmp_path: Path) -> None:
    start()
    document = json.loads((tmp_path / "state" / FILENAME).read_text())
    assert set(document) == {"version", "providers"} and set(document["providers"]) == {"openai"}
    assert "checkout" not in json.dumps(document), "names are drawn at each scrape, not stored"


class Families:
    """A collector of fixed families, for a registry of the test's own."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def test_the_series_are_written_whatever_the_ids_and_names_hold() -> None:
    """An id is the upstream's to choose, and a name may reach the snapshot by any way: a
    lone surrogate or a control character never fails the scrape."""
    names = Names.from_aliases({"api_keys": {"key_a": "bad\ud800name", "key_b": "line\nbreak\x1b[2J"},
                                "projects": {"proj_\ud800": "p"}})
    openai = (Series("openai", "key_a", "proj_\ud800", Decimal("1.5"), Decimal("0.5")),
              Series("openai", "key_b", None, Decimal(2), Decimal(1)),
              Series("openai", "key_\ud801\r", None, Decimal(3), Decimal(0)))
    anthropic = (Series("anthropic", "apikey_\x00", "wrkspc_\udfff", Decimal(4), Decimal(0)),)
    figures = CostFigures().with_provider("openai", ProviderCosts(openai), 10)
    figures = figures.with_provider("anthropic", ProviderCosts(anthropic), 10)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Families(list(cost_families(figures, names))))  # type: ignore[arg-type]
    text = generate_latest(registry).decode("utf-8")
    samples = {tuple(sorted(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(text) if family.name == "orgproxy_cost_month_to_date_usd"
               for sample in family.samples}
    assert samples == {
        (("api_key_id", "key_a"), ("api_key_name", "bad\ufffdname"), ("project_id", "proj_\ufffd"),
         ("project_name", "p"), ("provider", "openai")): 1.5,
        (("api_key_id", "key_b"), ("api_key_name", "line\ufffdbreak\ufffd[2J"), ("project_id", ""),
         ("project_name", ""), ("provider", "openai")): 2.0,
        (("api_key_id", "key_\ufffd\ufffd"), ("api_key_name", "unknown"), ("project_id", ""),
         ("project_name", ""), ("provider", "openai")): 3.0,
        (("api_key_id", "apikey_\ufffd"), ("api_key_name", "unknown"), ("provider", "anthropic"),
         ("workspace_id", "wrkspc_\ufffd"), ("workspace_name", "unknown")): 4.0,
    }
