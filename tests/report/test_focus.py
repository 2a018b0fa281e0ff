"""The FOCUS mapping of OpenAI's costs, on a page shaped like orgproxy's answers
(tests/fixtures/focus/): FOCUS 1.2 as it always was (byte for byte), and 1.4. Anthropic's:
test_focus_anthropic.py; the command and the files it writes: test_focus_export.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import exact_json
from orgproxy.report.focus import COLUMNS, ROW_OF
from orgproxy.report.focus_charge import BillingAccount, Charge
from orgproxy.report.focus_openai import openai_charges
from orgproxy.report.focus_write import CsvSink
from tests.support.focus14_rules import assert_focus_1_4_rules, assert_round_trip_1_4
from tests.support.focus_rules import assert_focus_rules, assert_round_trip, read

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "focus"
PAGE = FIXTURES / "openai-costs-two-days.json"
ACCOUNT = BillingAccount("org-EXAMPLE123", "Example Corp")


def page() -> dict[str, Any]:
    return exact_json(PAGE.read_bytes())


def focus_csv(charges: Iterable[Charge], version: str) -> str:
    """The charges as the export writes them, in FOCUS ``version``."""
    out = io.StringIO()
    sink = CsvSink(out, tuple(name for name, _ in COLUMNS[version]))
    for charge in charges:
        sink.write(ROW_OF[version](charge))
    sink.close()
    return out.getvalue()


def focus_rows(buckets: Iterable[Any], account: BillingAccount) -> list[dict[str, Any]]:
    """The 1.2 rows of OpenAI's buckets, as values (Decimal, datetime) before they are text."""
    return [ROW_OF["1.2"](charge) for charge in openai_charges(buckets, account)]


def example_rows() -> list[dict[str, str | None]]:
    text = focus_csv(openai_charges(page()["data"], ACCOUNT), "1.2")
    rows = assert_focus_rules(text)
    assert_round_trip(rows, [page()])
    return rows


def example_rows_1_4() -> list[dict[str, str | None]]:
    rows = assert_focus_1_4_rules(focus_csv(openai_charges(page()["data"], ACCOUNT), "1.4"))
    assert_round_trip_1_4(rows, [page()], [])
    return rows


# --- 1.2, as it always was ---------------------------------------------------------------------

def test_1_2_is_byte_for_byte_what_it_was_before_1_4() -> None:
    assert focus_csv(openai_charges(page()["data"], ACCOUNT), "1.2") == (
        FIXTURES / "openai-costs-two-days.focus-1.2.csv").read_text(encoding="utf-8")



def test_every_focus_rule_holds_and_each_result_is_one_row_with_its_exact_amount() -> None:
    rows = example_rows()
    assert [row["BilledCost"] for row in rows] == [
        "0.3", "0.15", "0.3", "0.3", "0.000006", "0.00001", "120000.0", "-0.25"]


def test_the_organization_is_the_billing_account_and_openai_every_party() -> None:
    for row in example_rows():
        assert (row["BillingAccountId"], row["BillingAccountName"], row["BillingCurrency"]) == (
            "org-EXAMPLE123", "Example Corp", "USD")
        assert row["InvoiceIssuerName"] == row["ProviderName"] == row["PublisherName"] == "OpenAI"
        assert (row["ServiceName"], row["ServiceCategory"], row["ServiceSubcategory"]) == (
            "OpenAI API", "AI and Machine Learning", "Generative AI")
        assert (row["ChargeCategory"], row["ChargeClass"], row["ChargeFrequency"]) == ("Usage", None, "Usage-Based")


def test_days_are_charge_periods_inside_their_utc_month() -> None:
    rows = example_rows()
    first, later = rows[0], rows[3]
    assert (first["ChargePeriodStart"], first["ChargePeriodEnd"]) == ("2025-06-30T00:00:00Z", "2025-07-01T00:00:00Z")
    assert (first["BillingPeriodStart"], first["BillingPeriodEnd"]) == ("2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z")
    assert (later["BillingPeriodStart"], later["BillingPeriodEnd"]) == ("2025-07-01T00:00:00Z", "2025-08-01T00:00:00Z")


def test_december_s_billing_period_ends_on_the_first_of_january() -> None:
    december = {"start_time": 1798675200, "end_time": 1798761600,  # 2026-12-31
                "results": [{"amount": {"value": Decimal("1.5"), "currency": "usd"}}]}
    (row,) = focus_rows([december], ACCOUNT)
    assert (row["BillingPeriodStart"].isoformat(), row["BillingPeriodEnd"].isoformat()) == (
        "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")


