"""The cost figures on their own: bounded across providers, and as the state file holds them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orgproxy.costs.figures import CostFigures, ProviderCosts, Series, bounded


def series(provider: str, key: str, dollars: str, other: bool = False) -> Series:
    return Series(provider, None if other else key, None, Decimal(dollars), Decimal(dollars) / 10, other)


EVERY = [series("openai", "o5", "5"), series("openai", "o4", "4"), series("openai", "o1", "1"),
         series("anthropic", "a3", "3"), series("anthropic", "a2", "2")]


def test_the_bound_counts_both_providers_and_each_rolls_its_own_rest() -> None:
    kept = bounded(EVERY, 3)
    assert [(s.provider, s.api_key_id, s.month_to_date, s.other) for s in kept] == [
        ("openai", "o5", 5, False), ("openai", None, 5, True), ("anthropic", None, 5, True)]
    assert kept[1].last_day == Decimal("0.5")
    # Room for one roll-up: the rest is one provider's.
    no_o1 = [s for s in EVERY if s.api_key_id != "o1"]
    assert [(s.provider, s.api_key_id, s.month_to_date, s.other) for s in bounded(no_o1, 3)] == [
        ("openai", "o5", 5, False), ("openai", "o4", 4, False), ("anthropic", None, 5, True)]
    assert bounded(EVERY, 5) == sorted(EVERY, key=lambda s: -s.month_to_date)


def test_a_roll_up_already_made_stays_one_and_takes_more() -> None:
    rolled = [series("anthropic", "", "7", other=True), *EVERY[:2]]
    kept = bounded(rolled, 2)
    assert [(s.provider, s.api_key_id, s.month_to_date, s.other) for s in kept] == [
        ("openai", None, 9, True), ("anthropic", None, 7, True)]


def test_each_provider_has_its_roll_up_even_past_the_bound() -> None:
    assert [(s.provider, s.other) for s in bounded(EVERY, 1)] == [("openai", True), ("anthropic", True)]


def test_replacing_one_provider_keeps_the_others_and_bounds_them_together() -> None:
    figures = CostFigures().with_provider("openai", ProviderCosts(tuple(EVERY[:3]), 10.0, 1), 10)
    figures = figures.with_provider("anthropic", ProviderCosts(tuple(EVERY[3:]), 20.0, 0), 3)
    assert [(s.api_key_id, s.other) for s in figures.of("openai").series] == [("o5", False), (None, True)]
    assert [(s.api_key_id, s.other) for s in figures.of("anthropic").series] == [(None, True)]
    assert (figures.of("openai").refreshed_at, figures.of("openai").failures) == (10.0, 1)


def test_the_file_holds_exact_decimals_and_reads_back_the_same() -> None:
    exact = Series("anthropic", "apikey_1", None, Decimal("0.30000000000000000001"), Decimal("0.3"))
    figures = CostFigures().with_provider("anthropic", ProviderCosts((exact,), 5.0, 2), 10)
    assert CostFigures.from_json(figures.to_json()) == figures


@pytest.mark.parametrize("document", [
    b'{"version": 2, "providers": {"openai": {"refreshed_at": null, "failures": 0, "series": [[1, 2, 3]]}}}',
    b'{"version": 2, "providers": {"openai": {"refreshed_at": null, "failures": 0,'
    b' "series": [["k", null, "Infinity", "0", false]]}}}',
    b'{"version": 2, "providers": {"someone": {"refreshed_at": null, "failures": 0, "series": []}}}',
    b'{"version": 2, "providers": []}',
])
def test_anything_else_is_refused(document: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError, ArithmeticError)):
        CostFigures.from_json(document)
