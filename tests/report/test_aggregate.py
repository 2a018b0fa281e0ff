"""Rows added up per day and group, exactly, with the ids behind each name; totals per group."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orgproxy.report.aggregate import PROVIDER, Report, UnknownName, group_value, ids_of
from orgproxy.report.apis import ANTHROPIC_ANALYTICS, OPENAI_REPORTS
from tests.support.properties import property_settings

MONTH = (date(2026, 10, 1), date(2026, 11, 1))


def costs(by: list[str]) -> Report:
    return Report("costs", *MONTH, by)


def usage(by: list[str]) -> Report:
    return Report("usage/completions", *MONTH, by)


def cost_row(value: Any, **fields: Any) -> dict[str, Any]:
    return {"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"},
            "line_item": None, "project_id": None, "api_key_id": None, **fields}


def add_cost(report: Report, day: str, value: Any, **fields: Any) -> None:
    row = cost_row(value, **fields)
    report.add(day, row, {"cost": OPENAI_REPORTS.cost(row)})


def test_costs_add_amount_values_per_day_and_group_exactly() -> None:
    report = costs(["api_key_name"])
    add_cost(report, "2026-10-01", Decimal("0.1"), api_key_id="key_a", api_key_name="checkout")
    add_cost(report, "2026-10-01", Decimal("0.2"), api_key_id="key_b", api_key_name="checkout")
    add_cost(report, "2026-10-01", 2, api_key_id="key_c", api_key_name="mobile")
    add_cost(report, "2026-10-02", Decimal("4.0"), api_key_id="key_a", api_key_name="checkout")
    assert report.sums() == {("2026-10-01", ("checkout",)): {"cost": Decimal("0.3")},
                           ("2026-10-01", ("mobile",)): {"cost": 2},
                           ("2026-10-02", ("checkout",)): {"cost": Decimal("4.0")}}
    assert str(report.sums()[("2026-10-01", ("checkout",))]["cost"]) == "0.3", "not 0.30000000000000004"


@given(st.lists(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=12),
                min_size=1, max_size=40))
@property_settings(100)
def test_any_amounts_sum_to_their_exact_decimal_sum(amounts: list[Decimal]) -> None:
    report = costs(["api_key_name"])
    for amount in amounts:
        add_cost(report, "2026-10-01", amount, api_key_id="key_a", api_key_name="a")
    exact = sum(amounts, Decimal(0))
    (values,) = report.sums().values()
    assert values["cost"] == exact and dict(report.totals())[("a",)]["cost"] == exact


def test_a_cost_row_without_an_amount_or_value_counts_as_zero_dollars() -> None:
    report = costs(["api_key_name"])
    add_cost(report, "2026-10-01", None, api_key_name="a")
    for row in ({"api_key_name": "a", "amount": None}, {"api_key_name": "a"}):
        report.add("2026-10-01", row, {"cost": OPENAI_REPORTS.cost(row)})
    assert report.sums() == {("2026-10-01", ("a",)): {"cost": Decimal(0)}}


def test_a_cost_value_as_a_string_is_read_as_dollars() -> None:
    report = costs(["api_key_name"])
    add_cost(report, "2026-10-01", "0.125", api_key_name="a")
    assert report.sums()[("2026-10-01", ("a",))] == {"cost": Decimal("0.125")}


def test_usage_adds_every_number_and_only_numbers_ints_staying_ints() -> None:
    report = usage(["api_key_name", "model"])
    row = {"object": "organization.usage.completions.result", "input_tokens": 1000, "output_tokens": 500,
           "num_model_requests": 5, "api_key_id": "key_a", "api_key_name": "checkout", "model": "gpt-4o",
           "batch": True, "service_tier": None, "project_id": None}
    for one in (row, {**row, "input_tokens": 1, "batch": False}):
        ((day, fields, measures),) = OPENAI_REPORTS.entries("usage/completions", {"start_time": 1790812800,
                                                                                   "results": [one]})
        report.add(day, fields, measures)
    values = report.sums()[("2026-10-01", ("checkout", "gpt-4o"))]
    assert values == {"input_tokens": 1001, "output_tokens": 1000, "num_model_requests": 10}
    assert all(type(value) is int for value in values.values()), "batch is a bool, not a number to add"


def test_measures_are_every_measure_seen_in_first_seen_order() -> None:
    report = usage(["model"])
    report.add("2026-10-01", {"model": "a"}, {"input_tokens": 1})
    report.add("2026-10-02", {"model": "b"}, {"output_tokens": 2, "input_tokens": 3})
    report.add("2026-10-03", {"model": "a"}, {"num_model_requests": 1})
    assert report.measures == ["input_tokens", "output_tokens", "num_model_requests"]


def test_costs_totals_sum_each_group_over_the_days_largest_cost_first() -> None:
    report = costs(["api_key_name", "line_item"])
    for day, name, item, value in [("2026-10-01", "small", "x", "1.0"), ("2026-10-02", "small", "x", "1.5"),
                                   ("2026-10-01", "big", "x", "3.0"), ("2026-10-03", "big", "x", "0.25"),
                                   ("2026-10-02", "big", "y", "2.75")]:
        add_cost(report, day, Decimal(value), api_key_name=name, line_item=item)
    assert report.totals() == [(("big", "x"), {"cost": Decimal("3.25")}), (("big", "y"), {"cost": Decimal("2.75")}),
                               (("small", "x"), {"cost": Decimal("2.5")})]


def test_usage_totals_are_ranked_by_input_plus_output_tokens() -> None:
    report = usage(["model"])
    report.add("2026-10-01", {"model": "many-requests"}, {"input_tokens": 10, "output_tokens": 10,
                                                          "num_model_requests": 1000})
    report.add("2026-10-01", {"model": "output-heavy"}, {"input_tokens": 5, "output_tokens": 100})
    report.add("2026-10-02", {"model": "input-heavy"}, {"input_tokens": 50, "output_tokens": 0})
    report.add("2026-10-03", {"model": "input-heavy"}, {"input_tokens": 60})
    assert [group for group, _ in report.totals()] == [("input-heavy",), ("output-heavy",), ("many-requests",)]
    assert dict(report.totals())[("input-heavy",)] == {"input_tokens": 110, "output_tokens": 0}


def test_with_several_providers_each_group_is_ranked_by_its_own_provider_s_tokens() -> None:
    report = Report("usage", *MONTH, [PROVIDER, "api_key_name"],
                    apis={"openai": OPENAI_REPORTS, "anthropic": ANTHROPIC_ANALYTICS})
    report.add("2026-10-01", {"api_key_name": "a"}, {"input_tokens": 10, "output_tokens": 10}, "openai")
    # Anthropic's input is uncached + cache reads + cache writes: 30 in all, not 0.
    report.add("2026-10-01", {"api_key_name": "b"}, {"uncached_input_tokens": 10, "cache_read_input_tokens": 10,
                                                     "cache_creation.ephemeral_5m_input_tokens": 10,
                                                     "output_tokens": 1}, "anthropic")
    assert [group for group, _ in report.totals()] == [("anthropic", "b"), ("openai", "a")]


def test_a_name_nobody_knew_is_told_apart_by_its_id() -> None:
    row = {"api_key_id": "key_0badc0ffee000042", "api_key_name": "unknown",
           "project_id": "proj_x", "project_name": "unknown", "user_id": None, "user_name": "unknown"}
    key = group_value(row, "api_key_name")
    assert isinstance(key, UnknownName) and (key, key.id) == ("unknown (key_0badc0ffee000042)", "key_0badc0ffee000042")
    assert group_value(row, "project_name") == "unknown (proj_x)"
    assert group_value(row, "user_name") == "unknown", "no id to tell it apart by"


def test_other_fields_and_known_names_are_taken_as_they_are() -> None:
    row = {"api_key_id": "key_a", "api_key_name": "checkout", "model": "unknown", "line_item": None}
    assert group_value(row, "api_key_name") == "checkout"
    assert group_value(row, "model") == "unknown"
    assert group_value(row, "line_item") is None
    assert group_value(row, "project_id") is None


def test_unknown_keys_stay_apart_in_the_report() -> None:
    report = costs(["api_key_name"])
    add_cost(report, "2026-10-01", 1, api_key_id="key_1", api_key_name="unknown")
    add_cost(report, "2026-10-01", 2, api_key_id="key_2", api_key_name="unknown")
    assert report.totals() == [(("unknown (key_2)",), {"cost": 2}), (("unknown (key_1)",), {"cost": 1})]


def test_the_ids_behind_each_name_are_kept_per_day_and_group() -> None:
    report = costs(["api_key_name", "model"])
    assert report.id_columns == {"api_key_name": "api_key_id"}
    report.add("2026-10-01", {"api_key_id": "key_a", "api_key_name": "checkout"}, {"cost": 1})
    # orgproxy merged two keys of one name into a row: the ids come in api_key_ids.
    report.add("2026-10-02", {"api_key_id": None, "api_key_ids": ["key_a", "key_b"], "api_key_name": "checkout"},
               {"cost": 1})
    report.add("2026-10-02", {"api_key_id": None, "api_key_name": "Console"}, {"cost": 1})
    ids = {(day, group): found for day, group, _, found in report.rows()}
    assert ids[("2026-10-01", ("checkout", None))] == {"api_key_id": ("key_a",)}
    assert ids[("2026-10-02", ("checkout", None))] == {"api_key_id": ("key_a", "key_b")}
    assert report.group_ids()[("checkout", None)] == {"api_key_id": ("key_a", "key_b")}
    assert report.group_ids()[("Console", None)] == {"api_key_id": ()}
    report.add("2026-10-01", {"api_key_id": "key_c", "api_key_name": "checkout"}, {"cost": 1})
    assert next(found for day, group, _, found in report.rows() if day == "2026-10-01" and group[0] == "checkout") == {
        "api_key_id": ("key_a", "key_c")}


def test_without_daily_sums_only_the_totals_are_kept() -> None:
    report = Report("costs", *MONTH, ["api_key_name"], daily=False)
    for day in ("2026-10-01", "2026-10-02"):
        report.add(day, {"api_key_id": "key_a", "api_key_name": "a"}, {"cost": Decimal("1.5")})
    assert report.sums() == {("", ("a",)): {"cost": Decimal("3.0")}}
    assert report.totals() == [(("a",), {"cost": Decimal("3.0")})]
    assert costs(["api_key_name", "api_key_id"]).id_columns == {}, "the id asked for itself: no second column"
    assert ids_of({"workspace_id": "wrkspc_1"}, "workspace_id") == ("wrkspc_1",)
