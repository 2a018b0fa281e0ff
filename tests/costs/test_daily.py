"""Each key's cost on each of the last 30 days, as a refresh keeps them for the dashboard: the
daemon in memory over FakeUsage's costs from September 10th, on a clock at 2026-10-16 09:30
UTC. What the figures should be is summed here from the fake's rows, never through the code
under test; the series on /metrics are those of this month and the last day only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orgproxy.costs.figures import CostFigures, ProviderCosts, Series, bounded, dense
from orgproxy.costs.store import FILENAME
from tests.costs.series import scrape
from tests.support.answers import TOKEN
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.fake_usage import ALIASES_TOML, COSTS, FakeUsage, day_start
from tests.support.memory import InMemoryProxy
from tests.support.usage_in_memory import serve_in_memory

NOW = day_start(date(2026, 10, 16)) + 9.5 * 3600
LAST_30_DAYS = [date(2026, 10, 16) - timedelta(days=n) for n in range(29, -1, -1)]
# FakeUsage's first key runs for its first 16 days: from September 10th, the 10th to the 25th,
# so in the last 30 days but not this month.
SEPTEMBER_ONLY = "key_3f9a1c0d7e2b4a01"


@pytest.fixture
def usage(fake: FakeOpenAI) -> FakeUsage:
    return serve_in_memory(FakeUsage(token=TOKEN, since=date(2026, 9, 10)), fake)


@pytest.fixture
def started(make_proxy: Callable[..., InMemoryProxy], tmp_path: Path, usage: FakeUsage) -> InMemoryProxy:
    aliases = tmp_path / "aliases.toml"
    aliases.write_text(ALIASES_TOML, encoding="utf-8")
    proxy = make_proxy("--aliases", str(aliases), "--discovery-interval", "86400",
                       environ={"OPENAI_ADMIN_KEY": TOKEN})
    proxy.clock.advance(NOW)
    proxy.start_service()
    proxy.flush()
    return proxy


def stored(tmp_path: Path) -> CostFigures:
    return CostFigures.from_json((tmp_path / "state" / FILENAME).read_bytes())


def daily_from_rows(usage: FakeUsage) -> dict[tuple[str | None, str | None], dict[int, Decimal]]:
    """The day's amount of each key and project, as the fake serves it: its line items added
    up as doubles, in order, and read back as the number written (its shortest spelling)."""
    sums: dict[tuple[str | None, str | None], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for row in usage.costs_rows:
        if row.day in LAST_30_DAYS:
            sums[(row.api_key_id, row.project_id)][day_start(row.day)] += row.value
    return {pair: {day: Decimal(repr(value)) for day, value in days.items()} for pair, days in sums.items()}


def test_every_key_s_cost_on_each_of_the_last_30_days_is_kept_exactly(started: InMemoryProxy, usage: FakeUsage,
                                                                      tmp_path: Path) -> None:
    (openai,) = stored(tmp_path).providers.values()
    got = {(s.api_key_id, s.group_id): {day: dollars for day, dollars in s.by_day() if dollars}
           for s in openai.series}
    want = daily_from_rows(usage)
    assert got == want
    assert all(day_start(LAST_30_DAYS[0]) <= day <= day_start(LAST_30_DAYS[-1]) for days in got.values() for day in days)


def test_a_key_that_cost_only_before_the_month_has_daily_figures_and_no_series(started: InMemoryProxy,
                                                                                tmp_path: Path) -> None:
    (openai,) = stored(tmp_path).providers.values()
    september = [s for s in openai.series if s.api_key_id == SEPTEMBER_ONLY]
    assert september and all(not s.exported and s.month_to_date == 0 and s.daily for s in september)
    month = scrape(started)["orgproxy_cost_month_to_date_usd"]
    assert SEPTEMBER_ONLY not in {dict(labels)["api_key_id"] for labels in month}
    assert {s.api_key_id for s in openai.series if s.exported} == {dict(labels)["api_key_id"] for labels in month}


def test_a_failed_refresh_is_kept_with_its_time_and_reason_until_one_succeeds(
        started: InMemoryProxy, usage: FakeUsage, fake: FakeOpenAI, tmp_path: Path) -> None:
    assert not stored(tmp_path).of("openai").failing
    fake.on(COSTS, reply(502, b"{}"))
    started.advance(3600)
    failed = stored(tmp_path).of("openai")
    assert failed.failing and failed.failed_at == NOW + 3600 and failed.refreshed_at == NOW
    assert failed.failure == "/v1/organization/costs: the upstream answered 502"
    assert failed.series, "the last figures stay"
    serve_in_memory(usage, fake)
    started.advance(1)  # the first retry
    again = stored(tmp_path).of("openai")
    assert not again.failing and again.refreshed_at == NOW + 3601 and again.failures == 1


def day(n: int) -> int:
    return day_start(date(2026, 10, n))


def daily(by_day: dict[int, str]) -> dict[str, Any]:
    days_from, amounts = dense({d: Decimal(a) for d, a in by_day.items()})
    return {"days_from": days_from, "daily": amounts}


def test_the_roll_up_into_other_adds_up_each_day_and_ranks_by_the_month_then_the_30_days() -> None:
    series = [Series("openai", "big", None, Decimal(9), Decimal(1), **daily({day(1): "0.1"})),
              Series("openai", "old", None, Decimal(0), Decimal(0), **daily({day(1): "50"}), exported=False),
              Series("openai", "older", None, Decimal(0), Decimal(0), **daily({day(3): "1"}), exported=False),
              Series("openai", "small", None, Decimal(2), Decimal(0), **daily({day(1): "0.2", day(2): "0.3"}))]
    kept = bounded(series, 3)
    assert [s.api_key_id for s in kept] == ["big", "small", None]
    other = kept[-1]
    assert other.other and not other.exported, "only keys with no cost this month went into it"
    assert (other.days_from, other.daily) == (day(1), (Decimal(50), Decimal(0), Decimal(1)))
    rolled = bounded(series, 2)[-1]
    assert rolled.exported and rolled.by_day() == [(day(1), Decimal("50.2")), (day(2), Decimal("0.3")),
                                                   (day(3), Decimal(1))]


def test_the_file_holds_each_day_and_the_last_failure_and_reads_back_the_same() -> None:
    exact = Series("anthropic", "apikey_1", None, Decimal("0.3"), Decimal("0.1"),
                   **daily({day(1): "0.10000000000000000001", day(3): "0.2"}), exported=False)
    costs = ProviderCosts((exact,), 5.0, 2, failed_at=7.5, failure="/v1/organizations/analytics/cost: timed out")
    figures = CostFigures().with_provider("anthropic", costs, 10)
    assert CostFigures.from_json(figures.to_json()) == figures
    # The format before (no days, no failure) still reads: every series exported.
    older = (b'{"version": 2, "providers": {"openai": {"refreshed_at": 1, "failures": 0,'
             b' "series": [["k", "p", "1.5", "0.5", false]]}}}')
    (series,) = CostFigures.from_json(older).of("openai").series
    assert series.exported and series.daily == () and not CostFigures.from_json(older).of("openai").failing
