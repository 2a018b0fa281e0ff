"""Rows added up per day and group, and totals per group."""

from __future__ import annotations

from datetime import date
from typing import Any

from orgproxy.report.aggregate import Report, group_value

MONTH = (date(2026, 10, 1), date(2026, 11, 1))


def costs(by: list[str]) -> Report:
    return Report("costs", *MONTH, by)


def usage(by: list[str]) -> Report:
    return Report("usage/completions", *MONTH, by)


def cost_row(value: Any, **fields: Any) -> dict[str, Any]:
    return {"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"},
            "line_item": None, "project_id": None, "api_key_id": None, **fields}


def test_costs_add_amount_values_per_day_and_group() -> None:
    report = costs(["api_key_name"])
    report.add("2026-10-01", cost_row(1.25, api_key_id="key_a", api_key_name="checkout"))
    report.add("2026-10-01", cost_row(0.5, api_key_id="key_b", api_key_name="checkout"))
    report.add("2026-10-01", cost_row(2.0, api_key_id="key_c", api_key_name="mobile"))
    report.add("2026-10-02", cost_row(4.0, api_key_id="key_a", api_key_name="checkout"))
    assert report.days == {("2026-10-01", ("checkout",)): {"cost": 1.75},
                           ("2026-10-01", ("mobile",)): {"cost": 2.0},
                           ("2026-10-02", ("checkout",)): {"cost": 4.0}}


def test_a_cost_row_without_an_amount_or_value_counts_as_zero_dollars() -> None:
    report = costs(["api_key_name"])
    report.add("2026-10-01", cost_row(None, api_key_name="a"))
    report.add("2026-10-01", {"api_key_name": "a", "amount": None})
    report.add("2026-10-01", {"api_key_name": "a"})
    assert report.days == {("2026-10-01", ("a",)): {"cost": 0.0}}


def test_a_cost_value_as_a_string_is_read_as_dollars() -> None:
    report = costs(["api_key_name"])
    report.add("2026-10-01", cost_row("0.125", api_key_name="a"))
    assert report.days[("2026-10-01", ("a",))] == {"cost": 0.125}


def test_usage_adds_every_number_and_only_numbers_ints_staying_ints() -> None:
    report = usage(["api_key_name", "model"])
    row = {"object": "organization.usage.completions.result", "input_tokens": 1000, "output_tokens": 500,
           "num_model_requests": 5, "api_key_id": "key_a", "api_key_name": "checkout", "model": "gpt-4o",
           "batch": True, "service_tier": None, "project_id": None}
    report.add("2026-10-01", row)
    report.add("2026-10-01", {**row, "input_tokens": 1, "batch": False})
    values = report.days[("2026-10-01", ("checkout", "gpt-4o"))]
    assert values == {"input_tokens": 1001, "output_tokens": 1000, "num_model_requests": 10}
    assert all(type(value) is int for value in values.values()), "batch is a bool, not a number to add"


def test_measures_are_every_measure_seen_in_first_seen_order() -> None:
    report = usage(["model"])
    report.add("2026-10-01", {"model": "a", "input_tokens": 1})
    report.add("2026-10-02", {"model": "b", "output_tokens": 2, "input_tokens": 3})
    report.add("2026-10-03", {"model": "a", "num_model_requests": 1})
    assert report.measures == ["input_tokens", "output_tokens", "num_model_requests"]


def test_costs_totals_sum_each_group_over_the_days_largest_cost_first() -> None:
    report = costs(["api_key_name", "line_item"])
    for day, name, item, value in [("2026-10-01", "small", "x", 1.0), ("2026-10-02", "small", "x", 1.5),
                                   ("2026-10-01", "big", "x", 3.0), ("2026-10-03", "big", "x", 0.25),
                                   ("2026-10-02", "big", "y", 2.75)]:
        report.add(day, cost_row(value, api_key_name=name, line_item=item))
    assert report.totals() == [(("big", "x"), {"cost": 3.25}), (("big", "y"), {"cost": 2.75}),
                               (("small", "x"), {"cost": 2.5})]


def test_usage_totals_are_ranked_by_input_plus_output_tokens() -> None:
    report = usage(["model"])
    report.add("2026-10-01", {"model": "many-requests", "input_tokens": 10, "output_tokens": 10,
                              "num_model_requests": 1000})
    report.add("2026-10-01", {"model": "output-heavy", "input_tokens": 5, "output_tokens": 100})
    report.add("2026-10-02", {"model": "input-heavy", "input_tokens": 50, "output_tokens": 0})
    report.add("2026-10-03", {"model": "input-heavy", "input_tokens": 60})
    assert [group for group, _ in report.totals()] == [("input-heavy",), ("output-heavy",), ("many-requests",)]
    assert dict(report.totals())[("input-heavy",)] == {"input_tokens": 110, "output_tokens": 0}


def test_a_name_nobody_knew_is_told_apart_by_its_id() -> None:
    row = {"api_key_id": "key_0badc0ffee000042", "api_key_name": "unknown",
           "project_id": "proj_x", "project_name": "unknown", "user_id": None, "user_name": "unknown"}
    assert group_value(row, "api_key_name") == "unknown (key_0badc0ffee000042)"
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
    report.add("2026-10-01", cost_row(1.0, api_key_id="key_1", api_key_name="unknown"))
    report.add("2026-10-01", cost_row(2.0, api_key_id="key_2", api_key_name="unknown"))
    assert report.totals() == [(("unknown (key_2)",), {"cost": 2.0}), (("unknown (key_1)",), {"cost": 1.0})]
