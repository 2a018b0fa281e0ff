"""Anthropic's Usage and Cost Analytics API (beta), as a pure function of a ledger.

``GET /v1/organizations/analytics/cost`` and ``.../analytics/usage`` answer rows made from
ledger entries, in exactly the shape of the reference's examples
(``tests/fixtures/anthropic-admin-api/analytics/``), by the rules it states:

- the beta header ``anthropic-beta: analytics-usage-cost-2026-08-24`` is required (the fake
  answers 400 without it: the strict reading);
- ``starting_at`` (RFC 3339, required) inclusive, ``ending_at`` exclusive, by default the
  earlier of ``now`` and ``starting_at`` + 31 days; ``starting_at`` must be within the last 365
  days and not before 2026-01-01;
- ``time_bucket_width=1d`` gives one row per day and combination that has data (empty
  combinations are not returned); without it, one row per combination for the whole range;
- ``group_by[]``: every dimension key is present in each row's ``group`` and null unless
  grouped by; the Console's usage has a null ``api_key_id`` and the Default Workspace's a null
  ``workspace_id`` even when grouped by them (the ledger says so with None); ``actor`` is an
  object (a tagged union on ``type``);
- cost rows carry ``amount`` and ``list_amount`` as decimal strings in cents, summed exactly,
  and ``requests``, which is null when grouped by ``cost_type`` or ``token_type``;
- filters: ``api_key_ids[]``, ``workspace_ids[]``, ``models[]``, ``service_tiers[]``,
  ``actor_ids[]`` (the actor's tagged id);
- rows page by ``limit`` (1..1000, by default the API's ``default_limit``, ``DEFAULT_LIMIT``
  unless told), in bucket order then ledger order, with an opaque ``next_page`` cursor that
  only the same query accepts;
- arrays only in the bracket spelling (``group_by[]=a``), as every example writes them;
- errors in Anthropic's shape.

Nothing here does I/O: ``AnalyticsApi.answer`` takes the path, the query pairs and the
headers, and returns (status, body); the fakes serve it in memory and on a socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

PREFIX = "/v1/organizations/analytics"
COST = PREFIX + "/cost"
USAGE = PREFIX + "/usage"
BETA = "analytics-usage-cost-2026-08-24"
DEFAULT_LIMIT = 100
EARLIEST = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

# The keys of a usage row's ``group``, in the examples' order; a cost row's has two more.
USAGE_DIMENSIONS = (
    "product", "model", "context_window", "inference_geo", "speed", "slack_channel_id", "claude_tag_category",
    "claude_tag_user_id", "actor", "actor_type", "agent_id", "api_key_id", "deployment_id", "environment_id",
    "organization_id", "rbac_group_id", "service_tier", "session_id", "user_profile_id", "workspace_id",
)
COST_DIMENSIONS = USAGE_DIMENSIONS + ("cost_type", "token_type")
# Grouping by these leaves a cost row's request count null: no per-component attribution.
UNATTRIBUTED = frozenset({"cost_type", "token_type"})
FILTERS = {"api_key_ids[]": "api_key_id", "workspace_ids[]": "workspace_id", "models[]": "model",
           "service_tiers[]": "service_tier"}
ARRAYS = ("group_by", "actor_ids", *(name.removesuffix("[]") for name in FILTERS))
KNOWN = frozenset({"starting_at", "ending_at", "time_bucket_width", "limit", "page", "order_by", "order",
                   "group_by[]", "actor_ids[]", *FILTERS})
TOKEN_FIELDS = ("uncached_input_tokens", "cache_read_input_tokens", "output_tokens")
CACHE_CREATION_FIELDS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


class BadRequest(Exception):
    """A request the API refuses with 400 invalid_request_error."""


def error_body(status: int, message: str) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message},
            "request_id": "req_011CUyG4mR2sXv8pLq5cYb3T"}


@dataclass(frozen=True)
class Entry:
    """What one day (``day``, ``YYYY-MM-DD``) cost or used for one combination of dimensions
    (``dimensions``: any of ``COST_DIMENSIONS``; absent or None is null). A cost entry gives
    ``amount`` and ``list_amount`` (cents, decimal strings) and ``requests``; a usage entry its
    token counts (``tokens``: the names of ``TOKEN_FIELDS`` and ``CACHE_CREATION_FIELDS``, and
    ``web_search_requests``) and ``requests``."""

    day: str
    dimensions: Mapping[str, Any]
    amount: str = "0"
    list_amount: str | None = None  # the amount, where there is no discount
    requests: int = 0
    tokens: Mapping[str, int] = field(default_factory=dict)


def actor_id(actor: Mapping[str, Any] | None) -> str | None:
    """An actor's tagged id (``user_...``, ``svac_...``, ``apikey_...``); None for a federated one."""
    if actor is None:
        return None
    for key in ("user_id", "service_account_id", "api_key_id"):
        if actor.get(key):
            return str(actor[key])
    return None


