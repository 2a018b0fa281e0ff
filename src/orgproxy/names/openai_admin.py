"""Walking OpenAI's Admin API for the names of projects, keys and users.

Every list is walked page by page (``limit=100``, then ``after=<last_id>`` until
``has_more`` is false). What is learned is appended as it arrives, so a walk that fails
half way still keeps what it learned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from orgproxy.errors import ProxyError
from orgproxy.names.history import Learned
from orgproxy.upstream.client import UpstreamResponse

# GET path with query parameters -> the upstream's answer (or a ProxyError failure).
Fetch = Callable[[str, Sequence[tuple[str, str]]], Awaitable[UpstreamResponse]]

PAGE_LIMIT = 100
MAX_PAGES = 10_000  # a guard against a cursor that never ends


class DiscoveryFailed(Exception):
    """The walk stopped; ``retry_after`` is the upstream's Retry-After, when it sent one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


async def discover(fetch: Fetch, learned: list[Learned]) -> None:
    """Walk every list that names ids, appending to ``learned``; raises DiscoveryFailed."""
    projects = await walk(fetch, "/v1/organization/projects", [("include_archived", "true")])
    for project in projects:
        learned.append(Learned("project_id", project["id"], project["name"]))
    for project in projects:
        project_path = "/v1/organization/projects/" + quote(project["id"], safe="")
        # Without owner_project_access=any, keys owned by service accounts are hidden.
        for key in await walk(fetch, project_path + "/api_keys", [("owner_project_access", "any")],
                              skip=(400, 404)):
            learned.extend(_key(key, project["id"]))
        # Archived projects answer 400 here: nothing to learn, not a failure.
        for account in await walk(fetch, project_path + "/service_accounts", [], skip=(400, 404)):
            learned.append(Learned("service_account_id", account["id"], account["name"],
                                   project_id=project["id"]))
    for key in await walk(fetch, "/v1/organization/admin_api_keys", []):
        learned.extend(_key(key, None))
    for user in await walk(fetch, "/v1/organization/users", []):
        learned.append(Learned("user_id", user["id"], user["name"], email=_text(user.get("email"))))


async def walk(fetch: Fetch, path: str, flags: list[tuple[str, str]],
               skip: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Every named item of a paginated list; [] when the list answers a status in ``skip``."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        query = [("limit", str(PAGE_LIMIT)), *flags] + ([("after", after)] if after else [])
        try:
            response = await fetch(path, query)
        except ProxyError as e:
            raise DiscoveryFailed(f"{path}: {e.message}") from None
        if response.status in skip:
            return []
        page = admin_page(path, response)
        items.extend(item for item in page["data"] if _named(item))
        if not page.get("has_more"):
            return items
        next_after = page.get("last_id") or (page["data"][-1].get("id") if page["data"] else None)
        if not isinstance(next_after, str) or next_after == after:
            raise DiscoveryFailed(f"{path}: has_more without a new last_id")
        after = next_after
    raise DiscoveryFailed(f"{path}: more than {MAX_PAGES} pages")


def admin_page(path: str, response: UpstreamResponse) -> dict[str, Any]:
    """An Admin API page ({"data": [...], ...}), or DiscoveryFailed saying why not (the
    cost series read their pages with it too)."""
    if response.status == 429:
        raise DiscoveryFailed(f"{path}: rate limited (429)", _retry_after(response))
    if response.status in (401, 403):
        # OpenAI's message may quote part of the key: only the status is told.
        raise DiscoveryFailed(f"{path}: the admin key was refused ({response.status})")
    if response.status != 200:
        raise DiscoveryFailed(f"{path}: the upstream answered {response.status}",
                              _retry_after(response))
    try:
        page = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        raise DiscoveryFailed(f"{path}: the page is not JSON") from None
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise DiscoveryFailed(f"{path}: the page has no data list")
    return page


def _retry_after(response: UpstreamResponse) -> float | None:
    value = response.header(b"retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the usual backoff


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _named(item: object) -> bool:
    return isinstance(item, dict) and bool(_text(item.get("id"))) and bool(_text(item.get("name")))


def _owner(owner: object) -> tuple[str | None, Mapping[str, Any]]:
    """(type, the owner's own record) in either of the API's two owner shapes."""
    if not isinstance(owner, dict):
        return None, {}
    kind = _text(owner.get("type"))
    nested = owner.get(kind) if kind else None
    return kind, nested if isinstance(nested, dict) else owner


def _key(key: dict[str, Any], project_id: str | None) -> list[Learned]:
    """The key, and its owner when the owner is a user (whose name and email it carries)."""
    kind, owner = _owner(key.get("owner"))
    learned = [Learned("api_key_id", key["id"], key["name"], redacted_value=_text(key.get("redacted_value")),
                       project_id=project_id, owner_type=kind, owner_id=_text(owner.get("id")),
                       owner_name=_text(owner.get("name")))]
    if kind == "user" and _text(owner.get("id")) and _text(owner.get("name")):
        learned.append(Learned("user_id", owner["id"], owner["name"], email=_text(owner.get("email"))))
    return learned
