"""The FOCUS 1.2 rules a file of OpenAI's (and Anthropic's) costs must keep, checked on the
CSV text itself (the 1.4 ones: focus14_rules.py).

Spelled out here from the specification (columns, attributes) rather than imported from
the exporter, so the tests check it: the header, nulls, dates, decimals, allowed values,
the pairs of columns that go together, the costs that must be equal, the tags, and the
round trip to OpenAI's pages (exact decimals).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)
# The relevant Recommended and Conditional columns.
RECOMMENDED = ("ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "InvoiceId", "ResourceId", "ResourceName",
               "ResourceType", "ServiceSubcategory", "SubAccountId", "SubAccountName", "Tags")
NOT_NULL = ("BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
            "BillingPeriodStart", "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost",
            "EffectiveCost", "InvoiceIssuerName", "ListCost", "ProviderName", "PublisherName", "ServiceCategory",
            "ServiceName", "ChargeFrequency", "ServiceSubcategory")
DECIMALS = ("BilledCost", "ConsumedQuantity", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity")
DATES = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
CHARGE_FREQUENCIES = {"One-Time", "Recurring", "Usage-Based"}
SUBCATEGORIES = {"AI and Machine Learning": {"AI Platforms", "Bots", "Generative AI", "Machine Learning",
                                             "Natural Language Processing", "Other (AI and Machine Learning)"}}
UNITS = {"Tokens", "1000 Tokens", "Seconds", "Minutes", "Hours", "GiB-Hours", "Images", "Characters", "Count"}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
DECIMAL = re.compile(r"-?\d+\.\d+")
QUOTED_EMPTY = re.compile(r'(^|,)""(,|$)', re.MULTILINE)


def read(text: str) -> tuple[list[str], list[dict[str, str | None]]]:
    """The header and the rows, with empty fields as None (null)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    rows = [{name: (value if value != "" else None) for name, value in zip(header, line, strict=True)}
            for line in reader]
    return header, rows


def when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def assert_focus_rules(text: str) -> list[dict[str, str | None]]:
    """Every rule a FOCUS 1.2 file of OpenAI costs must keep; the rows."""
    assert not QUOTED_EMPTY.search(text), 'a value written as "" (null is an empty unquoted field)'
    header, rows = read(text)
    # (1) the columns: Mandatory and relevant Recommended present, custom ones x_ and last
    assert len(set(header)) == len(header)
    assert set(MANDATORY) <= set(header) and set(RECOMMENDED) <= set(header)
    custom = [i for i, name in enumerate(header) if name not in MANDATORY + RECOMMENDED]
    assert all(header[i].startswith("x_") for i in custom), header
    assert custom == list(range(len(header) - len(custom), len(header))), "custom columns come last"
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+|x_[A-Za-z]+", name) for name in header)
    service_category_of: dict[str, str] = {}
    for row in rows:
        # (2) nulls
        for name in NOT_NULL:
            assert row[name] is not None, (name, row)
        for name, value in row.items():
            assert value is None or (value.strip() == value and value.strip() and value != "NULL"), (name, value)
        # (3) dates
        for name in DATES:
            assert DATE.fullmatch(row[name] or ""), (name, row[name])
        charge_start, charge_end = when(row["ChargePeriodStart"]), when(row["ChargePeriodEnd"])  # type: ignore[arg-type]
        billing_start, billing_end = when(row["BillingPeriodStart"]), when(row["BillingPeriodEnd"])  # type: ignore[arg-type]
        assert charge_start < charge_end and billing_start < billing_end
        month_start = charge_start.replace(day=1, hour=0, minute=0, second=0)
        next_month = datetime(month_start.year + month_start.month // 12, month_start.month % 12 + 1, 1, tzinfo=UTC)
        assert (billing_start, billing_end) == (month_start, next_month), row
        assert billing_start <= charge_start and charge_end <= billing_end
        # (4) decimals
        for name in DECIMALS + ("x_OpenAIQuantity",):
            if row.get(name) is not None:
                assert DECIMAL.fullmatch(row[name]), (name, row[name])  # type: ignore[arg-type]
        # (5) allowed values
        assert row["ChargeCategory"] in CHARGE_CATEGORIES
        assert row["ChargeClass"] in (None, "Correction")
        assert row["ChargeFrequency"] in CHARGE_FREQUENCIES
        assert row["ServiceSubcategory"] in SUBCATEGORIES[row["ServiceCategory"]]  # type: ignore[index]
        assert re.fullmatch(r"[A-Z]{3}", row["BillingCurrency"] or "")
        assert row["PricingUnit"] in UNITS | {None} and row["ConsumedUnit"] in UNITS | {None}
        # (6) the columns that go together
        assert (row["PricingUnit"] is None) == (row["PricingQuantity"] is None)
        assert (row["ConsumedUnit"] is None) == (row["ConsumedQuantity"] is None)
        assert (row["SubAccountName"] is None) == (row["SubAccountId"] is None)
        assert (row["ResourceType"] is None) == (row["ResourceId"] is None)
        assert row["ResourceId"] is not None or row["ResourceName"] is None
        assert row["ResourceName"] is None or row["ResourceName"] != row["ResourceId"], "a name is never the id"
        assert service_category_of.setdefault(row["ServiceName"], row["ServiceCategory"]) == row["ServiceCategory"]  # type: ignore[arg-type]
        if row["ChargeCategory"] == "Usage" and row["ChargeClass"] is None:
            assert row["PricingQuantity"] is not None and row["ConsumedQuantity"] is not None
        assert row["InvoiceId"] is None, "the costs API names no invoice"
        # (7) no commitments, discounts in the billed cost; and OpenAI gives one price
        assert row["BilledCost"] == row["EffectiveCost"] == row["ContractedCost"]
        if row["ProviderName"] == "OpenAI":
            assert row["ListCost"] == row["BilledCost"]
        # (9) tags: a JSON object of scalars, unique keys, orgproxy's prefix
        if row["Tags"] is not None:
            pairs = json.loads(row["Tags"], object_pairs_hook=list)
            assert isinstance(pairs, list) and len({k for k, _ in pairs}) == len(pairs)
            for key, value in pairs:
                assert key.startswith("orgproxy/"), key
                assert value is None or isinstance(value, (str, int, float, bool)), (key, value)
    return rows


def assert_round_trip(rows: list[dict[str, str | None]], pages: list[dict[str, Any]]) -> None:
    """(8) One row per result, in order; per day, the billed costs add up exactly to the
    pages' amounts (``pages`` read with parse_float=Decimal)."""
    results = [(bucket, result) for page in pages for bucket in page["data"] for result in bucket["results"]]
    assert len(rows) == len(results)
    by_day: dict[str, Decimal] = defaultdict(Decimal)
    want: dict[str, Decimal] = defaultdict(Decimal)
    for row, (bucket, result) in zip(rows, results):
        assert when(row["ChargePeriodStart"]).timestamp() == bucket["start_time"]  # type: ignore[arg-type]
        assert Decimal(row["BilledCost"]) == Decimal(result["amount"]["value"])  # type: ignore[arg-type]
        by_day[row["ChargePeriodStart"]] += Decimal(row["BilledCost"])  # type: ignore[index, arg-type]
        want[row["ChargePeriodStart"]] += Decimal(result["amount"]["value"])  # type: ignore[index]
    assert by_day == want
