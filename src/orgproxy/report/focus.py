"""OpenAI's costs as FOCUS 1.2, the FinOps Foundation's open billing format: one
Cost-and-Usage row per bucket and result, as CSV, with the metadata that describes it.

The mapping: OpenAI invoices the organization (the billing account, named by the user:
the costs API carries no organization id); projects are sub accounts; API keys are
resources (``ResourceName`` the key's name, null where nobody named it, never the id);
``line_item`` is the charge's description; ``quantity``/``quantity_unit`` are the
consumed and pricing quantities (1 Count where OpenAI gives no unit); the list,
contracted and effective costs are the billed cost (OpenAI exposes no other price).
What orgproxy knows beyond the names (the key's redacted value, its owner, that the Admin
API no longer lists it) goes in ``Tags`` with the ``orgproxy/`` prefix.

Amounts are read as Decimal and written as exact decimals, always with a decimal point
and never in exponent form; times are ``YYYY-MM-DDTHH:mm:ssZ``. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orgproxy.report.csvtext import csv_text
from orgproxy.report.errors import ReportError
from orgproxy.text import without_surrogates

FOCUS_VERSION = "1.2"
COSTS_PATH = "/v1/organization/costs"
# Every dimension, so that each row is one key's one line item in one project on one day.
GROUP_BY = ("project_id", "api_key_id", "line_item")
TAG_PREFIX = "orgproxy/"
PROVIDER = "OpenAI"
UNKNOWN = "unknown"  # what orgproxy names an id nobody named

DECIMAL, STRING, DATETIME, JSON_TYPE = "Decimal", "String", "Date/Time", "JSON"
# (column, FOCUS data type): the FOCUS columns in alphabetical order, then the custom ones.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("BilledCost", DECIMAL),
    ("BillingAccountId", STRING),
    ("BillingAccountName", STRING),
    ("BillingCurrency", STRING),
    ("BillingPeriodEnd", DATETIME),
    ("BillingPeriodStart", DATETIME),
    ("ChargeCategory", STRING),
    ("ChargeClass", STRING),
    ("ChargeDescription", STRING),
    ("ChargeFrequency", STRING),
    ("ChargePeriodEnd", DATETIME),
    ("ChargePeriodStart", DATETIME),
    ("ConsumedQuantity", DECIMAL),
    ("ConsumedUnit", STRING),
    ("ContractedCost", DECIMAL),
    ("EffectiveCost", DECIMAL),
    ("InvoiceId", STRING),
    ("InvoiceIssuerName", STRING),
    ("ListCost", DECIMAL),
    ("PricingQuantity", DECIMAL),
    ("PricingUnit", STRING),
    ("ProviderName", STRING),
    ("PublisherName", STRING),
    ("ResourceId", STRING),
    ("ResourceName", STRING),
    ("ResourceType", STRING),
    ("ServiceCategory", STRING),
    ("ServiceName", STRING),
    ("ServiceSubcategory", STRING),
    ("SubAccountId", STRING),
    ("SubAccountName", STRING),
    ("Tags", JSON_TYPE),
    # OpenAI's own quantity and unit, as sent (the FOCUS ones fall back to 1 Count).
    ("x_OpenAIQuantity", DECIMAL),
    ("x_OpenAIQuantityUnit", STRING),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)

# OpenAI's quantity_unit -> FOCUS's unit format.
UNITS = {"tokens": "Tokens", "1000_tokens": "1000 Tokens", "duration_seconds": "Seconds",
         "duration_minutes": "Minutes", "duration_hours": "Hours", "gibibyte_hours": "GiB-Hours",
         "images": "Images", "characters": "Characters"}
NO_UNIT = "Count"
_CURRENCY = re.compile(r"[A-Za-z]{3}")

Row = dict[str, Any]  # column -> Decimal, str, datetime, dict (Tags) or None


@dataclass(frozen=True)
class BillingAccount:
    """The organization OpenAI invoices, as the user names it."""

    id: str
    name: str


def focus_rows(buckets: Iterable[Any], account: BillingAccount) -> Iterator[Row]:
    """One row per result of every bucket, in page order; ReportError for a page that is
    not shaped like OpenAI's. Amounts must have been read as Decimal."""
    for bucket in buckets:
        start, end = _bucket_times(bucket)
        for result in bucket["results"]:
            yield _row(result, start, end, account)


def _bucket_times(bucket: Any) -> tuple[datetime, datetime]:
    if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
        raise ReportError(f"{COSTS_PATH}: a bucket without results")
    times = bucket.get("start_time"), bucket.get("end_time")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times) or not times[0] < times[1]:
        raise ReportError(f"{COSTS_PATH}: a bucket without start_time and end_time")
    try:
        return datetime.fromtimestamp(times[0], UTC), datetime.fromtimestamp(times[1], UTC)
    except (OverflowError, OSError, ValueError):
        raise ReportError(f"{COSTS_PATH}: a bucket's time is out of range") from None


