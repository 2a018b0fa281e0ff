"""Which UTC days one refresh of the cost series asks for. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = 86400


@dataclass(frozen=True)
class Window:
    """From the first of the month (or yesterday, on the 1st) to the end of today, in UTC
    days (POSIX seconds)."""

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
        return cls(min(month_start, last_day_start), today_start + DAY, month_start, last_day_start)

    @property
    def days(self) -> int:
        return (self.end_time - self.start_time) // DAY

    def counts_in_month(self, bucket_start: int) -> bool:
        return bucket_start >= self.month_start

    def is_last_day(self, bucket_start: int) -> bool:
        return bucket_start == self.last_day_start


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
