"""Anthropic's costs (the Usage and Cost Analytics API's ``/v1/organizations/analytics/cost``,
grouped by key, workspace, model, cost type, token type, service tier and context window,
with orgproxy's names in each row's ``group``) read into charges.

Anthropic invoices the organization (``GET /v1/organizations/me``, or as the user names it);
workspaces are sub accounts (the Default Workspace arrives as a null ``workspace_id``: no
sub account); API keys are resources (the Console's usage, with a null ``api_key_id``,
none). Amounts are decimal strings of cents: the billed cost is ``amount`` ÷ 100 (after
discounts, before credits), the list cost ``list_amount`` ÷ 100, both exact. The cost
endpoint gives no quantity: each charge counts as one. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from orgproxy.report.amounts import decimal_of
from orgproxy.report.focus_charge import ANTHROPIC, NO_UNIT, BillingAccount, Charge, named, refuse, text_of

# Every dimension a price depends on, so that each row is one key's one charge on one day.
GROUP_BY = ("api_key_id", "workspace_id", "model", "cost_type", "token_type", "service_tier", "context_window")
_ENDPOINT = ANTHROPIC.endpoint
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def anthropic_charges(rows: Iterable[Any], account: BillingAccount) -> Iterator[Charge]:
    """One charge per row, in page order; ReportError for a row not shaped like Anthropic's."""
    for row in rows:
        yield _charge(row, account)


def _charge(row: Any, account: BillingAccount) -> Charge:
    if not isinstance(row, dict) or not isinstance(row.get("group"), dict) or not isinstance(row.get("cost"), dict):
        raise refuse(_ENDPOINT, "a row without group and cost objects")
    start, end = _time(row.get("starting_at")), _time(row.get("ending_at"))
    if not start < end:
        raise refuse(_ENDPOINT, "a row that ends before it starts")
    group, cost = row["group"], row["cost"]
    cents = decimal_of(cost.get("amount"))
    if cents is None:
        raise refuse(_ENDPOINT, "a row without a decimal amount in cost.amount")
    listed_cents = decimal_of(cost.get("list_amount"))
    currency = cost.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise refuse(_ENDPOINT, "a row without a currency code in cost.currency")
    key_id = text_of(group.get("api_key_id_original")) or text_of(group.get("api_key_id"))
    workspace_id = text_of(group.get("workspace_id_original")) or text_of(group.get("workspace_id"))
    model, cost_type, token_type = (text_of(group.get(f)) for f in ("model", "cost_type", "token_type"))
    tier, window = text_of(group.get("service_tier")), text_of(group.get("context_window"))
    sku = ":".join(["anthropic", *(part for part in (model, cost_type, token_type) if part)])
    billed = cents.scaleb(-2)  # cents to dollars, exactly
    return Charge(
        vendor=ANTHROPIC, account=account, start=start, end=end, billed=billed,
        listed=listed_cents.scaleb(-2) if listed_cents is not None else billed,
        currency=currency.upper(), description=_description(model, cost_type, token_type),
        quantity=Decimal(1), unit=NO_UNIT,
        key_id=key_id, key_name=named(group.get("api_key_name")) if key_id is not None else None,
        sub_account_id=workspace_id,
        sub_account_name=(named(group.get("workspace_name")) or workspace_id) if workspace_id is not None else None,
        sku=sku, sku_price=":".join([sku, *(part for part in (tier, window) if part)]), tags=None,
        source_amount=cents, source_amount_unit=f"{currency} cents", source_list_amount=listed_cents,
        source_quantity=None, source_quantity_unit=None,
        model=model, cost_type=cost_type, token_type=token_type, service_tier=tier, context_window=window)


def _description(model: str | None, cost_type: str | None, token_type: str | None) -> str:
    """``claude-sonnet-4-5: tokens / uncached_input_tokens``, ``web_search``, ..."""
    what = " / ".join(part for part in (cost_type, token_type) if part)
    if model and what:
        return f"{model}: {what}"
    return model or what or ANTHROPIC.description


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise refuse(_ENDPOINT, "a row without RFC 3339 starting_at and ending_at")
    return _parsed(value)


@lru_cache(maxsize=4096)  # every row of a day has the same two times
def _parsed(value: str) -> datetime:
    if not _TIME.fullmatch(value):
        raise refuse(_ENDPOINT, "a row without RFC 3339 starting_at and ending_at")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise refuse(_ENDPOINT, "a row's time is out of range") from None
