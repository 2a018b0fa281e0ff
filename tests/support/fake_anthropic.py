"""An in-memory stand-in for Anthropic's Admin API (``/v1/organizations/...``), built from the
example bodies in ``tests/fixtures/anthropic-admin-api/`` and the rules its reference states:

- lists (``api_keys``, ``users``, ``workspaces``) page by id: ``limit`` (1..1000, default 20),
  ``after_id`` / ``before_id``, answering ``{"data", "has_more", "first_id", "last_id"}``; the
  fake never answers more than ``org.page_size`` items, so a walk needs several pages;
- ``workspaces`` lists archived workspaces only with ``include_archived=true``, and never the
  Default Workspace;
- ``api_keys`` filters by ``status`` and ``workspace_id``; whether the list without a status
  holds every status is not documented, so ``org.unfiltered_key_statuses`` says (None: all);
- the reports (``usage_report/messages``, ``cost_report``; ``anthropic_reports.py``) are made
  from a ledger of usage and cost entries: one bucket per day from ``starting_at``
  (``bucket_width=1d``), empty days included, ``limit`` buckets a page (default 7, at most
  31), paged by token (``page=<next_page>``, a token ending in ``=``); rows grouped by the
  ``group_by[]`` dimensions, every other dimension null; the Console's usage has a null
  ``api_key_id`` and the Default Workspace's a null ``workspace_id`` even when grouped by
  them; cost ``amount`` is a decimal string in cents;
- ``service_accounts`` pages by token (``page=<next_page>``) and, as its reference says, answers
  only an OAuth token: an Admin API key (``x-api-key``) gets 403, unless
  ``org.service_accounts_for_admin_keys``;
- the Usage and Cost Analytics API (``analytics/cost``, ``analytics/usage``) is
  ``fake_analytics.AnalyticsApi`` over the organization's analytics ledgers (``org.analytics``);
- arrays only in the bracket spelling (``group_by[]=a``): whether Anthropic reads ``group_by=a``
  is not documented, so the fake refuses it, the strict reading;
- errors in Anthropic's shape, ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

Every request is recorded as it arrived (``received``), as by ``FakeOpenAI``, whose ``on(path,
behaviour)`` overrides a path here too.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from twisted.web import server

from tests.support.anthropic_reports import BadRequest, cost_report, messages_report, page_token, whole_number
from tests.support.fake_analytics import PREFIX as ANALYTICS
from tests.support.fake_analytics import AnalyticsApi, Entry
from tests.support.fake_openai import FakeOpenAI, Received

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-admin-api"
PREFIX = "/v1/organizations"
API_KEYS = PREFIX + "/api_keys"
WORKSPACES = PREFIX + "/workspaces"
USERS = PREFIX + "/users"
SERVICE_ACCOUNTS = PREFIX + "/service_accounts"
MESSAGES = PREFIX + "/usage_report/messages"
COSTS = PREFIX + "/cost_report"
# The Admin API key discovery is given in the tests; it must never show up in logs or errors.
ADMIN_KEY = "sk-ant-admin01-TEST-never-logged-7d1e"

# Ids of the sample organization, for tests to refer to.
BILLING = "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"  # active
PLATFORM = "wrkspc_01XYZ789ABC123DEF456MNO"  # archived: listed only with include_archived=true
RESEARCH = "wrkspc_01CONSTRUCTEDresearch00"  # active, no usage
DEFAULT_WORKSPACE = "wrkspc_01CONSTRUCTEDdefault00000"  # never listed; null in reports
BILLING_KEY = "apikey_01Rj2N8SVvo6BePZj99NhmiT"  # "billing-batch-prod", active
BILLING_KEY_OLD = "apikey_01CONSTRUCTEDrotated0000"  # "billing-batch-prod" too, expired (2026-08 shape)
LEGACY_KEY = "apikey_01ABC123DEF456GHI789JKL"  # archived, of the Default Workspace
PERSONAL_KEY = "apikey_01CONSTRUCTEDpersonal000"  # a user's key, scoped to the organization
BOT_KEY = "apikey_01CONSTRUCTEDsvcacct0000"  # a service account's key, inactive
JANE_DOE = "user_01WCz1FkmYMm4gnmykNKUu3Q"
JANE_SMITH = "user_01XyDMpzjS89pFZXqSFUBDr6"
ZOE = "user_01CONSTRUCTEDzoe000000000"
BOT = "svac_01Hk3R9TWxq7CfQak00OiVw4"

# The reference's name for the id that follows a collection in a path.
PATH_PARAMETERS = {"workspaces": "workspace_id", "api_keys": "api_key_id", "users": "user_id",
                   "service_accounts": "service_account_id"}


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def example_json(name: str) -> Any:
    return json.loads(example(name))


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error body for a status (the types of its "Errors" page)."""
    kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


