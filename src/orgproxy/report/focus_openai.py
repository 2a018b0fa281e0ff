"""OpenAI's costs (``/v1/organization/costs``, grouped by project, key and line item, with
orgproxy's names beside the ids) read into charges.

OpenAI invoices the organization (the billing account, named by the user: the costs API
carries no organization id); projects are sub accounts; API keys are resources (named
only where a name is known, never by the id); ``line_item`` is what was charged;
``quantity``/``quantity_unit`` what was consumed (1 Count where OpenAI gives no unit); the
list and contracted costs are the billed cost (OpenAI exposes no other price). What
orgproxy knows beyond the names (the key's redacted value, its owner, that the Admin API
no longer lists it) goes in the tags, with the ``orgproxy/`` prefix. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orgproxy.report.amounts import decimal_of
from orgproxy.report.focus_charge import NO_UNIT, OPENAI, BillingAccount, Charge, named, refuse, text_of

# Every dimension, so that each row is one key's one line item in one project on one day.
GROUP_BY = ("project_id", "api_key_id", "line_item")
TAG_PREFIX = "orgproxy/"
# OpenAI's quantity_unit -> FOCUS's unit format.
UNITS = {"tokens": "Tokens", "1000_tokens": "1000 Tokens", "duration_seconds": "Seconds",
         "duration_minutes": "Minutes", "duration_hours": "Hours", "gibibyte_hours": "GiB-Hours",
         "images": "Images", "characters": "Characters"}
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_ENDPOINT = OPENAI.endpoint


def openai_charges(buckets: Iterable[Any], account: BillingAccount) -> Iterator[Charge]:
    """One charge per result of every bucket, in page order; ReportError for a page that
    is not shaped like OpenAI's. Amounts must have been read as Decimal."""
    for bucket in buckets:
        start, end = _bucket_times(bucket)
        for result in bucket["results"]:
            yield _charge(result, start, end, account)


def _bucket_times(bucket: Any) -> tuple[datetime, datetime]:
    if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
        raise refuse(_ENDPOINT, "a bucket without results")
    times = bucket.get("start_time"), bucket.get("end_time")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times) or not times[0] < times[1]:
        raise refuse(_ENDPOINT, "a bucket without start_time and end_time")
    try:
        return datetime.fromtimestamp(times[0], UTC), datetime.fromtimestamp(times[1], UTC)
    except (OverflowError, OSError, ValueError):
        raise refuse(_ENDPOINT, "a bucket's time is out of range") from None


def _charge(result: Any, start: datetime, end: datetime, account: BillingAccount) -> Charge:
    if not isinstance(result, dict):
        raise refuse(_ENDPOINT, "a result that is not an object")
    amount = result.get("amount")
    cost = decimal_of(amount.get("value")) if isinstance(amount, dict) else None
    currency = amount.get("currency") if isinstance(amount, dict) else None
    if cost is None:
        raise refuse(_ENDPOINT, "a result without a number in amount.value")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise refuse(_ENDPOINT, "a result without a currency code in amount.currency")
    quantity = result.get("quantity")
    raw_quantity = decimal_of(quantity) if not isinstance(quantity, str) else None
    unit = result.get("quantity_unit")
    if raw_quantity is not None and unit in UNITS:
        consumed, consumed_unit = raw_quantity, UNITS[unit]
    else:
        consumed, consumed_unit = Decimal(1), NO_UNIT
    key_id = text_of(result.get("api_key_id_original")) or text_of(result.get("api_key_id"))
    project_id = text_of(result.get("project_id_original")) or text_of(result.get("project_id"))
    line_item = text_of(result.get("line_item"))
    sku = "openai:" + (line_item or "usage")
    return Charge(
        vendor=OPENAI, account=account, start=start, end=end, billed=cost, listed=cost,
        currency=currency.upper(), description=line_item or OPENAI.description,
        quantity=consumed, unit=consumed_unit,
        key_id=key_id, key_name=named(result.get("api_key_name")) if key_id is not None else None,
        sub_account_id=project_id,
        # FOCUS wants a name beside every sub account id: the id where nobody named it.
        sub_account_name=(named(result.get("project_name")) or project_id) if project_id is not None else None,
        sku=sku, sku_price=sku, tags=_tags(result) if key_id is not None else None,
        source_amount=cost, source_amount_unit=currency, source_list_amount=None,
        source_quantity=raw_quantity, source_quantity_unit=text_of(unit))


def _tags(result: dict[str, Any]) -> dict[str, Any] | None:
    """What orgproxy adds about the key beyond its name; None when it added nothing."""
    tags: dict[str, Any] = {}
    for tag, field in (("redacted_value", "api_key_redacted_value"), ("owner", "api_key_owner_name")):
        if text_of(result.get(field)):
            tags[TAG_PREFIX + tag] = result[field]
    if result.get("api_key_deleted") is True:
        tags[TAG_PREFIX + "deleted"] = True
    return tags or None
