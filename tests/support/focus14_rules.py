"""The FOCUS 1.4 rules a file of OpenAI's and Anthropic's per-key costs must keep, checked on
the CSV text itself (the 1.2 ones: focus_rules.py).

Spelled out here from the specification (the 1.4 Cost and Usage columns, the requirements
model's rules) rather than imported from the exporter, so the tests check it: the header
(every column, FOCUS's alphabetically then the custom ones, without the ProviderName and
PublisherName 1.4 removed), nulls, dates, decimals, allowed values, the columns that go
together, unit prices that multiply back exactly, the vendor columns, and the round trip
to the vendors' pages (exact decimals, Anthropic's cents / 100).
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from tests.support.focus_rules import DATE, DECIMAL, QUOTED_EMPTY, SUBCATEGORIES, read, when

# The 1.4 Cost and Usage dataset's columns (FOCUS_Spec v1.4, model-1.4.json).
FOCUS_1_4 = (
    "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "CommitmentProgramEligibilityDetails", "ConsumedQuantity", "ConsumedUnit",
    "ContractApplied", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "HostProviderName",
    "InvoiceDetailId", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory",
    "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
)
MANDATORY_1_4 = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "HostProviderName", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ServiceCategory", "ServiceName", "ServiceProviderName",
)
NOT_NULL = ("BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency",
            "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeDescription", "ChargeFrequency",
            "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost", "HostProviderName",
            "InvoiceIssuerName", "ListCost", "PricingCurrency", "PricingCurrencyEffectiveCost", "ServiceCategory",
            "ServiceName", "ServiceProviderName", "ServiceSubcategory")
# Every Usage row (not a correction) needs a SKU price, quantities and unit prices (1.3+).
USAGE_NOT_NULL = ("SkuId", "SkuPriceId", "SkuMeter", "PricingQuantity", "PricingUnit", "ConsumedQuantity",
                  "ConsumedUnit", "ListUnitPrice", "ContractedUnitPrice", "PricingCategory",
                  "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice")
DECIMALS = ("BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "ListCost",
            "ListUnitPrice", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
            "PricingCurrencyListUnitPrice", "PricingQuantity")
UNIT = re.compile(r"(\d+ )?(Tokens|Requests|Seconds|Minutes|Hours|GiB-Hours|Images|Characters|Count)")
VENDORS = {"OpenAI": ("OpenAI API", "Project"), "Anthropic": ("Claude API", "Workspace")}


def assert_focus_1_4_rules(text: str) -> list[dict[str, str | None]]:
    """Every rule a FOCUS 1.4 file of these vendors' costs must keep; the rows."""
    assert not QUOTED_EMPTY.search(text), 'a value written as "" (null is an empty unquoted field)'
    header, rows = read(text)
    # (1) the columns: all of 1.4's, alphabetically, then the custom ones (x_), alphabetically
    custom = [name for name in header if name.startswith("x_")]
    assert header == [*FOCUS_1_4, *sorted(custom)], header
    assert "ProviderName" not in header and "PublisherName" not in header, "removed in 1.4"
    assert set(MANDATORY_1_4) <= set(header) and all(re.fullmatch(r"x_[A-Z][A-Za-z]+", name) for name in custom)
    for row in rows:
        # (2) nulls, and no blank stand-ins
        for name in NOT_NULL:
            assert row[name] is not None, (name, row)
        for name, value in row.items():
            assert value is None or (value.strip() == value and value != "NULL"), (name, value)
        assert row["InvoiceId"] is None and row["InvoiceDetailId"] is None, "the cost APIs name no invoice"
        # (3) dates: the charge in its UTC month
        for name in ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"):
            assert DATE.fullmatch(row[name] or ""), (name, row[name])
        start, end = when(row["ChargePeriodStart"]), when(row["ChargePeriodEnd"])  # type: ignore[arg-type]
        billing_start = when(row["BillingPeriodStart"])  # type: ignore[arg-type]
        assert start < end <= when(row["BillingPeriodEnd"]) and billing_start <= start  # type: ignore[arg-type]
        assert billing_start == start.replace(day=1, hour=0, minute=0, second=0)
        # (4) decimals, custom ones too
        for name in (*DECIMALS, *(n for n in custom if n in ("x_SourceAmount", "x_SourceListAmount",
                                                            "x_SourceQuantity"))):
            if row[name] is not None:
                assert DECIMAL.fullmatch(row[name]), (name, row[name])  # type: ignore[arg-type]
        # (5) allowed values, and the vendor named alike in every party column
        assert (row["ChargeCategory"], row["ChargeClass"], row["ChargeFrequency"]) == ("Usage", None, "Usage-Based")
        assert row["ServiceSubcategory"] in SUBCATEGORIES[row["ServiceCategory"]]  # type: ignore[index]
        assert re.fullmatch(r"[A-Z]{3}", row["BillingCurrency"] or "") and row["PricingCurrency"] == \
            row["BillingCurrency"]
        vendor = row["ServiceProviderName"] or ""
        assert row["HostProviderName"] == row["InvoiceIssuerName"] == vendor and vendor in VENDORS
        assert (row["ServiceName"], row["SubAccountType"] or VENDORS[vendor][1]) == VENDORS[vendor]
        assert UNIT.fullmatch(row["PricingUnit"] or "") and UNIT.fullmatch(row["ConsumedUnit"] or "")
        assert row["PricingCategory"] in ("Standard", "Committed", "Dynamic", "Other")
        # (6) the columns that go together
        assert (row["SubAccountName"] is None) == (row["SubAccountId"] is None) == (row["SubAccountType"] is None)
        assert (row["ResourceType"] is None) == (row["ResourceId"] is None)
        assert row["ResourceId"] is not None or row["ResourceName"] is None
        assert row["ResourceName"] is None or row["ResourceName"] != row["ResourceId"], "a name is never the id"
        for name in USAGE_NOT_NULL:
            assert row[name] is not None, (name, row)
        # (7) unit prices never negative, and multiplying back to the costs exactly
        quantity = Decimal(row["PricingQuantity"])  # type: ignore[arg-type]
        for price, cost in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost"),
                            ("PricingCurrencyListUnitPrice", "ListCost"),
                            ("PricingCurrencyContractedUnitPrice", "ContractedCost")):
            assert Decimal(row[price]) >= 0, (price, row)  # type: ignore[arg-type]
            assert Decimal(row[price]) * quantity == Decimal(row[cost]), (price, cost, row)  # type: ignore[arg-type]
        assert row["BilledCost"] == row["EffectiveCost"] == row["ContractedCost"] == row["PricingCurrencyEffectiveCost"]
        if vendor == "OpenAI":
            assert row["ListCost"] == row["BilledCost"], "OpenAI gives one price"
    return rows


