"""Days as the user writes them, and ranges cut into the windows one call may cover."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from orgproxy.report.dates import midnight, parse_day, windows
from orgproxy.report.errors import ReportError

TODAY = date(2026, 11, 15)


def test_an_iso_day_is_that_day() -> None:
    assert parse_day("2026-10-01", TODAY) == date(2026, 10, 1)


def test_n_d_is_n_days_before_today_and_0d_is_today() -> None:
    assert parse_day("30d", TODAY) == TODAY - timedelta(days=30)
    assert parse_day("1d", TODAY) == date(2026, 11, 14)
    assert parse_day("0d", TODAY) == TODAY


def test_surrounding_spaces_are_ignored() -> None:
    assert parse_day(" 2026-10-01\n", TODAY) == date(2026, 10, 1)
    assert parse_day(" 3d ", TODAY) == date(2026, 11, 12)


@pytest.mark.parametrize("text", ["yesterdayish", "2026-13-01", "d", "-3d", "3 d", "2026/10/01", ""])
def test_anything_else_is_a_report_error_naming_the_text(text: str) -> None:
    with pytest.raises(ReportError) as raised:
        parse_day(text, TODAY)
    assert repr(text.strip()) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_midnight_is_the_start_of_the_utc_day() -> None:
    assert midnight(date(2024, 11, 1)) == 1730419200
    assert datetime.fromtimestamp(midnight(date(2026, 10, 1)), UTC) == datetime(2026, 10, 1, tzinfo=UTC)


@pytest.mark.parametrize(("days", "max_days"), [(1, 31), (31, 31), (32, 31), (62, 31), (214, 180), (180, 180)])
def test_windows_cover_the_range_end_to_end_each_at_most_max_days(days: int, max_days: int) -> None:
    since = date(2026, 3, 1)
    until = since + timedelta(days=days)
    cut = list(windows(since, until, max_days))
    assert cut[0][0] == since and cut[-1][1] == until
    assert all(end == next_start for (_, end), (next_start, _) in pairwise(cut)), cut
    assert all(0 < (end - start).days <= max_days for start, end in cut), cut
    assert len(cut) == -(-days // max_days), "no more windows than needed"


def test_an_empty_range_has_no_windows() -> None:
    assert list(windows(date(2026, 10, 1), date(2026, 10, 1), 31)) == []
