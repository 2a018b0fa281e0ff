"""The FOCUS mapping of Anthropic's costs from its analytics API, on the reference's example
rows (tests/fixtures/anthropic-admin-api/analytics/) with the names orgproxy puts beside the
ids: exact dollars from cents, the list price, the workspace as sub account, the key as
resource, the Console and the Default Workspace, and one file with OpenAI's costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import exact_json
from orgproxy.report.focus_anthropic import anthropic_charges
from orgproxy.report.focus_charge import BillingAccount
from orgproxy.report.focus_openai import openai_charges
from tests.report.test_focus import ACCOUNT, focus_csv, page
from tests.support.focus14_rules import assert_focus_1_4_rules, assert_round_trip_1_4
from tests.support.focus_rules import assert_focus_rules

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-admin-api" / "analytics"
ANTHROPIC_ACCOUNT = BillingAccount("5f3c2a10-7d4e-4b8a-9c21-0e6f1a2b3c4d", "Example Corp")
NAMES = {"apikey_01Rj2N8SVvo6BePZj99NhmiT": "billing-batch", "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ": "Research"}


def named(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as orgproxy answers them when grouped by key and workspace."""
    for row in rows:
        group = row["group"]
        for field, null_name in (("api_key_id", "Console"), ("workspace_id", "Default")):
            value = group[field]
            group[field.replace("_id", "_name")] = null_name if value is None else NAMES.get(value, "unknown")
    return rows


def example_rows() -> list[dict[str, Any]]:
    """Example 03 (by key, workspace and cost type: requests null) and 04 (the Console's
    usage and a key in the Default Workspace)."""
    return named([row for name in ("03-cost-by-api-key-workspace-cost-type.json",
                                   "04-cost-console-usage-default-workspace.json")
                  for row in exact_json((EXAMPLES / name).read_bytes())["data"]])


def rows_1_4(rows: list[dict[str, Any]]) -> list[dict[str, str | None]]:
    text = focus_csv(anthropic_charges(rows, ANTHROPIC_ACCOUNT), "1.4")
    out = assert_focus_1_4_rules(text)
    assert_round_trip_1_4(out, [], rows)
    return out


def test_billed_and_list_costs_are_the_cents_divided_by_100_exactly() -> None:
    source = example_rows()
    for row, sent in zip(rows_1_4(source), source):
        assert Decimal(row["BilledCost"]) == Decimal(sent["cost"]["amount"]) / 100  # type: ignore[arg-type]
        assert Decimal(row["ListCost"]) == Decimal(sent["cost"]["list_amount"]) / 100  # type: ignore[arg-type]
        assert (row["x_SourceAmount"], row["x_SourceAmountUnit"]) == (sent["cost"]["amount"], "USD cents")
        assert row["x_SourceListAmount"] == sent["cost"]["list_amount"]
    first = rows_1_4(source)[0]
    assert (first["BilledCost"], first["ListCost"]) == ("21.054", "23.39333333")  # "2105.4", "2339.333333" cents


def test_anthropic_is_every_party_keys_are_resources_and_workspaces_sub_accounts() -> None:
    rows = rows_1_4(example_rows())
    for row in rows:
        assert row["ServiceProviderName"] == row["HostProviderName"] == row["InvoiceIssuerName"] == "Anthropic"
        assert (row["ServiceName"], row["BillingAccountId"]) == ("Claude API", ANTHROPIC_ACCOUNT.id)
        assert row["x_SourceEndpoint"] == "/v1/organizations/analytics/cost"
    keyed = rows[0]
    assert (keyed["ResourceId"], keyed["ResourceName"], keyed["ResourceType"]) == (
        "apikey_01Rj2N8SVvo6BePZj99NhmiT", "billing-batch", "API Key")
    assert (keyed["SubAccountId"], keyed["SubAccountName"], keyed["SubAccountType"]) == (
        "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", "Research", "Workspace")
    assert (keyed["ChargeDescription"], keyed["x_CostType"], keyed["SkuId"]) == ("tokens", "tokens",
                                                                                 "anthropic:tokens")
    # The Console's usage: no key; the Default Workspace: no sub account (its id arrives null).
    console = [row for row in rows if row["ResourceId"] is None]
    assert console and all(row["ResourceName"] is None and row["ResourceType"] is None for row in console)
    default = [row for row in rows if row["SubAccountId"] is None]
    assert default and all(row["SubAccountName"] is None and row["SubAccountType"] is None for row in default)
    # A key nobody named: its id, and no name.
    assert any(row["ResourceId"] and row["ResourceName"] is None for row in rows)