def test_quantities_are_consumed_and_pricing_quantities_and_no_unit_is_one_count() -> None:
    rows = example_rows()
    assert [(r["ConsumedQuantity"], r["ConsumedUnit"], r["x_OpenAIQuantity"], r["x_OpenAIQuantityUnit"])
            for r in rows] == [
        ("120000.0", "Tokens", "120000.0", "tokens"), ("15000.0", "Tokens", "15000.0", "tokens"),
        ("2000000.0", "Tokens", "2000000.0", "tokens"), ("500000.0", "Tokens", "500000.0", "tokens"),
        ("40.0", "Tokens", "40.0", "tokens"), ("1.0", "Count", "25.0", None), ("1.0", "Count", None, None),
        ("1.5", "1000 Tokens", "1.5", "1000_tokens")]
    assert all((r["PricingQuantity"], r["PricingUnit"]) == (r["ConsumedQuantity"], r["ConsumedUnit"]) for r in rows)


def test_line_items_are_charge_descriptions_commas_and_all() -> None:
    rows = example_rows()
    assert rows[0]["ChargeDescription"] == "gpt-4o-2024-08-06, input"
    assert rows[6]["ChargeDescription"] == "OpenAI API usage", "a cost not grouped by line item"


def test_projects_are_sub_accounts_and_keys_are_resources_named_only_where_a_name_is_known() -> None:
    rows = example_rows()
    assert (rows[0]["SubAccountId"], rows[0]["SubAccountName"]) == ("proj_abc", "Research")
    assert (rows[0]["ResourceId"], rows[0]["ResourceName"], rows[0]["ResourceType"]) == ("key_abc", "ci-bot", "API Key")
    unknown = rows[4]
    assert (unknown["ResourceId"], unknown["ResourceName"], unknown["ResourceType"]) == ("key_zzz", None, "API Key")
    assert (unknown["SubAccountId"], unknown["SubAccountName"]) == ("proj_new", "proj_new")
    no_key = rows[6]
    assert [no_key[c] for c in ("ResourceId", "ResourceName", "ResourceType", "SubAccountId", "SubAccountName",
                                "Tags")] == [None] * 6


def test_rotated_keys_keep_their_own_resource_ids_under_one_name() -> None:
    rows = example_rows()
    assert {(r["ResourceId"], r["ResourceName"]) for r in rows if r["ResourceName"] == "web-frontend"} == {
        ("key_def", "web-frontend"), ("key_ghi", "web-frontend")}


def test_redacted_value_owner_and_deleted_are_tags_with_orgproxy_s_prefix() -> None:
    rows = example_rows()
    assert json.loads(rows[0]["Tags"]) == {"orgproxy/redacted_value": "sk-...abc", "orgproxy/owner": "Ada Lovelace"}
    assert json.loads(rows[2]["Tags"]) == {"orgproxy/redacted_value": "sk-...def", "orgproxy/owner": "checkout-bot",
                                           "orgproxy/deleted": True}
    assert rows[4]["Tags"] is None and rows[7]["Tags"] is None, "nothing known beyond the id"


def test_with_replace_ids_the_original_ids_are_the_resource_and_sub_account_ids() -> None:
    result = {"amount": {"value": Decimal("2"), "currency": "usd"}, "api_key_id": "ci-bot",
              "api_key_id_original": "key_abc", "api_key_name": "ci-bot", "project_id": "Research",
              "project_id_original": "proj_abc", "project_name": "Research"}
    (row,) = focus_rows([{"start_time": 1751241600, "end_time": 1751328000, "results": [result]}], ACCOUNT)
    assert (row["ResourceId"], row["ResourceName"], row["SubAccountId"], row["SubAccountName"]) == (
        "key_abc", "ci-bot", "proj_abc", "Research")


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b.pop("start_time"), "a bucket without start_time and end_time"),
    (lambda b: b.update(results=None), "a bucket without results"),
    (lambda b: b["results"][0].update(amount={"value": "0.3e", "currency": "usd"}), "without a number in amount.value"),
    (lambda b: b["results"][0].update(amount={"value": True, "currency": "usd"}), "without a number in amount.value"),
    (lambda b: b["results"][0].update(amount={"value": Decimal("1e999999"), "currency": "usd"}),
     "without a number in amount.value"),
    (lambda b: b["results"][0].update(amount={"value": Decimal("NaN"), "currency": "usd"}), "amount.value"),
    (lambda b: b["results"][0]["amount"].update(currency="dollars"), "without a currency code"),
    (lambda b: b["results"].append(["not", "an", "object"]), "a result that is not an object"),
])
def test_a_page_not_shaped_like_openai_s_is_one_clear_error(change: Any, message: str) -> None:
    bucket = page()["data"][0]
    change(bucket)
    with pytest.raises(ReportError, match=message):
        list(openai_charges([bucket], ACCOUNT))