@dataclass
class AnalyticsApi:
    """The two endpoints over a cost ledger and a usage ledger; ``now`` bounds the dates."""

    costs: list[Entry] = field(default_factory=list)
    usage: list[Entry] = field(default_factory=list)
    now: datetime = datetime(2026, 10, 16, 9, 30, tzinfo=UTC)
    data_refreshed_at: str = "2026-10-16T06:00:00Z"
    default_limit: int = DEFAULT_LIMIT  # rows a page holds when the query gives no limit

    def answer(self, path: str, pairs: Sequence[tuple[str, str]], headers: Mapping[str, str]
               ) -> tuple[int, dict[str, Any]]:
        """(status, body) for a GET of ``path`` with the query ``pairs``; ``headers`` with
        lower-cased names."""
        if path not in (COST, USAGE):
            return 404, error_body(404, "The requested resource could not be found.")
        if BETA not in [b.strip() for b in headers.get("anthropic-beta", "").split(",")]:
            return 400, error_body(400, f"This endpoint requires the anthropic-beta header {BETA}.")
        try:
            return 200, self.page(path == COST, pairs)
        except BadRequest as e:
            return 400, error_body(400, str(e))

    def page(self, cost: bool, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        query = Query.read(pairs, COST_DIMENSIONS if cost else USAGE_DIMENSIONS, self.now, self.default_limit)
        rows = list(self.rows(cost, query))
        start = query.offset(rows)
        page = rows[start:start + query.limit]
        more = start + query.limit < len(rows)
        return {"data": page, "has_more": more, "next_page": query.cursor(start + query.limit) if more else None,
                "data_refreshed_at": self.data_refreshed_at}

    def rows(self, cost: bool, query: Query) -> Iterable[dict[str, Any]]:
        dimensions = COST_DIMENSIONS if cost else USAGE_DIMENSIONS
        combined: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.costs if cost else self.usage:
            bucket = query.bucket_of(entry.day)
            if bucket is None or not query.selects(entry):
                continue
            group = {d: entry.dimensions.get(d) if d in query.grouped else None for d in dimensions}
            key = (bucket[0], json.dumps(group, sort_keys=True))
            row = combined.get(key)
            if row is None:
                row = combined[key] = {"starting_at": bucket[0], "ending_at": bucket[1], "group": group,
                                       **({"cost": _no_cost()} if cost else {"usage": _no_usage()})}
            if cost:
                _add_cost(row["cost"], entry, attributed=not (UNATTRIBUTED & set(query.grouped)))
            else:
                _add_usage(row["usage"], entry)
        # Bucket order, then the order the ledger first gave each combination.
        return sorted(combined.values(), key=lambda row: row["starting_at"])


@dataclass(frozen=True)
class Query:
    starting_at: datetime
    ending_at: datetime
    daily: bool
    grouped: tuple[str, ...]
    filters: Mapping[str, frozenset[str]]
    actor_ids: frozenset[str]
    limit: int
    page: str | None
    fingerprint: str  # the query but its page: a cursor belongs to one query

    @classmethod
    def read(cls, pairs: Sequence[tuple[str, str]], dimensions: tuple[str, ...], now: datetime,
             default_limit: int = DEFAULT_LIMIT) -> Query:
        single: dict[str, str] = {}
        grouped: list[str] = []
        filters: dict[str, set[str]] = {}
        actors: set[str] = set()
        for name, value in pairs:
            if name in ARRAYS:
                raise BadRequest(f"{name}: arrays are written {name}[]=")
            if name not in KNOWN:
                raise BadRequest(f"{name}: unknown parameter")
            if name == "group_by[]":
                if value not in dimensions:
                    raise BadRequest(f"group_by[]: unknown value {value!r}")
                if value not in grouped:
                    grouped.append(value)
            elif name == "actor_ids[]":
                actors.add(value)
            elif name in FILTERS:
                filters.setdefault(FILTERS[name], set()).add(value)
            else:
                single[name] = value
        if "starting_at" not in single:
            raise BadRequest("starting_at: required")
        starting_at = _time(single["starting_at"], "starting_at")
        if starting_at < EARLIEST or starting_at < now - timedelta(days=365):
            raise BadRequest("starting_at must be within the last 365 days and no earlier than 2026-01-01T00:00:00Z.")
        ending_at = (_time(single["ending_at"], "ending_at") if "ending_at" in single
                     else min(now, starting_at + timedelta(days=31)))
        if ending_at <= starting_at:
            raise BadRequest("ending_at must be after starting_at")
        width = single.get("time_bucket_width")
        if width not in (None, "1d"):
            raise BadRequest(f"time_bucket_width: the fake knows only 1d, not {width!r}")
        limit = _number(single.get("limit", str(default_limit)), "limit", 1, 1000)
        fingerprint = hashlib.sha256(repr(sorted(p for p in pairs if p[0] != "page")).encode()).hexdigest()[:12]
        return cls(starting_at, ending_at, width == "1d", tuple(grouped),
                   {k: frozenset(v) for k, v in filters.items()}, frozenset(actors), limit, single.get("page"),
                   fingerprint)

    def bucket_of(self, day: str) -> tuple[str, str] | None:
        """The (starting_at, ending_at) of the row an entry of ``day`` falls in, or None
        when the day is out of range."""
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        if not self.starting_at <= start < self.ending_at:
            return None
        if self.daily:
            return _rfc3339(start), _rfc3339(start + DAY)
        # One row for the whole range, its ends rounded down to the hour.
        return _rfc3339(_hour(self.starting_at)), _rfc3339(_hour(self.ending_at))

    def selects(self, entry: Entry) -> bool:
        if self.actor_ids and actor_id(entry.dimensions.get("actor")) not in self.actor_ids:
            return False
        return all(entry.dimensions.get(name) in wanted for name, wanted in self.filters.items())

    def cursor(self, offset: int) -> str:
        return "page_" + base64.b64encode(f"{self.fingerprint}:{offset}".encode()).decode()

    def offset(self, rows: list[dict[str, Any]]) -> int:
        if self.page is None:
            return 0
        try:
            fingerprint, offset = base64.b64decode(self.page.removeprefix("page_"), validate=True).decode().split(":")
            start = int(offset)
        except ValueError:
            raise BadRequest("page: not a cursor of this API") from None
        if fingerprint != self.fingerprint or not 0 < start < len(rows):
            raise BadRequest("page: not a page of this query")
        return start


def _no_cost() -> dict[str, Any]:
    return {"amount": "0", "currency": "USD", "list_amount": "0", "requests": 0}


def _add_cost(cost: dict[str, Any], entry: Entry, attributed: bool) -> None:
    cost["amount"] = format(Decimal(cost["amount"]) + Decimal(entry.amount), "f")
    listed = entry.list_amount if entry.list_amount is not None else entry.amount
    cost["list_amount"] = format(Decimal(cost["list_amount"]) + Decimal(listed), "f")
    cost["requests"] = cost["requests"] + entry.requests if attributed else None


def _no_usage() -> dict[str, Any]:
    return {"uncached_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {name: 0 for name in CACHE_CREATION_FIELDS}, "output_tokens": 0,
            "server_tool_use": {"web_search_requests": 0}, "requests": 0, "total_tokens": 0}


def _add_usage(usage: dict[str, Any], entry: Entry) -> None:
    tokens = entry.tokens
    for name in TOKEN_FIELDS:
        usage[name] += tokens.get(name, 0)
        usage["total_tokens"] += tokens.get(name, 0)
    for name in CACHE_CREATION_FIELDS:
        usage["cache_creation"][name] += tokens.get(name, 0)
        usage["total_tokens"] += tokens.get(name, 0)
    usage["server_tool_use"]["web_search_requests"] += tokens.get("web_search_requests", 0)
    usage["requests"] += entry.requests


def _time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}: an RFC 3339 time needs its offset")
    return moment.astimezone(UTC)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(text: str, name: str, least: int, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: not an integer") from None
    if not least <= value <= most:
        raise BadRequest(f"{name}: must be between {least} and {most}")
    return value