def test_each_charge_is_priced_as_one_unit_at_its_cost() -> None:
    for row in rows_1_4(example_rows()):
        assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == ("1.0", "Count")
        assert (row["PricingQuantity"], row["ListUnitPrice"], row["ContractedUnitPrice"]) == (
            "1.0", row["ListCost"], row["BilledCost"])


def test_model_cost_type_and_token_type_describe_the_charge_and_its_sku() -> None:
    row = named([{"starting_at": "2026-09-30T00:00:00Z", "ending_at": "2026-10-01T00:00:00Z",
                  "group": {"api_key_id": None, "workspace_id": None, "model": "claude-sonnet-4-5",
                            "cost_type": "tokens", "token_type": "uncached_input_tokens",
                            "service_tier": "standard", "context_window": "0-200k"},
                  "cost": {"amount": "40.5", "currency": "USD", "list_amount": "45", "requests": None}}])
    (out,) = rows_1_4(row)
    assert out["ChargeDescription"] == "claude-sonnet-4-5: tokens / uncached_input_tokens"
    assert out["SkuId"] == "anthropic:claude-sonnet-4-5:tokens:uncached_input_tokens"
    assert out["SkuPriceId"] == "anthropic:claude-sonnet-4-5:tokens:uncached_input_tokens:standard:0-200k per Count"
    assert (out["SkuMeter"], out["x_Model"], out["x_ServiceTier"], out["x_ContextWindow"]) == (
        "uncached_input_tokens", "claude-sonnet-4-5", "standard", "0-200k")
    assert (out["BilledCost"], out["ListCost"]) == ("0.405", "0.45")
    assert (out["BillingPeriodStart"], out["BillingPeriodEnd"]) == ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")


def test_one_file_holds_both_vendors_in_1_4_and_in_1_2() -> None:
    charges = [*openai_charges(page()["data"], ACCOUNT), *anthropic_charges(example_rows(), ANTHROPIC_ACCOUNT)]
    both = assert_focus_1_4_rules(focus_csv(charges, "1.4"))
    assert_round_trip_1_4(both, [page()], example_rows())
    assert {row["SubAccountType"] for row in both} == {"Project", "Workspace", None}
    old = assert_focus_rules(focus_csv(charges, "1.2"))  # the 1.2 rules hold for Anthropic's rows too
    assert {row["ProviderName"] for row in old} == {"OpenAI", "Anthropic"}
    assert [row["ListCost"] for row in old if row["ProviderName"] == "Anthropic"] == [
        row["ListCost"] for row in both if row["ServiceProviderName"] == "Anthropic"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.pop("group"), "without group and cost objects"),
    (lambda r: r.update(starting_at="2026-09-29 00:00:00"), "RFC 3339"),
    (lambda r: r.update(ending_at=r["starting_at"]), "ends before it starts"),
    (lambda r: r["cost"].update(amount=1.5), "without a decimal amount"),
    (lambda r: r["cost"].update(amount="NaN"), "without a decimal amount"),
    (lambda r: r["cost"].update(currency=None), "without a currency code"),
])
def test_a_row_not_shaped_like_anthropic_s_is_one_clear_error(change: Any, message: str) -> None:
    row = example_rows()[0]
    change(row)
    with pytest.raises(ReportError, match=message):
        list(anthropic_charges([row], ANTHROPIC_ACCOUNT))