# --- the organization, from the examples' items ------------------------------------------------

def workspace(id: str, name: str, archived: bool = False) -> dict[str, Any]:
    item = copy.deepcopy(example_json("get_organizations_workspaces.response.json")["data"][0])
    item.update(id=id, name=name, archived_at="2026-07-01T00:00:00Z" if archived else None)
    return item


def api_key(template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    item = copy.deepcopy(template)
    item.update(changes)
    return item


def user(id: str, name: str, email: str) -> dict[str, Any]:
    item = copy.deepcopy(example_json("get_organizations_users.response.json")["data"][0])
    item.update(id=id, name=name, email=email)
    return item


def service_account(id: str, name: str) -> dict[str, Any]:
    item = copy.deepcopy(example_json("get_organizations_service_accounts.response.json")["data"][0])
    item.update(id=id, name=name, archived_at=None)
    return item


@dataclass
class AnthropicOrg:
    workspaces: list[dict[str, Any]]  # items as the list answers them; archived ones have archived_at
    api_keys: list[dict[str, Any]]  # items in either shape the API has shown
    users: list[dict[str, Any]]
    # {"day": "YYYY-MM-DD", the dimensions (missing: null), "uncached_input_tokens", "output_tokens",
    #  "cache_read_input_tokens", "cache_creation": {...}, "web_search_requests"}
    usage: list[dict[str, Any]] = field(default_factory=list)
    # {"day", "workspace_id", "description", "amount": "<cents>", and what DESCRIBED names}
    costs: list[dict[str, Any]] = field(default_factory=list)
    service_accounts: list[dict[str, Any]] = field(default_factory=list)
    # The Usage and Cost Analytics API over its own ledgers (see sample_analytics()).
    analytics: AnalyticsApi = field(default_factory=AnalyticsApi)
    page_size: int = 2  # the most items a list page holds, whatever the limit
    unfiltered_key_statuses: frozenset[str] | None = None  # None: a list without status holds every key
    service_accounts_for_admin_keys: bool = False  # the reference: OAuth tokens only


def sample_anthropic_org() -> AnthropicOrg:
    """A ready organization, a fresh copy on every call: three workspaces (one archived),
    five keys of every status in both item shapes (two sharing a name), three users, a
    service account, a few days of usage and costs (with Console usage and the Default
    Workspace's) and the analytics ledgers of ``sample_analytics()``."""
    kinds = {item["id"]: item for item in
             example_json("get_organizations_api_keys.CONSTRUCTED-key-types.response.json")["data"]}
    old_shape = example_json("get_organizations_api_keys.variant-2026-08-principal-id-type.response.json")["data"][0]
    usage = [
        {"day": "2026-08-01", "api_key_id": BILLING_KEY, "workspace_id": BILLING, "model": "claude-opus-4-6",
         "uncached_input_tokens": 15800, "output_tokens": 3100, "cache_read_input_tokens": 5400,
         "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 1200}},
        {"day": "2026-08-01", "api_key_id": None, "workspace_id": None, "model": "claude-sonnet-5",
         "uncached_input_tokens": 950, "output_tokens": 410},  # the Console, in the Default Workspace
        {"day": "2026-08-01", "api_key_id": BILLING_KEY_OLD, "workspace_id": BILLING, "model": "claude-opus-4-6",
         "uncached_input_tokens": 100, "output_tokens": 20},
        {"day": "2026-08-03", "api_key_id": LEGACY_KEY, "workspace_id": None, "model": "claude-sonnet-5",
         "uncached_input_tokens": 21000, "output_tokens": 7300, "cache_read_input_tokens": 12000,
         "cache_creation": {"ephemeral_1h_input_tokens": 2000, "ephemeral_5m_input_tokens": 0},
         "web_search_requests": 3},
        {"day": "2026-08-03", "api_key_id": PERSONAL_KEY, "workspace_id": None, "account_id": JANE_SMITH,
         "model": "claude-opus-4-6", "uncached_input_tokens": 40, "output_tokens": 9},
        {"day": "2026-08-03", "api_key_id": BOT_KEY, "workspace_id": PLATFORM, "service_account_id": BOT,
         "model": "claude-opus-4-6", "uncached_input_tokens": 500, "output_tokens": 60},
    ]
    costs = [
        {"day": "2026-08-01", "workspace_id": BILLING, "description": "Claude Opus 4.6 Usage - Input Tokens",
         "amount": "1520.4417", "cost_type": "tokens", "model": "claude-opus-4-6", "service_tier": "standard",
         "token_type": "uncached_input_tokens", "context_window": "0-200k", "inference_geo": "global"},
        {"day": "2026-08-01", "workspace_id": BILLING, "description": "Web Search Usage", "amount": "0.01",
         "cost_type": "web_search"},
        {"day": "2026-08-01", "workspace_id": None, "description": "Claude Sonnet 5 Usage - Output Tokens",
         "amount": "87.5", "cost_type": "tokens", "model": "claude-sonnet-5", "service_tier": "standard",
         "token_type": "output_tokens", "context_window": "0-200k", "inference_geo": "global"},
        {"day": "2026-08-03", "workspace_id": PLATFORM, "description": "Claude Opus 4.6 Usage - Input Tokens",
         "amount": "123.78912", "cost_type": "tokens", "model": "claude-opus-4-6", "service_tier": "batch",
         "token_type": "uncached_input_tokens", "context_window": "0-200k", "inference_geo": "global"},
    ]
    return AnthropicOrg(
        workspaces=[workspace(BILLING, "Billing"), workspace(PLATFORM, "Platform", archived=True),
                    workspace(RESEARCH, "Research")],
        api_keys=[
            kinds[BILLING_KEY],
            api_key(old_shape, id=BILLING_KEY_OLD, name="billing-batch-prod", status="expired",
                    partial_key_hint="sk-ant-api03-Old...x9QA"),
            kinds[LEGACY_KEY], kinds[PERSONAL_KEY], kinds[BOT_KEY],
        ],
        users=sample_users(), usage=usage, costs=costs, service_accounts=[service_account(BOT, "ci-deploy-bot")],
        analytics=sample_analytics(),
    )


def actor(kind: str, id: str) -> dict[str, Any]:
    """The analytics ``actor`` of a user (with the user's email and name, as the reference
    shows), a key or a service account."""
    if kind == "user":
        person = next(u for u in sample_users() if u["id"] == id)
        return {"type": "user_actor", "user_id": id, "email_address": person["email"], "name": person["name"],
                "deleted": False}
    if kind == "key":
        return {"type": "api_actor", "api_key_id": id}
    return {"type": "service_account_actor", "service_account_id": id}


def sample_users() -> list[dict[str, Any]]:
    return [user(JANE_DOE, "Jane Doe", "user@emaildomain.com"), user(JANE_SMITH, "Jane Smith", "jane@example.com"),
            user(ZOE, "Zoë Ångström", "zoe@example.com")]


def sample_analytics() -> AnalyticsApi:
    """The analytics ledgers of the sample organization, as of 2026-10-16 09:30 UTC (the
    API's ``now``): each key in its own workspace (the Default Workspace's null for the legacy
    key and the organization-wide personal key), the Console's usage (no key, the Default
    Workspace), the two "billing-batch-prod" keys on the same days, amounts in fractional
    cents whose sums in dollars a double cannot hold exactly (10 + 20 cents: $0.3, which
    0.1 + 0.2 misses), and August's days of the legacy reports."""
    def cost(day: str, key: str | None, workspace: str | None, who: dict[str, Any], amount: str,
             requests: int, cost_type: str = "tokens", listed: str | None = None) -> Entry:
        return Entry(day, {"api_key_id": key, "workspace_id": workspace, "actor": who, "cost_type": cost_type,
                           "model": "claude-opus-4-6", "service_tier": "standard"}, amount, listed, requests)
    costs = [
        cost("2026-08-01", BILLING_KEY, BILLING, actor("key", BILLING_KEY), "1520.4417", 40, listed="1689.3797"),
        cost("2026-08-01", BILLING_KEY_OLD, BILLING, actor("key", BILLING_KEY_OLD), "0.0003", 1),
        cost("2026-08-01", None, None, actor("user", JANE_DOE), "87.5", 3),
        cost("2026-09-30", BILLING_KEY, BILLING, actor("key", BILLING_KEY), "999.99", 9),
        cost("2026-09-30", LEGACY_KEY, None, actor("key", LEGACY_KEY), "5", 1),
        cost("2026-10-01", BILLING_KEY, BILLING, actor("key", BILLING_KEY), "1520.4417", 40, listed="1689.3797"),
        cost("2026-10-01", BILLING_KEY, BILLING, actor("key", BILLING_KEY), "0.01", 1, "web_search"),
        cost("2026-10-01", None, None, actor("user", JANE_DOE), "87.5", 3),
        cost("2026-10-14", BILLING_KEY_OLD, BILLING, actor("key", BILLING_KEY_OLD), "10", 1),
        cost("2026-10-15", BILLING_KEY, BILLING, actor("key", BILLING_KEY), "0.2", 2),
        cost("2026-10-15", BILLING_KEY_OLD, BILLING, actor("key", BILLING_KEY_OLD), "20", 1),
        cost("2026-10-15", PERSONAL_KEY, None, actor("user", JANE_SMITH), "12.345678", 4, listed="13.7174"),
        cost("2026-10-15", BOT_KEY, PLATFORM, actor("service_account", BOT), "4410.75", 15),
        cost("2026-10-16", BILLING_KEY, BILLING, actor("key", BILLING_KEY), "33.3", 5),
    ]
    usage = [Entry(e.day, {k: v for k, v in e.dimensions.items() if k != "cost_type"}, requests=e.requests,
                   tokens={"uncached_input_tokens": 100 * e.requests, "output_tokens": 10 * e.requests,
                           "cache_read_input_tokens": e.requests, "ephemeral_5m_input_tokens": 2 * e.requests})
             for e in costs if e.dimensions["cost_type"] == "tokens"]
    return AnalyticsApi(costs=costs, usage=usage)


# --- the fake -----------------------------------------------------------------------------------

class FakeAnthropic(FakeOpenAI):
    """Every path answered: by a behaviour set with ``on``, else by the organization's lists
    and reports, else by the example for the path, else a 404 in Anthropic's shape."""

    def __init__(self, org: AnthropicOrg | None = None) -> None:
        super().__init__()
        self.org = org or sample_anthropic_org()
        self.answered: list[bytes] = []  # every body the organization's routes and examples sent

    def fallback(self, request: server.Request, received: Received) -> bytes | int:
        path, _, query = received.target.decode("latin-1").partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        routes = {API_KEYS: self.list_api_keys, WORKSPACES: self.list_workspaces, USERS: self.list_users,
                  MESSAGES: self.messages_report, COSTS: self.cost_report}
        route = routes.get(path) if received.method == b"GET" else None
        try:
            if path.startswith(ANALYTICS + "/") and received.method == b"GET":
                headers = {}
                for name, value in received.headers:
                    key = name.decode("latin-1").lower()
                    headers[key] = ",".join(filter(None, (headers.get(key), value.decode("latin-1"))))
                status, body = self.org.analytics.answer(path, pairs, headers)
            elif path == SERVICE_ACCOUNTS and received.method == b"GET":
                status, body = self.list_service_accounts(received, pairs)
            elif route is not None:
                status, body = 200, route(pairs)
            else:
                status, body = self.example_for(received.method.decode(), path)
        except BadRequest as e:
            status, body = 400, anthropic_error(400, str(e))
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"request-id", b"req_011CSHoEeqs5C35K2UUqR7Fy")
        self.answered.append(json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8"))
        return self.answered[-1]

    def example_for(self, method: str, path: str) -> tuple[int, Any]:
        """The example for a path, its ids named as the reference names them:
        GET /v1/organizations/workspaces/wrkspc_1/members ->
        get_organizations_workspaces_workspace_id_members.response.json."""
        segments = path.removeprefix("/v1/").split("/")
        route = [segments[0]] + [PATH_PARAMETERS.get(before, segment) if before in PATH_PARAMETERS else segment
                                 for before, segment in zip(segments, segments[1:])]
        name = f"{method.lower()}_{'_'.join(route)}.response.json"
        if (EXAMPLES / name).exists():
            return 200, example_json(name)
        return 404, anthropic_error(404, "The requested resource could not be found.")

    # --- lists ----------------------------------------------------------------------------------

    def list_api_keys(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        query = dict(pairs)
        keys = self.org.api_keys
        if "status" in query:
            keys = [k for k in keys if k["status"] == query["status"]]
        elif self.org.unfiltered_key_statuses is not None:
            keys = [k for k in keys if k["status"] in self.org.unfiltered_key_statuses]
        if "workspace_id" in query:
            keys = [k for k in keys if k.get("workspace_id") == query["workspace_id"]]
        return self.page_of(keys, query)

    def list_workspaces(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        query = dict(pairs)
        archived_too = query.get("include_archived") == "true"
        return self.page_of([w for w in self.org.workspaces if archived_too or w["archived_at"] is None], query)

    def list_users(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        return self.page_of(self.org.users, dict(pairs))

    def list_service_accounts(self, received: Received, pairs: list[tuple[str, str]]) -> tuple[int, Any]:
        """OAuth tokens only (an Admin API key gets 403); paged by token, ``{"data", "next_page"}``."""
        if received.header("x-api-key") is not None and not self.org.service_accounts_for_admin_keys:
            return 403, anthropic_error(403, "This endpoint requires an OAuth token with the org:admin scope.")
        query = dict(pairs)
        archived_too = query.get("include_archived") == "true"
        items = [a for a in self.org.service_accounts if archived_too or a["archived_at"] is None]
        take = min(whole_number(query.get("limit", "20"), "limit", 1, 100), self.org.page_size)
        start = 0
        if "page" in query:
            tokens = {page_token(i): i for i in range(take, len(items), take)}
            if query["page"] not in tokens:
                raise BadRequest("page: not a page of this list")
            start = tokens[query["page"]]
        more = start + take < len(items)
        return 200, {"data": items[start:start + take], "next_page": page_token(start + take) if more else None}

    def page_of(self, items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        limit = whole_number(query.get("limit", "20"), "limit", 1, 1000)
        take = min(limit, self.org.page_size)
        ids = [item["id"] for item in items]
        for cursor in ("after_id", "before_id"):
            if cursor in query and query[cursor] not in ids:
                raise BadRequest(f"{cursor}: no such id")
        if "before_id" in query:
            end = ids.index(query["before_id"])
            page, more = items[max(0, end - take):end], end - take > 0
        else:
            start = ids.index(query["after_id"]) + 1 if "after_id" in query else 0
            page, more = items[start:start + take], start + take < len(items)
        return {"data": page, "first_id": page[0]["id"] if page else None, "has_more": more,
                "last_id": page[-1]["id"] if page else None}

    # --- reports --------------------------------------------------------------------------------

    def messages_report(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        return messages_report(self.org.usage, pairs)

    def cost_report(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        return cost_report(self.org.costs, pairs)
