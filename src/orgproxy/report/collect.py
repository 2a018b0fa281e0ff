"""What to ask orgproxy for a range (one call per window the API allows, daily buckets,
grouped as the user asked), and every row of the answers added into a Report, a page at
a time: the report holds its sums, never the pages."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from orgproxy.report.aggregate import PROVIDER, Report
from orgproxy.report.apis import OPENAI_REPORTS, Reports
from orgproxy.report.calls import Calls
from orgproxy.report.fetch import Fetcher
from orgproxy.report.groups import asked_of


def window_query(start: date, end: date, by: list[str], api: Reports = OPENAI_REPORTS) -> list[tuple[str, str]]:
    """One call's query: the window's daily buckets, all on one page if the API lets it."""
    return api.window_query(start, end, by)


@contextmanager
def cycles_not_collected() -> Iterator[None]:
    """Python's cycle collector paused: pages and sums hold no cycles, and the collector,
    run again and again over hundreds of thousands of live objects, made a month of
    thousands of keys take more than twice the time of half as many."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Asked:
    """One provider's part of a report: its kind of report, through its fetcher."""

    kind: str
    fetcher: Fetcher

    @property
    def api(self) -> Reports:
        return self.fetcher.api


def collect(fetcher: Fetcher, kind: str, since: date, until: date, by: list[str],
            api: Reports = OPENAI_REPORTS) -> Report:
    """One provider's report."""
    fetcher.api = api
    return collect_all([Asked(kind, fetcher)], kind, since, until, by)


def collect_all(asked: Sequence[Asked], kind: str, since: date, until: date, by: list[str],
                daily: bool = True) -> Report:
    """Every provider's rows in one report; with several, ``provider`` leads each group;
    without ``daily``, only the totals are kept."""
    several = len(asked) > 1
    report = Report(kind, since, until, [PROVIDER, *by] if several else by,
                    apis={part.api.name: part.api for part in asked}, daily=daily)
    with cycles_not_collected():
        for part in asked:
            add_rows(report, part, since, until, by, several)
    return report


def add_rows(report: Report, part: Asked, since: date, until: date, by: list[str], several: bool) -> None:
    """One provider's rows into ``report``, call after call, page after page."""
    api, progress = part.api, part.fetcher.progress
    calls = Calls(since, until, api.max_days(part.kind), api.PAGES_BY_DAYS)
    for start, end in calls:
        progress.covering(api.name, calls.days_done, calls.days)
        rows = 0
        query = api.window_query(start, end, asked_of(part.kind, api.endpoints, by))
        for item in part.fetcher.buckets(api.path(part.kind), query):
            for day, row, measures in api.entries(part.kind, item):
                report.add(day, row, measures, api.name if several else None)
                rows += 1
        calls.brought(start, end, rows)
    progress.covering(api.name, calls.days_done, calls.days)
