"""Counts in words: one, and everything else."""

from __future__ import annotations

import pytest

from orgproxy.plural import counted


@pytest.mark.parametrize(("number", "expected"), [
    (1, "1 request"), (0, "0 requests"), (2, "2 requests"), (1.0, "1 request"), (0.5, "0.5 requests"),
    (1234567, "1234567 requests"), (2.5, "2.5 requests"),
])
def test_only_exactly_one_is_singular(number: float, expected: str) -> None:
    assert counted(number, "request") == expected


def test_an_irregular_plural_is_given() -> None:
    assert (counted(1, "entry", "entries"), counted(3, "entry", "entries")) == ("1 entry", "3 entries")
