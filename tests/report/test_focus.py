"""``orgproxy-report costs --format focus``: OpenAI's costs as FOCUS 1.2.

The mapping is checked on a page shaped like orgproxy's answers (tests/fixtures/focus/),
every FOCUS rule on that and on FakeUsage's whole month fetched through the command, the
files it writes (CSV, Parquet, the metadata sidecar), and its one-line errors.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.parquet
import pytest

from orgproxy.report.focus import BillingAccount, as_csv, focus_rows
from orgproxy.report.focus_export import exact_json
from tests.report.conftest import Ran, Run
from orgproxy.report.errors import ReportError
from tests.support.fake_usage import COSTS, FakeUsage
from tests.support.focus_rules import MANDATORY, assert_focus_rules, assert_round_trip, read
from tests.support.tcp_upstream import FakeUpstream
from tests.support.usage_expected import MONTH, assert_one_error_line

PAGE = Path(__file__).resolve().parents[1] / "fixtures" / "focus" / "openai-costs-two-days.json"
ACCOUNT = BillingAccount("org-EXAMPLE123", "Example Corp")
ORG = ("--billing-account-id", "org-EXAMPLE123", "--billing-account-name", "Example Corp")


def page() -> dict[str, Any]:
    return exact_json(PAGE.read_bytes())


def example_rows() -> list[dict[str, str | None]]:
    text = as_csv(focus_rows(page()["data"], ACCOUNT))
    rows = assert_focus_rules(text)
    assert_round_trip(rows, [page()])
    return rows


# --- the mapping, on one page -----------------------------------------------------------------

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
    (lambda b: b["results"][0].update(amount={"value": "0.3", "currency": "usd"}), "without a number in amount.value"),
    (lambda b: b["results"][0].update(amount={"value": Decimal("NaN"), "currency": "usd"}), "amount.value"),
    (lambda b: b["results"][0]["amount"].update(currency="dollars"), "without a currency code"),
    (lambda b: b["results"].append(["not", "an", "object"]), "a result that is not an object"),
])
def test_a_page_not_shaped_like_openai_s_is_one_clear_error(change: Any, message: str) -> None:
    bucket = page()["data"][0]
    change(bucket)
    with pytest.raises(ReportError, match=message):
        list(focus_rows([bucket], ACCOUNT))


# --- the command, over FakeUsage's month ------------------------------------------------------

def test_the_month_as_focus_keeps_every_rule_and_adds_up_to_the_pages_amounts(
        report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    text = report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url).ok()
    rows = assert_focus_rules(text)
    assert {frozenset(s.group_by) for s in usage.served_for(COSTS)} == {
        frozenset({"project_id", "api_key_id", "line_item"})}
    assert len(rows) == len(usage.costs_rows), "one row per day, key, project and line item"
    assert len(MANDATORY) == 21
    # The billed costs add up exactly to the amounts in OpenAI's JSON, and so to the cent.
    pages_total = sum(Decimal(json.dumps(row.value)) for row in usage.costs_rows)
    billed = sum(Decimal(row["BilledCost"]) for row in rows)
    assert billed == pages_total
    assert billed.quantize(Decimal("0.01")) == Decimal(repr(round(sum(r.value for r in usage.costs_rows), 2)))
    per_day: dict[str, Decimal] = {}
    for row in rows:
        per_day[row["ChargePeriodStart"][:10]] = per_day.get(row["ChargePeriodStart"][:10], Decimal()) + Decimal(
            row["BilledCost"])
    want: dict[str, Decimal] = {}
    for cost in usage.costs_rows:
        want[cost.day.isoformat()] = want.get(cost.day.isoformat(), Decimal()) + Decimal(json.dumps(cost.value))
    assert per_day == want


def test_the_rotated_checkout_keys_are_two_resources_of_one_name_and_unknown_keys_have_none(
        report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    _, rows = read(report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url).ok())
    checkout = {r["ResourceId"] for r in rows if r["ResourceName"] == "checkout"}
    assert checkout == {"key_3f9a1c0d7e2b4a01", "key_8b2e6f4a1d9c3e02"}
    unknown = {r["ResourceId"]: r["ResourceName"] for r in rows
               if r["ResourceId"] in ("key_9f8e7d6c5b4a3210", "key_0badc0ffee000042")}
    assert unknown == {"key_9f8e7d6c5b4a3210": None, "key_0badc0ffee000042": None}


def test_output_writes_the_csv_and_its_metadata_sidecar(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                        tmp_path: Path) -> None:
    target = tmp_path / "costs.csv"
    assert report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url, "--output",
                  str(target)).ok() == ""
    header, rows = read(target.read_text(encoding="utf-8"))
    assert_focus_rules(target.read_text(encoding="utf-8"))
    described = json.loads((tmp_path / "costs.csv.metadata.json").read_text(encoding="utf-8"))
    assert described["FocusVersion"] == "1.2"
    assert described["DataGenerator"].startswith("orgproxy-report ")
    assert len(described["SchemaId"]) == 36
    created = datetime.strptime(described["CreationDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=10)
    assert [c["ColumnName"] for c in described["ColumnDefinition"]] == header
    kinds = {c["ColumnName"]: c["DataType"] for c in described["ColumnDefinition"]}
    assert {kinds[c] for c in ("BilledCost", "PricingQuantity")} == {"DECIMAL"}
    assert {kinds[c] for c in ("ChargePeriodStart", "BillingPeriodEnd")} == {"DATETIME"}
    assert kinds["Tags"] == "JSON" and kinds["ResourceName"] == "STRING"
    longest = max(len(r["ChargeDescription"]) for r in rows)
    assert next(c for c in described["ColumnDefinition"] if c["ColumnName"] == "ChargeDescription")[
        "StringMaxLength"] == longest


def test_parquet_holds_the_same_rows_with_decimal_and_timestamp_types(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, tmp_path: Path) -> None:
    csv_text = report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url).ok()
    target = tmp_path / "costs.parquet"
    report("costs", *MONTH, "--format", "focus-parquet", *ORG, "--proxy", upstream.url, "--output", str(target)).ok()
    table = pyarrow.parquet.read_table(target)
    header, rows = read(csv_text)
    assert table.column_names == header and table.num_rows == len(rows)
    assert pyarrow.types.is_decimal(table.schema.field("BilledCost").type)
    moment = table.schema.field("ChargePeriodStart").type  # Parquet keeps seconds as milliseconds
    assert pyarrow.types.is_timestamp(moment) and moment.tz == "UTC"
    assert [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table.column("ChargePeriodStart").to_pylist()] == [
        r["ChargePeriodStart"] for r in rows]
    billed = table.column("BilledCost").to_pylist()
    assert [b.normalize() for b in billed] == [Decimal(r["BilledCost"]).normalize() for r in rows]
    assert table.column("ResourceName").to_pylist() == [r["ResourceName"] for r in rows]
    assert (tmp_path / "costs.parquet.metadata.json").exists()


def test_without_pyarrow_parquet_is_one_line_and_nothing_is_fetched(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # an import of it fails, as where it is not installed
    ran = report("costs", *MONTH, "--format", "focus-parquet", *ORG, "--proxy", upstream.url,
                 "--output", str(tmp_path / "x.parquet"))
    assert "needs pyarrow: pip install 'orgproxy[report]'" in one_error_line(ran)
    assert not usage.served_for(COSTS)


@pytest.mark.parametrize(("args", "message"), [
    (("--billing-account-id", "org-1"), "needs --billing-account-id and --billing-account-name"),
    (("--billing-account-name", "Example"), "needs --billing-account-id and --billing-account-name"),
    ((*ORG, "--chart", "x.svg"), "--chart does not go with --format focus"),
])
def test_focus_without_the_organization_or_with_a_chart_is_one_line_and_nothing_is_fetched(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, args: tuple[str, ...], message: str) -> None:
    assert message in one_error_line(report("costs", *MONTH, "--format", "focus", *args, "--proxy", upstream.url))
    assert not usage.served_for(COSTS)


def test_an_output_file_that_cannot_be_written_is_one_line(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                            tmp_path: Path) -> None:
    ran = report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url,
                 "--output", str(tmp_path / "no-such-dir" / "costs.csv"))
    assert "No such file or directory" in one_error_line(ran)


def test_output_works_for_the_other_formats_too(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                tmp_path: Path) -> None:
    printed = report("costs", *MONTH, "--format", "csv", "--proxy", upstream.url).ok()
    target = tmp_path / "costs.csv"
    assert report("costs", *MONTH, "--format", "csv", "--proxy", upstream.url, "--output", str(target)).ok() == ""
    assert target.read_text(encoding="utf-8") == printed
    assert not (tmp_path / "costs.csv.metadata.json").exists(), "a sidecar only for FOCUS"


def one_error_line(ran: Ran) -> str:
    return assert_one_error_line(ran.code, ran.out, ran.err)

