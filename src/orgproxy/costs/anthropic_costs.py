"""Anthropic's billed costs per key and workspace, from its Usage and Cost Analytics API
(beta): ``/v1/organizations/analytics/cost`` grouped by ``api_key_id`` and ``workspace_id``
in daily buckets, every page. Its amounts are decimal strings of cents: dollars are those
divided by 100, exactly. A null key is the Console's usage, a null workspace the Default
Workspace (the request groups by both)."""

from __future__ import annotations

from orgproxy.costs.figures import Figures, Totals
from orgproxy.costs.pages import walk_pages
from orgproxy.costs.window import Window, posix, rfc3339
from orgproxy.money import cents_to_dollars, decimal_text
from orgproxy.upstream.admin_pages import AdminApiFailed, Fetch, Page, text

PROVIDER = "anthropic"
PATH = "/v1/organizations/analytics/cost"
# The beta the API asks for, sent (with anthropic-version) by the cost refresh's client.
BETA = b"analytics-usage-cost-2026-08-24"


def query(window: Window) -> list[tuple[str, str]]:
    """From the window's first day (at most 31 days ago); no ``ending_at``: the API then
    ends at the earlier of now and 31 days on, which is today's bucket, so far."""
    return [("starting_at", rfc3339(window.start_time)), ("time_bucket_width", "1d"),
            ("group_by[]", "api_key_id"), ("group_by[]", "workspace_id")]


def add_page(totals: Totals, page: Page, window: Window) -> None:
    """Every USD amount of an analytics cost page added into ``totals`` (in dollars);
    AdminApiFailed for a row whose shape is not the API's."""
    for row in page["data"]:
        start = posix(row.get("starting_at")) if isinstance(row, dict) else None
        group, cost = (row.get("group"), row.get("cost")) if isinstance(row, dict) else (None, None)
        if start is None or not isinstance(group, dict) or not isinstance(cost, dict):
            raise AdminApiFailed(f"{PATH}: a row without starting_at, group or cost")
        cents = decimal_text(cost.get("amount"))
        if cents is None:
            raise AdminApiFailed(f"{PATH}: a row without cost.amount")
        if str(cost.get("currency", "USD")).upper() != "USD":
            continue  # the series are in dollars; Anthropic bills in dollars
        pair = (text(group.get("api_key_id")), text(group.get("workspace_id")))
        totals.setdefault(pair, Figures()).add_bucket(cents_to_dollars(cents), window, start)


async def fetch_costs(fetch: Fetch, window: Window) -> Totals:
    """The window's costs per (key, workspace), walking every ``next_page``."""
    totals: Totals = {}
    await walk_pages(fetch, PATH, query(window), lambda page: add_page(totals, page, window))
    return totals
