"""The usage and cost reports of the fake Anthropic (``usage_report/messages``,
``cost_report``), made from its organization's ledgers: one bucket per day, paged by token,
rows grouped by the ``group_by[]`` dimensions (arrays only in the bracket spelling), and
every query the reference would refuse a ``BadRequest``."""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

MESSAGE_DIMENSIONS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo",
                      "account_id", "service_account_id")
COST_DIMENSIONS = ("workspace_id", "description")
# What grouping by description fills in besides the description.
DESCRIBED = ("cost_type", "model", "service_tier", "token_type", "context_window", "inference_geo")
MESSAGE_FILTERS = {"api_key_ids[]": "api_key_id", "workspace_ids[]": "workspace_id", "account_ids[]": "account_id",
                   "service_account_ids[]": "service_account_id", "models[]": "model"}
ARRAYS = ("group_by", *(name.removesuffix("[]") for name in MESSAGE_FILTERS))


class BadRequest(Exception):
    """A request the API refuses with 400 invalid_request_error."""


def messages_report(usage: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``usage_report/messages`` over the ledger ``usage``."""
    grouped, filters = _arrays(pairs, MESSAGE_DIMENSIONS)
    entries = [e for e in usage
               if all(e.get(MESSAGE_FILTERS[name]) in wanted for name, wanted in filters.items())]

    def rows(day_entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for e in day_entries:
            key = tuple(e.get(d) for d in grouped)
            row = out.setdefault(key, _message_row({d: e.get(d) for d in grouped}))
            row["uncached_input_tokens"] += e.get("uncached_input_tokens", 0)
            row["output_tokens"] += e.get("output_tokens", 0)
            row["cache_read_input_tokens"] += e.get("cache_read_input_tokens", 0)
            for name, value in e.get("cache_creation", {}).items():
                row["cache_creation"][name] += value
            row["server_tool_use"]["web_search_requests"] += e.get("web_search_requests", 0)
        return list(out.values())
    return _paged_buckets(dict(pairs), entries, rows)


def cost_report(costs: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``cost_report`` over the ledger ``costs``."""
    grouped, filters = _arrays(pairs, COST_DIMENSIONS)
    if filters:
        raise BadRequest("the cost report has no id filters")

    def rows(day_entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for e in day_entries:
            key = tuple(e.get(d) for d in grouped)
            row = out.get(key)
            if row is None:
                row = out[key] = {"amount": "0", "context_window": None, "cost_type": None, "currency": "USD",
                                  "description": None, "inference_geo": None, "model": None,
                                  "service_tier": None, "token_type": None, "workspace_id": None}
                row.update({d: e.get(d) for d in grouped})
                if "description" in grouped:
                    row.update({d: e.get(d) for d in DESCRIBED})
            row["amount"] = format(Decimal(row["amount"]) + Decimal(e["amount"]), "f")
        return list(out.values())
    return _paged_buckets(dict(pairs), costs, rows)


def whole_number(text: str, name: str, least: int, most: int) -> int:
    """A query's number, from ``least`` to ``most``."""
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: not an integer") from None
    if not least <= value <= most:
        raise BadRequest(f"{name}: must be between {least} and {most}")
    return value


def _arrays(pairs: list[tuple[str, str]], dimensions: tuple[str, ...]) -> tuple[list[str], dict[str, set[str]]]:
    """(the group_by[] dimensions in order, the filters given); only the bracket spelling."""
    grouped: list[str] = []
    filters: dict[str, set[str]] = {}
    for name, value in pairs:
        if name in ARRAYS:
            raise BadRequest(f"{name}: arrays are written {name}[]=")
        if name == "group_by[]":
            if value not in dimensions:
                raise BadRequest(f"group_by[]: unknown value {value!r}")
            if value not in grouped:
                grouped.append(value)
        elif name in MESSAGE_FILTERS:
            filters.setdefault(name, set()).add(value)
    return grouped, filters


def _message_row(dimensions: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": None, "api_key_id": None,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "cache_read_input_tokens": 0, "context_window": None, "inference_geo": None, "model": None,
        "output_tokens": 0, "server_tool_use": {"web_search_requests": 0}, "service_account_id": None,
        "service_tier": None, "uncached_input_tokens": 0, "workspace_id": None,
    }
    row.update(dimensions)
    return row


def _day(text: str, name: str) -> date:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        raise BadRequest(f"{name}: not an RFC 3339 time") from None


def page_token(index: int) -> str:
    """A page token as Anthropic's look (``page_...=``), naming the first bucket of the page."""
    return "page_" + base64.b64encode(f"bucket {index}".encode()).decode()


def _paged_buckets(query: dict[str, str], entries: list[dict[str, Any]], rows: Any) -> dict[str, Any]:
    if "starting_at" not in query:
        raise BadRequest("starting_at: required")
    if query.get("bucket_width", "1d") != "1d":
        raise BadRequest("bucket_width: the fake knows only 1d")
    limit = whole_number(query.get("limit", "7"), "limit", 1, 31)
    first = _day(query["starting_at"], "starting_at")
    last = _day(query["ending_at"], "ending_at") if "ending_at" in query else first + timedelta(days=limit)
    days = [first + timedelta(days=n) for n in range((last - first).days)]
    start = 0
    if "page" in query:
        tokens = {page_token(i): i for i in range(0, len(days), limit)}
        if query["page"] not in tokens:
            raise BadRequest("page: not a page of this report")
        start = tokens[query["page"]]
    buckets = [{"ending_at": f"{day + timedelta(days=1)}T00:00:00Z",
                "results": rows([e for e in entries if e["day"] == day.isoformat()]),
                "starting_at": f"{day}T00:00:00Z"} for day in days[start:start + limit]]
    more = start + limit < len(days)
    return {"data": buckets, "has_more": more, "next_page": page_token(start + limit) if more else None}