def _row(result: Any, start: datetime, end: datetime, account: BillingAccount) -> Row:
    if not isinstance(result, dict):
        raise ReportError(f"{COSTS_PATH}: a result that is not an object")
    amount = result.get("amount")
    value = amount.get("value") if isinstance(amount, dict) else None
    currency = amount.get("currency") if isinstance(amount, dict) else None
    if not _is_decimal(value):
        raise ReportError(f"{COSTS_PATH}: a result without a number in amount.value")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ReportError(f"{COSTS_PATH}: a result without a currency code in amount.currency")
    cost = Decimal(value)
    quantity, unit = result.get("quantity"), result.get("quantity_unit")
    raw_quantity = Decimal(quantity) if _is_decimal(quantity) else None
    if raw_quantity is not None and unit in UNITS:
        consumed, consumed_unit = raw_quantity, UNITS[unit]
    else:
        consumed, consumed_unit = Decimal(1), NO_UNIT
    key_id = _text(result.get("api_key_id_original")) or _text(result.get("api_key_id"))
    project_id = _text(result.get("project_id_original")) or _text(result.get("project_id"))
    key_name = _text(result.get("api_key_name"))
    project_name = _text(result.get("project_name"))
    billing_start = start.replace(day=1, hour=0, minute=0, second=0)
    billing_end = billing_start.replace(year=billing_start.year + billing_start.month // 12,
                                        month=billing_start.month % 12 + 1)
    return {
        "BilledCost": cost,
        "BillingAccountId": account.id,
        "BillingAccountName": account.name,
        "BillingCurrency": currency.upper(),
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": "Usage",  # refunds too: Usage may be negative
        "ChargeClass": None,  # the API marks no corrections
        "ChargeDescription": _text(result.get("line_item")) or "OpenAI API usage",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": end,
        "ChargePeriodStart": start,
        "ConsumedQuantity": consumed,
        "ConsumedUnit": consumed_unit,
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceId": None,  # the costs API names no invoice
        "InvoiceIssuerName": PROVIDER,
        "ListCost": cost,
        "PricingQuantity": consumed,
        "PricingUnit": consumed_unit,
        "ProviderName": PROVIDER,
        "PublisherName": PROVIDER,
        "ResourceId": key_id,
        "ResourceName": key_name if key_id is not None and key_name != UNKNOWN else None,
        "ResourceType": "API Key" if key_id is not None else None,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": "OpenAI API",
        "ServiceSubcategory": "Generative AI",
        "SubAccountId": project_id,
        "SubAccountName": (project_name if project_name not in (None, UNKNOWN) else project_id)
        if project_id is not None else None,
        "Tags": _tags(result) if key_id is not None else None,
        "x_OpenAIQuantity": raw_quantity,
        "x_OpenAIQuantityUnit": _text(unit),
    }


def _tags(result: dict[str, Any]) -> dict[str, Any] | None:
    """What orgproxy adds about the key beyond its name; None when it added nothing."""
    tags: dict[str, Any] = {}
    for tag, field in (("redacted_value", "api_key_redacted_value"), ("owner", "api_key_owner_name")):
        if _text(result.get(field)):
            tags[TAG_PREFIX + tag] = result[field]
    if result.get("api_key_deleted") is True:
        tags[TAG_PREFIX + "deleted"] = True
    return tags or None


def _is_decimal(value: object) -> bool:
    return (isinstance(value, (int, Decimal)) and not isinstance(value, bool)
            and Decimal(value).is_finite())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# --- as text ------------------------------------------------------------------------------------

def decimal_text(value: Decimal) -> str:
    """Fixed-point, with a decimal point: ``120000.0``, ``0.00001``, never ``1E-5``."""
    text = format(value, "f")
    return text if "." in text else text + ".0"


def time_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def cell(value: Any) -> str | None:
    """A value as FOCUS writes it in text; None for null. Text is kept exactly, but for a
    lone surrogate (JSON can carry one in a name, UTF-8 cannot): U+FFFD."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, dict):
        return without_surrogates(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return without_surrogates(str(value))


def as_csv(rows: Iterable[Row]) -> str:
    """A header of column ids, then every row; null is an empty unquoted field (RFC 4180
    quoting otherwise: line items hold commas, names may hold a CR). Every value exactly
    as it is: machines read it."""
    return csv_text([COLUMN_NAMES, *([cell(row[name]) for name in COLUMN_NAMES] for row in rows)])


# --- metadata -----------------------------------------------------------------------------------

# The column list's own id: the same columns, the same SchemaId.
SCHEMA_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "orgproxy:focus:" + FOCUS_VERSION + ":" + ",".join(
    f"{name}={kind}" for name, kind in COLUMNS)))


def metadata(rows: list[Row], created: datetime, generator: str) -> dict[str, Any]:
    """FOCUS's schema metadata for a file of ``rows``: the version, when and by what it
    was made, and each column's definition."""
    definitions = []
    for name, kind in COLUMNS:
        definition: dict[str, Any] = {"ColumnName": name, "DataType": kind.upper().replace("/", "")}
        if kind == STRING:
            definition["StringEncoding"] = "UTF-8"
            if name == "ChargeDescription":
                definition["StringMaxLength"] = max((len(row[name]) for row in rows), default=0)
        if kind == JSON_TYPE:
            definition["ProviderTagPrefixes"] = [TAG_PREFIX]
        definitions.append(definition)
    return {"SchemaId": SCHEMA_ID, "FocusVersion": FOCUS_VERSION, "CreationDate": time_text(created),
            "DataGenerator": generator, "ColumnDefinition": definitions}