def assert_round_trip_1_4(rows: list[dict[str, str | None]], openai_pages: list[dict[str, Any]],
                          anthropic_rows: list[dict[str, Any]]) -> None:
    """One row per result (OpenAI) and per row (Anthropic), each vendor's in page order;
    per vendor and day the billed costs add up exactly to the pages' amounts (Anthropic's in
    cents), and the list costs to Anthropic's list amounts."""
    results = [(bucket, result) for page in openai_pages for bucket in page["data"] for result in bucket["results"]]
    mine = {vendor: [row for row in rows if row["ServiceProviderName"] == vendor] for vendor in VENDORS}
    assert len(mine["OpenAI"]) == len(results) and len(mine["Anthropic"]) == len(anthropic_rows)
    got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    want: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row, (bucket, result) in zip(mine["OpenAI"], results):
        assert when(row["ChargePeriodStart"]).timestamp() == bucket["start_time"]  # type: ignore[arg-type]
        got["OpenAI", row["ChargePeriodStart"]] += Decimal(row["BilledCost"])  # type: ignore[index, arg-type]
        want["OpenAI", row["ChargePeriodStart"]] += Decimal(result["amount"]["value"])  # type: ignore[index]
    for row, source in zip(mine["Anthropic"], anthropic_rows):
        assert row["ChargePeriodStart"] == source["starting_at"]
        assert Decimal(row["BilledCost"]) * 100 == Decimal(source["cost"]["amount"])  # type: ignore[arg-type]
        assert Decimal(row["ListCost"]) * 100 == Decimal(source["cost"]["list_amount"])  # type: ignore[arg-type]
        got["Anthropic", row["ChargePeriodStart"]] += Decimal(row["BilledCost"])  # type: ignore[index, arg-type]
        want["Anthropic", source["starting_at"]] += Decimal(source["cost"]["amount"]) / 100
    assert got == want