def test_an_amount_sent_as_a_decimal_string_is_read_as_that_decimal() -> None:
    bucket = page()["data"][0]
    bucket["results"][0]["amount"]["value"] = "0.30000000000000004"
    (charge, *_) = openai_charges([bucket], ACCOUNT)
    assert charge.billed == Decimal("0.30000000000000004")


# --- 1.4 ----------------------------------------------------------------------------------------

def test_1_4_keeps_every_rule_with_openai_as_every_party_and_no_removed_column() -> None:
    for row in example_rows_1_4():
        assert row["ServiceProviderName"] == row["HostProviderName"] == row["InvoiceIssuerName"] == "OpenAI"
        assert (row["BillingAccountId"], row["BillingAccountType"]) == ("org-EXAMPLE123", "Organization")
        assert row["x_SourceEndpoint"] == "/v1/organization/costs" and row["x_SourceAmountUnit"] == "usd"


def test_1_4_prices_tokens_per_million_with_unit_prices_that_give_the_cost_back() -> None:
    rows = example_rows_1_4()
    first = rows[0]  # 120000 tokens of gpt-4o input for $0.30
    assert (first["ConsumedQuantity"], first["ConsumedUnit"]) == ("120000.0", "Tokens")
    assert (first["PricingQuantity"], first["PricingUnit"]) == ("0.120000", "1000000 Tokens")
    assert first["ListUnitPrice"] == first["ContractedUnitPrice"] == "2.5"
    assert (first["SkuId"], first["SkuPriceId"]) == (
        "openai:gpt-4o-2024-08-06, input", "openai:gpt-4o-2024-08-06, input per 1000000 Tokens")
    refund = rows[-1]  # -$0.25 for 1.5 thousand tokens ($166.66... a million): one unit, negative, at $0.25
    assert (refund["BilledCost"], refund["ConsumedQuantity"], refund["ConsumedUnit"]) == ("-0.25", "1.5", "1000 Tokens")
    assert (refund["PricingQuantity"], refund["PricingUnit"], refund["ListUnitPrice"]) == ("-1.0", "Count", "0.25")
    searches = rows[5]  # no unit: the charge is one unit of its own
    assert (searches["PricingQuantity"], searches["PricingUnit"], searches["ListUnitPrice"]) == ("1.0", "Count",
                                                                                                 "0.00001")


def test_1_4_prices_a_charge_as_one_unit_where_the_division_is_not_exact() -> None:
    def result(value: str, quantity: int) -> dict[str, Any]:
        return {"amount": {"value": Decimal(value), "currency": "usd"}, "line_item": "gpt-4o, input",
                "quantity": quantity, "quantity_unit": "tokens", "api_key_id": "key_abc", "api_key_name": "ci-bot"}
    bucket = {"start_time": 1751241600, "end_time": 1751328000,
              "results": [result("0.1", 3), result("-0.5", 200000), result("0", 0)]}
    inexact, refund, nothing = assert_focus_1_4_rules(focus_csv(openai_charges([bucket], ACCOUNT), "1.4"))
    assert (inexact["ConsumedQuantity"], inexact["ConsumedUnit"]) == ("3.0", "Tokens")
    assert (inexact["PricingQuantity"], inexact["PricingUnit"], inexact["ContractedUnitPrice"]) == ("1.0", "Count",
                                                                                                  "0.1")
    assert (refund["PricingQuantity"], refund["PricingUnit"], refund["ContractedUnitPrice"]) == (
        "-0.200000", "1000000 Tokens", "2.5"), "a refund: a negative quantity at a positive price"
    assert (nothing["PricingQuantity"], nothing["PricingUnit"], nothing["ContractedUnitPrice"]) == ("1.0", "Count",
                                                                                                  "0.0")
