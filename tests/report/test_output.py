"""A Report as a table, CSV and JSON: exact amounts, the id columns, and a table that fits."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal

from orgproxy.report.aggregate import PROVIDER, Report
from orgproxy.report.apis import ANTHROPIC_ANALYTICS, OPENAI_REPORTS
from orgproxy.report.output import as_csv as write_csv
from orgproxy.report.output import as_json as write_json
from orgproxy.report.table import WIDTH, as_table


def as_csv(report: Report) -> str:
    out = io.StringIO()
    write_csv(report, out)
    return out.getvalue()


def as_json(report: Report) -> str:
    out = io.StringIO()
    write_json(report, out)
    return out.getvalue()


def costs() -> Report:
    """Two days, a line item with a comma, a group with no line item, a non-ASCII name,
    one name of two keys (on the second day), one unknown key."""
    report = Report("costs", date(2026, 10, 1), date(2026, 11, 1), ["api_key_name", "line_item"])
    for day, fields, cost in [
            ("2026-10-02", {"api_key_name": "checkout", "api_key_ids": ["key_a", "key_b"],
                            "line_item": "gpt-4o, input"}, "1234.5678"),
            ("2026-10-01", {"api_key_name": "checkout", "api_key_id": "key_a", "line_item": "gpt-4o, input"}, "0.1"),
            ("2026-10-01", {"api_key_name": "checkout", "api_key_id": "key_a", "line_item": "gpt-4o, input"}, "0.2"),
            ("2026-10-01", {"api_key_name": "Zürich analytics", "api_key_id": "key_z"}, "3"),
            ("2026-10-01", {"api_key_name": "unknown", "api_key_id": "key_u"}, "0.000001")]:
        report.add(day, fields, {"cost": Decimal(cost)})
    return report


def usage() -> Report:
    """A measure only one group has."""
    report = Report("usage/completions", date(2026, 10, 1), date(2026, 10, 3), ["model"])
    report.add("2026-10-01", {"model": "gpt-4o"}, {"input_tokens": 1234567, "output_tokens": 89})
    report.add("2026-10-02", {"model": "o3"}, {"input_tokens": 5, "output_tokens": 6, "num_model_requests": 2})
    return report


# Table.

def test_costs_table_is_totals_per_group_in_dollars_and_cents_largest_first_then_a_total() -> None:
    assert as_table(costs()) == (
        "costs from 2026-10-01 to 2026-11-01 (exclusive), by api_key_name, line_item\n"
        "\n"
        "api_key_name      line_item           cost\n"
        "----------------  -------------  ---------\n"
        "checkout          gpt-4o, input  $1,234.87\n"
        "Zürich analytics  (none)             $3.00\n"
        "unknown (key_u)   (none)             $0.00\n"
        "----------------  -------------  ---------\n"
        "TOTAL                            $1,237.87\n")


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


def wide_usage() -> Report:
    report = Report("usage", date(2026, 10, 1), date(2026, 10, 2), ["api_key_name", "model"],
                    apis={"anthropic": ANTHROPIC_ANALYTICS})
    measures = {"uncached_input_tokens": 10**9, "output_tokens": 10**8, "cache_read_input_tokens": 10**7,
                "cache_creation.ephemeral_5m_input_tokens": 10**6, "cache_creation.ephemeral_1h_input_tokens": 10**5,
                "server_tool_use.web_search_requests": 10**4, "requests": 10**3, "total_tokens": 10**10}
    report.add("2026-10-01", {"api_key_name": "a-service-with-a-rather-long-name-indeed", "model": "claude-x"},
               measures)
    return report


def test_a_wide_table_fits_120_columns_with_the_ranking_measures_first_and_says_what_it_left_out() -> None:
    lines = as_table(wide_usage()).splitlines()
    header = lines[2].split()
    assert max(len(line) for line in lines) <= WIDTH
    assert header[:4] == ["api_key_name", "model", "uncached_input_tokens", "output_tokens"]
    total = next(i for i, line in enumerate(lines) if line.startswith("TOTAL"))
    left_out = " ".join(lines[total + 1:])
    assert left_out.startswith("(not shown: ") and left_out.endswith("--wide shows every column)")
    assert not any(name in left_out for name in header[2:]), "a shown column is not listed as left out"
    everything = as_table(wide_usage(), width=None)
    assert all(name in everything.splitlines()[2] for name in ("total_tokens", "requests", "server_tool_use"))
    assert "not shown" not in everything and max(len(line) for line in everything.splitlines()) > WIDTH


def test_names_too_long_to_fit_are_cut_and_unprintable_characters_shown_escaped() -> None:
    report = Report("costs", date(2026, 10, 1), date(2026, 10, 2), ["api_key_name"])
    report.add("2026-10-01", {"api_key_name": "x" * 200}, {"cost": Decimal(1)})
    report.add("2026-10-01", {"api_key_name": "evil\x1b[2J\nname"}, {"cost": Decimal(2)})
    text = as_table(report)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "x" * 200 not in text and "x…  $1.00" in text
    assert "\x1b" not in text and "evil\\x1b[2J\\x0aname" in text


def test_several_providers_are_a_provider_column() -> None:
    report = Report("costs", date(2026, 10, 1), date(2026, 10, 2), [PROVIDER, "api_key_name"],
                    apis={"openai": OPENAI_REPORTS, "anthropic": ANTHROPIC_ANALYTICS})
    report.add("2026-10-01", {"api_key_name": "a"}, {"cost": Decimal(1)}, "openai")
    report.add("2026-10-01", {"api_key_name": "a"}, {"cost": Decimal(2)}, "anthropic")
    lines = as_table(report).splitlines()
    assert [line.split() for line in lines[4:6]] == [["anthropic", "a", "$2.00"], ["openai", "a", "$1.00"]]


# CSV.

def test_csv_is_one_row_per_day_and_group_with_the_ids_and_exact_amounts() -> None:
    text = as_csv(costs())
    assert text == ("date,api_key_name,api_key_id,line_item,cost\n"
                    "2026-10-01,Zürich analytics,key_z,,3\n"
                    '2026-10-01,checkout,key_a,"gpt-4o, input",0.3\n'
                    "2026-10-01,unknown,key_u,,0.000001\n"
                    '2026-10-02,checkout,key_a key_b,"gpt-4o, input",1234.5678\n')
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[2][3] == "gpt-4o, input", "a comma in a value comes back whole"


def test_usage_csv_has_a_column_per_measure_and_integers_as_integers() -> None:
    assert as_csv(usage()) == ("date,model,input_tokens,output_tokens,num_model_requests\n"
                               "2026-10-01,gpt-4o,1234567,89,0\n"
                               "2026-10-02,o3,5,6,2\n")


# JSON.

def test_json_has_the_header_the_daily_rows_and_the_totals_with_ids_and_exact_numbers() -> None:
    text = as_json(costs())
    assert "Zürich analytics" in text, "names are written as they are, not escaped"
    assert '"cost": 0.3\n' in text and '"cost": 0.000001\n' in text, "every digit, never 1e-06"
    document = json.loads(text, parse_float=Decimal)
    assert document["rows"][1] == {"date": "2026-10-01", "api_key_name": "checkout", "api_key_id": "key_a",
                                   "api_key_ids": ["key_a"], "line_item": "gpt-4o, input", "cost": Decimal("0.3")}
    assert document["totals"] == [
        {"api_key_name": "checkout", "api_key_id": None, "api_key_ids": ["key_a", "key_b"],
         "line_item": "gpt-4o, input", "cost": Decimal("1234.8678")},
        {"api_key_name": "Zürich analytics", "api_key_id": "key_z", "api_key_ids": ["key_z"], "line_item": None,
         "cost": 3},
        {"api_key_name": "unknown", "api_key_id": "key_u", "api_key_ids": ["key_u"], "line_item": None,
         "cost": Decimal("0.000001")}]
    assert (document["kind"], document["since"], document["until"], document["by"]) == (
        "costs", "2026-10-01", "2026-11-01", ["api_key_name", "line_item"])
    counts = as_json(usage())
    assert counts == json.dumps(json.loads(counts), indent=2, ensure_ascii=False) + "\n", "laid out as json.dumps does"
    empty = Report("costs", date(2026, 10, 1), date(2026, 10, 2), ["api_key_name"])
    assert json.loads(as_json(empty)) == {"kind": "costs", "since": "2026-10-01", "until": "2026-10-02",
                                          "by": ["api_key_name"], "rows": [], "totals": []}


def test_usage_json_keeps_integers_integers() -> None:
    document = json.loads(as_json(usage()))
    assert document["totals"][0] == {"model": "gpt-4o", "input_tokens": 1234567, "output_tokens": 89}
    numbers = [entry[k] for entry in document["rows"] for k in ("input_tokens", "output_tokens")]
    assert numbers == [1234567, 89, 5, 6] and all(type(n) is int for n in numbers)
