"""A range asked for window by window and page by page, every row added into a Report:
against FakeUsage on a real socket, no daemon."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import date

import pytest

from orgproxy.report.collect import collect, window_query
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.progress import Progress
from tests.support.answers import TOKEN
from tests.support.fake_usage import (
    COMPLETIONS,
    COSTS,
    DAY,
    USAGE_NUMBERS,
    FakeUsage,
    bucket_of_cursor,
    day_start,
)
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.usage_expected import (
    assert_every_day_served_once,
    assert_groups,
    cost_contributions,
    usage_contributions,
)

OCTOBER = (date(2026, 10, 1), date(2026, 11, 1))


def test_a_window_s_query_asks_for_its_daily_buckets_on_one_page_grouped_as_asked() -> None:
    assert window_query(date(2026, 10, 1), date(2026, 11, 1), ["api_key_name", "line_item"]) == [
        ("start_time", str(day_start(date(2026, 10, 1)))), ("end_time", str(day_start(date(2026, 11, 1)))),
        ("bucket_width", "1d"), ("limit", "31"), ("group_by", "api_key_name"), ("group_by", "line_item")]


def test_costs_walks_every_page_of_the_month_once(upstream: FakeUpstream, usage: FakeUsage) -> None:
    collect(Fetcher(upstream.url, TOKEN), "costs", *OCTOBER, ["api_key_name"])
    served = usage.served_for(COSTS)
    paged = [s for s in served if s.page is not None]
    assert len(paged) >= 2, f"31 days in pages of at most {usage.page_size} buckets: {len(served)} requests"
    issued = {s.next_page for s in served if s.next_page}
    # The cursors came back exactly as issued ("+", "/" and "=" survived the URL).
    assert {s.page for s in paged} <= issued
    assert all(bucket_of_cursor(s.page) is not None for s in paged)
    # Every page that said has_more was followed, and the walk ended on has_more false.
    assert {s.next_page for s in served if s.has_more} == {s.page for s in paged}
    assert any(not s.has_more for s in served)
    assert_every_day_served_once(usage, COSTS, *OCTOBER)


def test_costs_range_over_180_days_is_split_into_windows_of_at_most_180_days(
        upstream: FakeUpstream, install_usage: Callable[..., FakeUsage]) -> None:
    since, until = date(2026, 3, 1), date(2026, 10, 1)  # 214 days
    usage = install_usage(since=since, until=until, page_size=31)
    report = collect(Fetcher(upstream.url, TOKEN), "costs", since, until, ["api_key_name"])
    windows = sorted(usage.windows(COSTS))
    assert len(windows) >= 2, windows
    assert all(end - start <= 180 * DAY for start, end in windows), windows
    assert_every_day_served_once(usage, COSTS, since, until)
    totals = [{"api_key_name": group[0], **values} for group, values in report.totals()]
    assert_groups(totals, ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]), what="totals")


def test_usage_range_of_62_days_is_split_into_windows_of_at_most_31_days(
        upstream: FakeUpstream, install_usage: Callable[..., FakeUsage]) -> None:
    since, until = date(2026, 9, 1), date(2026, 11, 2)  # 62 days
    usage = install_usage(since=since, until=until)
    report = collect(Fetcher(upstream.url, TOKEN), "usage/completions", since, until, ["api_key_name"])
    windows = sorted(usage.windows(COMPLETIONS))
    assert len({start for start, _ in windows}) >= 2, windows
    assert all(end - start <= 31 * DAY for start, end in windows), windows
    assert windows[0][0] == day_start(since) and windows[-1][1] == day_start(until), windows
    assert all(s.limit is None or s.limit <= 31 for s in usage.served_for(COMPLETIONS))
    assert_every_day_served_once(usage, COMPLETIONS, since, until)
    totals = [{"api_key_name": group[0], **values} for group, values in report.totals()]
    assert_groups(totals, ["api_key_name"], USAGE_NUMBERS, usage_contributions(usage, ["api_key_name"]),
                  what="totals")


def test_each_bucket_s_rows_count_on_its_start_day_and_what_is_not_a_row_is_skipped(
        upstream: FakeUpstream) -> None:
    day = day_start(date(2026, 10, 2))
    row = {"object": "organization.costs.result", "amount": {"value": 1.5, "currency": "usd"},
           "api_key_id": "key_a", "api_key_name": "a"}
    upstream.on(COSTS, reply(body={"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": day, "end_time": day + DAY, "results": [row, None, "row", 3, row]},
        {"object": "bucket", "start_time": day + DAY, "end_time": day + 2 * DAY, "results": None},
        {"object": "bucket", "start_time": day + 2 * DAY, "end_time": day + 3 * DAY}]}))
    report = collect(Fetcher(upstream.url, TOKEN), "costs", date(2026, 10, 2), date(2026, 10, 3), ["api_key_name"])
    assert report.sums() == {("2026-10-02", ("a",)): {"cost": 3}}


class Watching(Progress):
    """Notes whether the cycle collector runs as each page comes."""

    def __init__(self) -> None:
        super().__init__()
        self.collecting: list[bool] = []

    def fetched(self, rows: int) -> None:
        self.collecting.append(gc.isenabled())
        super().fetched(rows)


def test_the_cycle_collector_is_paused_while_rows_are_added_and_runs_again_after(
        upstream: FakeUpstream, usage: FakeUsage, hangs_up: str) -> None:
    watching = Watching()
    collect(Fetcher(upstream.url, TOKEN, progress=watching), "costs", *OCTOBER, ["api_key_name"])
    assert watching.collecting and not any(watching.collecting) and gc.isenabled()
    with pytest.raises(ReportError):
        collect(Fetcher(hangs_up, TOKEN), "costs", *OCTOBER, ["api_key_name"])
    assert gc.isenabled(), "and after a failure too"
