"""The calls a range of days is cut into, sized by the rows they bring back.

A page of OpenAI's usage and costs (and of Anthropic's legacy reports) holds every row of
its days: a month of 5,000 keys on one page is 155,000 rows, held at once by whoever reads
it. So the range is asked for a few days at a time: the first call covers one day, and each
next one as many days as keep the call near ``ROWS_A_CALL`` rows at the busiest rate seen
so far, at most twice the days of the one before (a quiet first day says little), and never
more than the API allows in one call. An organization of a few keys is asked for a month in
a handful of calls; one of thousands, a day or two at a time. Anthropic's analytics API
pages by rows: its calls are as long as it allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

ROWS_A_CALL = 10_000


class Calls:
    """[since, until) as (start, end) windows, each sized after the rows the last ones
    brought (``brought``); ``days_done`` and ``days`` say how far it has got."""

    def __init__(self, since: date, until: date, max_days: int, by_rows: bool = True) -> None:
        self.since, self.until, self.max_days = since, until, max_days
        self.by_rows = by_rows
        self.busiest = 0.0  # rows a day, the most seen
        self.last_days = 0
        self.days_done = 0

    @property
    def days(self) -> int:
        return (self.until - self.since).days

    def next_days(self) -> int:
        if not self.by_rows:
            return self.max_days
        if not self.last_days:
            return 1
        fitting = int(ROWS_A_CALL // self.busiest) if self.busiest else self.max_days
        return max(1, min(self.max_days, 2 * self.last_days, fitting))

    def __iter__(self) -> Iterator[tuple[date, date]]:
        start = self.since
        while start < self.until:
            end = min(self.until, start + timedelta(days=self.next_days()))
            yield start, end
            self.days_done += (end - start).days
            start = end

    def brought(self, start: date, end: date, rows: int) -> None:
        """The call for [start, end) brought ``rows`` rows."""
        days = (end - start).days
        self.last_days = days
        self.busiest = max(self.busiest, rows / days)
