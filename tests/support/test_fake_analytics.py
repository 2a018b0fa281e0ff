"""The analytics fake answers exactly as the reference's examples show: for each example, a
ledger with one entry per row of it, asked the request the example answers, gives the
example's rows back (and its pages, for the two-page one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.support.fake_analytics import BETA, COST, USAGE, AnalyticsApi, Entry

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-admin-api" / "analytics"
HEADERS = {"anthropic-beta": BETA}
# example -> the request it answers (from the reference's notes on the examples)
REQUESTS = {
    "03-cost-by-api-key-workspace-cost-type.json":
        (COST, "starting_at=2026-09-29T00:00:00Z&ending_at=2026-09-30T00:00:00Z&time_bucket_width=1d"
               "&group_by[]=api_key_id&group_by[]=workspace_id&group_by[]=cost_type"),
    "04-cost-console-usage-default-workspace.json":
        (COST, "starting_at=2026-09-29T00:00:00Z&ending_at=2026-09-30T00:00:00Z&time_bucket_width=1d"
               "&group_by[]=api_key_id&group_by[]=workspace_id"),
    "05-usage-by-api-key-model-daily.json":
        (USAGE, "starting_at=2026-09-29T00:00:00Z&ending_at=2026-09-30T00:00:00Z&time_bucket_width=1d"
                "&group_by[]=api_key_id&group_by[]=model"),
    "08-cost-by-actor-month.json":
        (COST, "starting_at=2026-09-01T00:00:00Z&ending_at=2026-10-01T00:00:00Z&group_by[]=actor"),
}
TWO_PAGES = "starting_at=2026-09-28T00:00:00Z&ending_at=2026-09-30T00:00:00Z&time_bucket_width=1d" \
            "&group_by[]=api_key_id&limit=3"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def entry_of(row: dict[str, Any]) -> Entry:
    """The ledger entry that alone makes ``row``."""
    dimensions = {k: v for k, v in row["group"].items() if v is not None}
    day = row["starting_at"][:10]
    if "cost" in row:
        cost = row["cost"]
        return Entry(day, dimensions, cost["amount"], cost["list_amount"], cost["requests"] or 0)
    usage = row["usage"]
    tokens = {k: v for k, v in usage.items() if isinstance(v, int) and k not in ("requests", "total_tokens")}
    tokens.update(usage["cache_creation"])
    tokens.update(usage["server_tool_use"])
    return Entry(day, dimensions, requests=usage["requests"], tokens=tokens)


def ask(api: AnalyticsApi, path: str, query: str) -> tuple[int, dict[str, Any]]:
    return api.answer(path, parse_qsl(query, keep_blank_values=True), HEADERS)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_each_example_is_what_its_request_gets(name: str) -> None:
    shown = example(name)
    path, query = REQUESTS[name]
    entries = [entry_of(row) for row in shown["data"]]
    api = AnalyticsApi(costs=entries if path == COST else [], usage=entries if path == USAGE else [])
    status, body = ask(api, path, query)
    assert status == 200
    assert body["data"] == shown["data"]
    assert (body["has_more"], body["next_page"]) == (False, None)


def test_rows_page_by_limit_with_a_cursor_of_that_query_only() -> None:
    rows = example("01-cost-by-api-key-daily-page1.json")["data"] + example("02-cost-by-api-key-daily-page2.json")["data"]
    api = AnalyticsApi(costs=[entry_of(row) for row in rows])
    status, first = ask(api, COST, TWO_PAGES)
    assert status == 200 and first["has_more"] is True
    assert first["data"] == example("01-cost-by-api-key-daily-page1.json")["data"]
    status, second = ask(api, COST, TWO_PAGES + "&page=" + first["next_page"])
    assert status == 200
    assert second["data"] == example("02-cost-by-api-key-daily-page2.json")["data"]
    assert (second["has_more"], second["next_page"]) == (False, None)
    status, other = ask(api, COST, TWO_PAGES.replace("limit=3", "limit=2") + "&page=" + first["next_page"])
    assert status == 400 and other["error"]["type"] == "invalid_request_error"


def test_entries_of_one_combination_are_summed_exactly_and_requests_are_null_by_cost_type() -> None:
    key = "apikey_01Rj2N8SVvo6BePZj99NhmiT"
    api = AnalyticsApi(costs=[Entry("2026-09-29", {"api_key_id": key, "cost_type": "tokens"}, "0.1", requests=2),
                              Entry("2026-09-29", {"api_key_id": key, "cost_type": "web_search"}, "0.2", "0.25", 3)])
    query = "starting_at=2026-09-29T00:00:00Z&ending_at=2026-09-30T00:00:00Z&time_bucket_width=1d"
    _, by_key = ask(api, COST, query + "&group_by[]=api_key_id")
    assert [row["cost"] for row in by_key["data"]] == [
        {"amount": "0.3", "currency": "USD", "list_amount": "0.35", "requests": 5}]
    _, by_type = ask(api, COST, query + "&group_by[]=api_key_id&group_by[]=cost_type")
    assert [row["cost"]["requests"] for row in by_type["data"]] == [None, None]


@pytest.mark.parametrize(("query", "headers"), [
    ("starting_at=2026-09-29T00:00:00Z", {}),  # no beta header
    ("starting_at=2025-12-31T00:00:00Z", HEADERS),  # before 2026-01-01
    ("ending_at=2026-09-30T00:00:00Z", HEADERS),  # no starting_at
    ("starting_at=2026-09-29T00:00:00Z&group_by=api_key_id", HEADERS),  # not the bracket spelling
    ("starting_at=2026-09-29T00:00:00Z&group_by[]=cost_type", HEADERS),  # usage has no cost_type
    ("starting_at=2026-09-29T00:00:00", HEADERS),  # no offset
])
def test_what_the_api_refuses(query: str, headers: dict[str, str]) -> None:
    status, body = AnalyticsApi().answer(USAGE, parse_qsl(query), headers)
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
