"""Moments as the proxy shows them: ISO 8601 in UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(seconds: float | None, precise: bool = False) -> str | None:
    """POSIX seconds as ISO 8601 UTC (to the millisecond when ``precise``); None stays None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds" if precise else "seconds")
