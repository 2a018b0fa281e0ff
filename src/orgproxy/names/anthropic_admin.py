"""Walking Anthropic's Admin API (``/v1/organizations/``) for the names of workspaces,
API keys, users and service accounts.

- ``workspaces?include_archived=true``: archived workspaces stay in old usage. The
  Default Workspace is not listed (the reports say null for it; the proxy names that
  null "Default" where it stands for it).
- ``api_keys``: whether the list without a ``status`` filter holds archived, inactive and
  expired keys is not documented, so it is walked without one and then once per such
  status; a key seen twice is learned once. Both item shapes the API has shown are read:
  ``principal`` as ``{"type": "user_actor", "user_id"}`` /
  ``{"type": "service_account_actor", "service_account_id"}``, and as ``{"id", "type":
  "user" | "service_account"}``; the key's workspace from ``scope`` or ``workspace_id``.
- ``users``: the ``account_id`` of usage made with OAuth, and the ``user_id`` of the
  analytics API's user actors (the same ids: the snapshot names both from one record).
- ``service_accounts?include_archived=true``: the analytics API's service account actors.
  Anthropic lists them only for an OAuth token, never for an Admin API key: a refusal
  (401, 403) or a 404 is no failure, and their names then come from the alias file.

Lists page by id (``after_id=<last_id>`` while ``has_more``) or, on Anthropic's token-paged
lists (service accounts), by ``page=<next_page>``: the cursor reads either.
"""

from __future__ import annotations

from typing import Any

from orgproxy.names.admin_walk import Fetch, Page, last_id, text, walk
from orgproxy.names.history import Learned

PROVIDER = "anthropic"
WORKSPACES = "/v1/organizations/workspaces"
API_KEYS = "/v1/organizations/api_keys"
USERS = "/v1/organizations/users"
SERVICE_ACCOUNTS = "/v1/organizations/service_accounts"
# What the service accounts list answers a credential it does not take (or an API
# without it): nothing to learn there, not a failed walk.
NOT_LISTED = (401, 403, 404)
# Statuses a list without a filter may leave out (undocumented either way).
KEY_STATUSES = ("inactive", "archived", "expired")
# The headers every call carries besides the key (the latest version Anthropic lists).
ANTHROPIC_VERSION = b"2023-06-01"


def after_id_or_page(path: str, page: Page) -> tuple[str, str] | None:
    """Anthropic's cursors: none once ``has_more`` is false; ``page=<next_page>`` on a
    token-paged list; else ``after_id=<last_id>`` while ``has_more``."""
    has_more = page.get("has_more")
    if has_more is False:
        return None
    next_page = text(page.get("next_page"))
    if next_page is not None:
        return ("page", next_page)
    return ("after_id", last_id(path, page)) if has_more else None


async def discover(fetch: Fetch, learned: list[Learned]) -> None:
    """Walk every list that names ids, appending to ``learned``; raises DiscoveryFailed."""
    for workspace in await walk(fetch, WORKSPACES, [("include_archived", "true")], after_id_or_page):
        learned.append(Learned("workspace_id", workspace["id"], workspace["name"], provider=PROVIDER))
    seen: set[str] = set()
    for flags in ([], *([("status", status)] for status in KEY_STATUSES)):
        for key in await walk(fetch, API_KEYS, flags, after_id_or_page):
            if key["id"] not in seen:
                seen.add(key["id"])
                learned.append(_key(key))
    for user in await walk(fetch, USERS, [], after_id_or_page):
        # "email" in the users list; Anthropic's newer types say "email_address" elsewhere.
        email = text(user.get("email")) or text(user.get("email_address"))
        learned.append(Learned("account_id", user["id"], user["name"], email=email, provider=PROVIDER))
    for account in await walk(fetch, SERVICE_ACCOUNTS, [("include_archived", "true")], after_id_or_page,
                              skip=NOT_LISTED):
        learned.append(Learned("service_account_id", account["id"], account["name"], provider=PROVIDER))


def _key(key: dict[str, Any]) -> Learned:
    owner_type, owner_id = _principal(key.get("principal"))
    return Learned("api_key_id", key["id"], key["name"], redacted_value=text(key.get("partial_key_hint")),
                   project_id=_workspace(key), owner_type=owner_type, owner_id=owner_id, provider=PROVIDER)


def _principal(principal: object) -> tuple[str | None, str | None]:
    """(owner type, owner id) of a key's principal, in either shape; (None, None) for a
    workspace key, whose principal is null."""
    if not isinstance(principal, dict):
        return None, None
    kind = text(principal.get("type"))
    if kind == "user_actor":
        return "user", text(principal.get("user_id"))
    if kind == "service_account_actor":
        return "service_account", text(principal.get("service_account_id"))
    return kind, text(principal.get("id"))  # the 2026-08 shape: {"id", "type": "user" | ...}


def _workspace(key: dict[str, Any]) -> str | None:
    """The key's workspace: ``scope.workspace_id`` (the real id, the Default Workspace's
    too), else the older top-level ``workspace_id`` (null for the Default Workspace)."""
    scope = key.get("scope")
    if isinstance(scope, dict) and text(scope.get("workspace_id")):
        return text(scope.get("workspace_id"))
    return text(key.get("workspace_id"))
