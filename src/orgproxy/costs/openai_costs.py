"""OpenAI's costs per key and project: ``/v1/organization/costs`` grouped by ``api_key_id``
and ``project_id`` in daily buckets, its dollars read as the decimals they are sent as."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from orgproxy.jsonvalues import refuse_constant
from orgproxy.costs.figures import Figures, Totals
from orgproxy.costs.pages import walk_pages
from orgproxy.costs.window import Window
from orgproxy.money import decimal_text, exact
from orgproxy.upstream.admin_pages import AdminApiFailed, Fetch, Page, text

PROVIDER = "openai"
PATH = "/v1/organization/costs"


def query(window: Window) -> list[tuple[str, str]]:
    return [("start_time", str(window.start_time)), ("end_time", str(window.end_time)),
            ("bucket_width", "1d"), ("limit", str(window.days)),
            ("group_by", "api_key_id"), ("group_by", "project_id")]


def add_page(totals: Totals, page: Page, window: Window) -> None:
    """Every USD amount of a costs page added into ``totals``; AdminApiFailed for a page
    whose shape is not OpenAI's."""
    for bucket in page["data"]:
        if not isinstance(bucket, dict) or not isinstance(bucket.get("start_time"), int) \
                or not isinstance(bucket.get("results"), list):
            raise AdminApiFailed(f"{PATH}: a bucket without start_time or results")
        start = bucket["start_time"]
        for row in bucket["results"]:
            amount = row.get("amount") if isinstance(row, dict) else None
            dollars = _dollars(amount.get("value")) if isinstance(amount, dict) else None
            if dollars is None:
                raise AdminApiFailed(f"{PATH}: a result without amount.value")
            if str(amount.get("currency", "usd")).lower() != "usd":  # type: ignore[union-attr]
                continue  # the series are in dollars; OpenAI bills in dollars
            pair = (text(row.get("api_key_id")), text(row.get("project_id")))
            totals.setdefault(pair, Figures()).add_bucket(dollars, window, start)


def _dollars(value: Any) -> Decimal | None:
    """A JSON number as sent (read as a Decimal), or a decimal string (as users have seen)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return exact(value)
    return decimal_text(value)


def _decode(body: bytes) -> Any:
    return json.loads(body, parse_float=Decimal, parse_constant=refuse_constant)


async def fetch_costs(fetch: Fetch, window: Window) -> Totals:
    """The window's costs per (key, project), walking every ``next_page``."""
    totals: Totals = {}
    await walk_pages(fetch, PATH, query(window), lambda page: add_page(totals, page, window), _decode)
    return totals
