"""Which UTC days one refresh of the cost series asks for: this month so far and the last
30 days (today's so far included), in daily buckets. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = 86400
DAILY_DAYS = 30  # the days of daily figures the dashboard charts: today and the 29 before


@dataclass(frozen=True)
class Window:
    """From the first of the month or the first of the last 30 days, whichever is earlier,
    to the end of today, in UTC days (POSIX seconds): 30 or 31 days."""

    start_time: int
    end_time: int
    month_start: int
    last_day_start: int  # the last complete UTC day: yesterday

    @classmethod
    def at(cls, now: float) -> Window:
        today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        month_start = int(today.replace(day=1).timestamp())
        last_day_start = int((today - timedelta(days=1)).timestamp())
        today_start = int(today.timestamp())
        daily_start = today_start - (DAILY_DAYS - 1) * DAY
        return cls(min(month_start, daily_start), today_start + DAY, month_start, last_day_start)

    @property
    def days(self) -> int:
        return (self.end_time - self.start_time) // DAY

    def counts_in_month(self, bucket_start: int) -> bool:
        return bucket_start >= self.month_start

    def is_last_day(self, bucket_start: int) -> bool:
        return bucket_start == self.last_day_start

    def day_of(self, bucket_start: int) -> int | None:
        """The UTC day (its start) a bucket's costs are kept under, None outside the window."""
        if not self.start_time <= bucket_start < self.end_time:
            return None
        return bucket_start - (bucket_start - self.start_time) % DAY


def rfc3339(seconds: int) -> str:
    """POSIX seconds as Anthropic writes times: ``2026-10-01T00:00:00Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def posix(text: object) -> int | None:
    """An RFC 3339 time as POSIX seconds; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp()) if moment.tzinfo is not None else None
