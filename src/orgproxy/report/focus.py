"""Charges as rows of FOCUS, the FinOps Foundation's open billing format: version 1.4 (the
default) or 1.2, the columns of each in order, and each value as FOCUS writes it in text.

1.4 has every Cost and Usage column the specification defines, null where it does not
apply to an API's per-key costs (allocation, commitments, regions, ...) so that a reader
or validator finds every column it looks for; ``ServiceProviderName`` and
``HostProviderName`` name the vendor, as 1.3 introduced them, and the ``ProviderName`` and
``PublisherName`` that 1.4 removed are left out. 1.4 asks every Usage row for a SKU price
and unit prices that multiply back to the costs: neither API gives either, so the SKU is
the charge as the vendor names it (``openai:<line item>``, ``anthropic:<model>:<cost
type>:<token type>``) and the unit prices are the costs divided by the quantity (see
``Charge.pricing``). Custom columns (``x_``) keep the vendors' own values as sent.

1.2 is the export as it was before 1.4: OpenAI's columns, with ``ProviderName`` and
``PublisherName``. Amounts are exact decimals, written with a decimal point and never in
exponent form; times are ``YYYY-MM-DDTHH:mm:ssZ``. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from decimal import Decimal
from typing import Any

from orgproxy.report.focus_charge import Charge
from orgproxy.text import without_surrogates

DECIMAL, STRING, DATETIME, JSON_TYPE = "Decimal", "String", "Date/Time", "JSON"
VERSIONS = ("1.4", "1.2")
Row = dict[str, Any]  # column -> Decimal, str, datetime, dict (JSON) or None

COLUMNS_1_2: tuple[tuple[str, str], ...] = (
    ("BilledCost", DECIMAL), ("BillingAccountId", STRING), ("BillingAccountName", STRING),
    ("BillingCurrency", STRING), ("BillingPeriodEnd", DATETIME), ("BillingPeriodStart", DATETIME),
    ("ChargeCategory", STRING), ("ChargeClass", STRING), ("ChargeDescription", STRING),
    ("ChargeFrequency", STRING), ("ChargePeriodEnd", DATETIME), ("ChargePeriodStart", DATETIME),
    ("ConsumedQuantity", DECIMAL), ("ConsumedUnit", STRING), ("ContractedCost", DECIMAL),
    ("EffectiveCost", DECIMAL), ("InvoiceId", STRING), ("InvoiceIssuerName", STRING), ("ListCost", DECIMAL),
    ("PricingQuantity", DECIMAL), ("PricingUnit", STRING), ("ProviderName", STRING), ("PublisherName", STRING),
    ("ResourceId", STRING), ("ResourceName", STRING), ("ResourceType", STRING), ("ServiceCategory", STRING),
    ("ServiceName", STRING), ("ServiceSubcategory", STRING), ("SubAccountId", STRING),
    ("SubAccountName", STRING), ("Tags", JSON_TYPE),
    # OpenAI's own quantity and unit, as sent (the FOCUS ones fall back to 1 Count).
    ("x_OpenAIQuantity", DECIMAL), ("x_OpenAIQuantityUnit", STRING),
)

# FOCUS's columns in alphabetical order, then the custom ones, as 1.4 recommends.
COLUMNS_1_4: tuple[tuple[str, str], ...] = (
    ("AllocatedMethodDetails", JSON_TYPE), ("AllocatedMethodId", STRING), ("AllocatedResourceId", STRING),
    ("AllocatedResourceName", STRING), ("AllocatedTags", JSON_TYPE), ("AvailabilityZone", STRING),
    ("BilledCost", DECIMAL), ("BillingAccountId", STRING), ("BillingAccountName", STRING),
    ("BillingAccountType", STRING), ("BillingCurrency", STRING), ("BillingPeriodEnd", DATETIME),
    ("BillingPeriodStart", DATETIME), ("CapacityReservationId", STRING), ("CapacityReservationStatus", STRING),
    ("ChargeCategory", STRING), ("ChargeClass", STRING), ("ChargeDescription", STRING),
    ("ChargeFrequency", STRING), ("ChargePeriodEnd", DATETIME), ("ChargePeriodStart", DATETIME),
    ("CommitmentDiscountCategory", STRING), ("CommitmentDiscountId", STRING), ("CommitmentDiscountName", STRING),
    ("CommitmentDiscountQuantity", DECIMAL), ("CommitmentDiscountStatus", STRING),
    ("CommitmentDiscountType", STRING), ("CommitmentDiscountUnit", STRING),
    ("CommitmentProgramEligibilityDetails", JSON_TYPE), ("ConsumedQuantity", DECIMAL), ("ConsumedUnit", STRING),
    ("ContractApplied", JSON_TYPE), ("ContractedCost", DECIMAL), ("ContractedUnitPrice", DECIMAL),
    ("EffectiveCost", DECIMAL), ("HostProviderName", STRING), ("InvoiceDetailId", STRING), ("InvoiceId", STRING),
    ("InvoiceIssuerName", STRING), ("ListCost", DECIMAL), ("ListUnitPrice", DECIMAL),
    ("PricingCategory", STRING), ("PricingCurrency", STRING), ("PricingCurrencyContractedUnitPrice", DECIMAL),
    ("PricingCurrencyEffectiveCost", DECIMAL), ("PricingCurrencyListUnitPrice", DECIMAL),
    ("PricingQuantity", DECIMAL), ("PricingUnit", STRING), ("RegionId", STRING), ("RegionName", STRING),
    ("ResourceId", STRING), ("ResourceName", STRING), ("ResourceType", STRING), ("ServiceCategory", STRING),
    ("ServiceName", STRING), ("ServiceProviderName", STRING), ("ServiceSubcategory", STRING), ("SkuId", STRING),
    ("SkuMeter", STRING), ("SkuPriceDetails", JSON_TYPE), ("SkuPriceId", STRING), ("SubAccountId", STRING),
    ("SubAccountName", STRING), ("SubAccountType", STRING), ("Tags", JSON_TYPE),
    # The vendors' own values, as sent.
    ("x_ContextWindow", STRING), ("x_CostType", STRING), ("x_Model", STRING), ("x_ServiceTier", STRING),
    ("x_SourceAmount", DECIMAL), ("x_SourceAmountUnit", STRING), ("x_SourceEndpoint", STRING),
    ("x_SourceListAmount", DECIMAL), ("x_SourceQuantity", DECIMAL), ("x_SourceQuantityUnit", STRING),
    ("x_TokenType", STRING),
)
COLUMNS: Mapping[str, tuple[tuple[str, str], ...]] = {"1.2": COLUMNS_1_2, "1.4": COLUMNS_1_4}
NOT_APPLICABLE_1_4 = tuple(name for name in (
    "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
    "AvailabilityZone", "CapacityReservationId", "CapacityReservationStatus", "ChargeClass",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "CommitmentProgramEligibilityDetails", "ContractApplied", "InvoiceDetailId", "InvoiceId", "RegionId",
    "RegionName", "SkuPriceDetails"))


def _common(charge: Charge) -> Row:
    """What both versions write alike."""
    vendor = charge.vendor
    billing_start, billing_end = charge.billing_period
    key = charge.key_id is not None
    return {
        "BilledCost": charge.billed,
        "BillingAccountId": charge.account.id,
        "BillingAccountName": charge.account.name,
        "BillingCurrency": charge.currency,
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": "Usage",  # refunds too: Usage may be negative
        "ChargeClass": None,  # the APIs mark no corrections
        "ChargeDescription": charge.description,
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": charge.end,
        "ChargePeriodStart": charge.start,
        "ConsumedQuantity": charge.quantity,
        "ConsumedUnit": charge.unit,
        "ContractedCost": charge.billed,
        "EffectiveCost": charge.billed,  # no commitments to amortise
        "InvoiceId": None,  # the cost APIs name no invoice
        "InvoiceIssuerName": vendor.name,
        "ListCost": charge.listed,
        "ResourceId": charge.key_id,
        "ResourceName": charge.key_name,
        "ResourceType": "API Key" if key else None,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": vendor.service,
        "ServiceSubcategory": "Generative AI",
        "SubAccountId": charge.sub_account_id,
        "SubAccountName": charge.sub_account_name,
        "Tags": charge.tags,
    }


def row_1_2(charge: Charge) -> Row:
    return {**_common(charge), "PricingQuantity": charge.quantity, "PricingUnit": charge.unit,
            "ProviderName": charge.vendor.name, "PublisherName": charge.vendor.name,
            "x_OpenAIQuantity": charge.source_quantity, "x_OpenAIQuantityUnit": charge.source_quantity_unit}


def row_1_4(charge: Charge) -> Row:
    quantity, unit, list_price, contracted_price = charge.pricing()
    row = _common(charge)
    row.update(dict.fromkeys(NOT_APPLICABLE_1_4))
    row.update({
        "BillingAccountType": "Organization",
        "ContractedUnitPrice": contracted_price,
        "HostProviderName": charge.vendor.name,  # the vendors host their own models
        "ListUnitPrice": list_price,
        "PricingCategory": "Standard",
        # Priced and billed in one currency: FOCUS still wants the pricing-currency columns.
        "PricingCurrency": charge.currency,
        "PricingCurrencyContractedUnitPrice": contracted_price,
        "PricingCurrencyEffectiveCost": charge.billed,
        "PricingCurrencyListUnitPrice": list_price,
        "PricingQuantity": quantity,
        "PricingUnit": unit,
        "ServiceProviderName": charge.vendor.name,
        "SkuId": charge.sku,
        "SkuMeter": charge.token_type or charge.cost_type or charge.description,
        "SkuPriceId": f"{charge.sku_price} per {unit}",
        "SubAccountType": charge.vendor.sub_account_type if charge.sub_account_id is not None else None,
        "x_ContextWindow": charge.context_window,
        "x_CostType": charge.cost_type,
        "x_Model": charge.model,
        "x_ServiceTier": charge.service_tier,
        "x_SourceAmount": charge.source_amount,
        "x_SourceAmountUnit": charge.source_amount_unit,
        "x_SourceEndpoint": charge.vendor.endpoint,
        "x_SourceListAmount": charge.source_list_amount,
        "x_SourceQuantity": charge.source_quantity,
        "x_SourceQuantityUnit": charge.source_quantity_unit,
        "x_TokenType": charge.token_type,
    })
    return row


ROW_OF: Mapping[str, Callable[[Charge], Row]] = {"1.2": row_1_2, "1.4": row_1_4}


def decimal_text(value: Decimal) -> str:
    """Fixed-point, with a decimal point: ``120000.0``, ``0.00001``, never ``1E-5``."""
    text = format(value, "f")
    return text if "." in text else text + ".0"


@lru_cache(maxsize=4096)  # a month's export writes the same few dozen times on every row
def time_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def cell(value: Any) -> str | None:
    """A value as FOCUS writes it in text; None for null. Text is kept exactly, but for a
    lone surrogate (JSON can carry one in a name, UTF-8 cannot): U+FFFD."""
    if value is None:
        return value
    if type(value) is str:
        return without_surrogates(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, dict):
        return without_surrogates(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return without_surrogates(str(value))
