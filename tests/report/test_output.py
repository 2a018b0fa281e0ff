"""A Report as a table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from orgproxy.report.aggregate import Report
from orgproxy.report.output import as_csv, as_json, as_table


def costs() -> Report:
    """Two days, a line item with a comma, a group with no line item, a non-ASCII name."""
    report = Report("costs", date(2026, 10, 1), date(2026, 11, 1), ["api_key_name", "line_item"])
    report.days = {("2026-10-02", ("checkout", "gpt-4o, input")): {"cost": 1234.5678},
                   ("2026-10-01", ("checkout", "gpt-4o, input")): {"cost": 0.1},
                   ("2026-10-01", ("Zürich analytics", None)): {"cost": 3.0}}
    return report


def usage() -> Report:
    """A measure only one group has."""
    report = Report("usage/completions", date(2026, 10, 1), date(2026, 10, 3), ["model"])
    report.days = {("2026-10-01", ("gpt-4o",)): {"input_tokens": 1234567, "output_tokens": 89},
                   ("2026-10-02", ("o3",)): {"input_tokens": 5, "output_tokens": 6, "num_model_requests": 2}}
    return report


# Table.

def test_costs_table_is_totals_per_group_in_dollars_and_cents_largest_first_then_a_total() -> None:
    assert as_table(costs()) == (
        "costs from 2026-10-01 to 2026-11-01 (exclusive), by api_key_name, line_item\n"
        "\n"
        "api_key_name      line_item           cost\n"
        "----------------  -------------  ---------\n"
        "checkout          gpt-4o, input  $1,234.67\n"
        "Zürich analytics  (none)             $3.00\n"
        "----------------  -------------  ---------\n"
        "TOTAL                            $1,237.67\n")


def test_usage_table_counts_with_thousands_separators_and_zero_for_a_missing_measure() -> None:
    assert as_table(usage()) == (
        "usage/completions from 2026-10-01 to 2026-10-03 (exclusive), by model\n"
        "\n"
        "model   input_tokens  output_tokens  num_model_requests\n"
        "------  ------------  -------------  ------------------\n"
        "gpt-4o     1,234,567             89                   0\n"
        "o3                 5              6                   2\n"
        "------  ------------  -------------  ------------------\n"
        "TOTAL      1,234,572             95                   2\n")


def test_a_costs_table_with_no_rows_still_shows_a_zero_total() -> None:
    empty = Report("costs", date(2026, 10, 1), date(2026, 11, 1), ["api_key_name"])
    assert as_table(empty).splitlines()[-1] == "TOTAL         $0.00"


# CSV.

def test_csv_is_one_row_per_day_and_group_by_day_with_plain_numbers() -> None:
    text = as_csv(costs())
    assert text == ("date,api_key_name,line_item,cost\n"
                    "2026-10-01,Zürich analytics,,3.0\n"
                    '2026-10-01,checkout,"gpt-4o, input",0.1\n'
                    '2026-10-02,checkout,"gpt-4o, input",1234.5678\n')
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[2] == ["2026-10-01", "checkout", "gpt-4o, input", "0.1"], "a comma in a value comes back whole"


def test_csv_keeps_every_digit_of_a_float() -> None:
    report = Report("costs", date(2026, 10, 1), date(2026, 10, 2), ["api_key_name"])
    report.days = {("2026-10-01", ("a",)): {"cost": 0.1 + 0.2}}
    assert float(as_csv(report).splitlines()[1].split(",")[-1]) == 0.1 + 0.2


def test_usage_csv_has_a_column_per_measure_and_integers_as_integers() -> None:
    assert as_csv(usage()) == ("date,model,input_tokens,output_tokens,num_model_requests\n"
                               "2026-10-01,gpt-4o,1234567,89,0\n"
                               "2026-10-02,o3,5,6,2\n")


# JSON.

def test_json_has_the_header_the_daily_rows_and_the_totals_largest_first() -> None:
    text = as_json(costs())
    assert "Zürich analytics" in text, "names are written as they are, not escaped"
    assert json.loads(text) == {
        "kind": "costs", "since": "2026-10-01", "until": "2026-11-01", "by": ["api_key_name", "line_item"],
        "rows": [{"date": "2026-10-01", "api_key_name": "Zürich analytics", "line_item": None, "cost": 3.0},
                 {"date": "2026-10-01", "api_key_name": "checkout", "line_item": "gpt-4o, input", "cost": 0.1},
                 {"date": "2026-10-02", "api_key_name": "checkout", "line_item": "gpt-4o, input",
                  "cost": 1234.5678}],
        "totals": [{"api_key_name": "checkout", "line_item": "gpt-4o, input", "cost": 1234.5678 + 0.1},
                   {"api_key_name": "Zürich analytics", "line_item": None, "cost": 3.0}]}


def test_usage_json_keeps_integers_integers() -> None:
    document = json.loads(as_json(usage()))
    assert document["totals"][0] == {"model": "gpt-4o", "input_tokens": 1234567, "output_tokens": 89}
    numbers = [entry[k] for entry in document["rows"] for k in ("input_tokens", "output_tokens")]
    assert numbers == [1234567, 89, 5, 6] and all(type(n) is int for n in numbers)
