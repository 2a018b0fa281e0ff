"""A range cut into calls: end to end, each within what the API allows, sized after the
rows a day brings (a few calls for a few keys, a day at a time for thousands)."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import pytest

from orgproxy.report.calls import ROWS_A_CALL, Calls

SINCE = date(2026, 3, 1)


def cut(days: int, max_days: int, rows_a_day: int, by_rows: bool = True) -> list[tuple[date, date]]:
    calls = Calls(SINCE, SINCE + timedelta(days=days), max_days, by_rows)
    made = []
    for start, end in calls:
        made.append((start, end))
        calls.brought(start, end, rows_a_day * (end - start).days)
    assert calls.days_done == calls.days == days
    return made


@pytest.mark.parametrize(("days", "max_days"), [(1, 31), (31, 31), (32, 31), (62, 31), (214, 180), (180, 180)])
@pytest.mark.parametrize("rows_a_day", [0, 3, 400, 5_000, 40_000])
def test_calls_cover_the_range_end_to_end_each_within_the_api_s_limit(days: int, max_days: int,
                                                                      rows_a_day: int) -> None:
    made = cut(days, max_days, rows_a_day)
    assert made[0][0] == SINCE and made[-1][1] == SINCE + timedelta(days=days)
    assert all(end == next_start for (_, end), (next_start, _) in pairwise(made)), made
    assert all(0 < (end - start).days <= max_days for start, end in made), made
    # After the first day, no call brings more than ROWS_A_CALL rows, unless one day does.
    assert all((end - start).days * rows_a_day <= max(ROWS_A_CALL, rows_a_day) for start, end in made[1:])


def test_a_few_keys_are_asked_in_a_few_calls_and_thousands_a_day_or_two_at_a_time() -> None:
    assert [(end - start).days for start, end in cut(180, 180, 20)] == [1, 2, 4, 8, 16, 32, 64, 53]
    assert {(end - start).days for start, end in cut(31, 31, 5_000)} == {1, 2}
    assert {(end - start).days for start, end in cut(31, 31, 20_000)} == {1}


def test_a_quiet_first_day_lets_the_calls_grow_only_by_doubling() -> None:
    calls = Calls(SINCE, SINCE + timedelta(days=31), 31)
    lengths = []
    for start, end in calls:
        lengths.append((end - start).days)
        calls.brought(start, end, 0 if start == SINCE else 9_000 * (end - start).days)
    assert lengths[:3] == [1, 2, 1]


def test_an_api_that_pages_by_rows_is_asked_for_as_long_a_window_as_it_allows() -> None:
    assert [(end - start).days for start, end in cut(62, 31, 5_000, by_rows=False)] == [31, 31]


def test_an_empty_range_has_no_calls() -> None:
    assert list(Calls(SINCE, SINCE, 31)) == []
