"""What to ask orgproxy for a range (one call per window the API allows, daily buckets,
grouped as the user asked), and every row of the answers added into a Report."""

from __future__ import annotations

from datetime import date

from orgproxy.report.aggregate import Report
from orgproxy.report.apis import OPENAI_REPORTS, Reports
from orgproxy.report.dates import windows
from orgproxy.report.fetch import Fetcher


def window_query(start: date, end: date, by: list[str], api: Reports = OPENAI_REPORTS) -> list[tuple[str, str]]:
    """One call's query: the window's daily buckets, all on one page if the API lets it."""
    return api.window_query(start, end, by)


def collect(fetcher: Fetcher, kind: str, since: date, until: date, by: list[str],
            api: Reports = OPENAI_REPORTS) -> Report:
    report = Report(kind, since, until, by, api=api)
    path = api.path(kind)
    for start, end in windows(since, until, api.max_days(kind)):
        for bucket in fetcher.buckets(path, window_query(start, end, by, api)):
            day = api.day(bucket)
            for row in bucket.get("results") or []:
                if isinstance(row, dict):
                    report.add(day, row)
    return report
