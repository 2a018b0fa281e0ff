"""Days as the user writes them, and when a day starts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from orgproxy.report.dates import midnight, parse_day
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
