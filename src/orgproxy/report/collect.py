"""What to ask orgproxy for a range (one call per window the API allows, daily buckets,
grouped as the user asked), and every row of the answers added into a Report."""

from __future__ import annotations

from datetime import UTC, date, datetime

from orgproxy.report.aggregate import Report
from orgproxy.report.dates import midnight, windows
from orgproxy.report.fetch import Fetcher

# The most 1-day buckets one call may cover (the API's limit on `limit`).
MAX_DAYS = {"costs": 180, "usage": 31}


def window_query(start: date, end: date, by: list[str]) -> list[tuple[str, str]]:
    """One call's query: the window's daily buckets, all on one page if the API lets it."""
    query = [("start_time", str(midnight(start))), ("end_time", str(midnight(end))),
             ("bucket_width", "1d"), ("limit", str((end - start).days))]
    return query + [("group_by", field_) for field_ in by]


def collect(fetcher: Fetcher, kind: str, since: date, until: date, by: list[str]) -> Report:
    report = Report(kind, since, until, by)
    path = "/v1/organization/" + kind
    max_days = MAX_DAYS["costs" if kind == "costs" else "usage"]
    for start, end in windows(since, until, max_days):
        for bucket in fetcher.buckets(path, window_query(start, end, by)):
            day = datetime.fromtimestamp(int(bucket.get("start_time", 0)), UTC).date().isoformat()
            for row in bucket.get("results") or []:
                if isinstance(row, dict):
                    report.add(day, row)
    return report
