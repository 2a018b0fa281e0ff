"""Days as the user gives them, and the unix time a day starts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from orgproxy.report.errors import ReportError


def parse_day(text: str, today: date) -> date:
    """``2026-10-01`` or ``30d`` (30 days before today)."""
    text = text.strip()
    if text.endswith("d") and text[:-1].isdigit():
        return today - timedelta(days=int(text[:-1]))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{text!r} is not a day (YYYY-MM-DD) or a number of days back (30d)") from None


def midnight(day: date) -> int:
    """The unix time ``day`` starts, in UTC (the API's buckets are UTC days)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())

