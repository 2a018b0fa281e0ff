"""Walking OpenAI's Admin API for the names of projects, keys and users.

Every list is walked page by page (``limit=100``, then ``after=<last_id>`` until
``has_more`` is false: see admin_walk.py). What is learned is appended as it arrives, so
a walk that fails half way still keeps what it learned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from orgproxy.names.admin_walk import last_id, walk
from orgproxy.upstream.admin_pages import AdminApiFailed, Fetch, Page, text
from orgproxy.snapshot import Learned

__all__ = ["AdminApiFailed", "Fetch", "discover"]


def after(path: str, page: Page) -> tuple[str, str] | None:
    """OpenAI's cursor: ``after=<last_id>`` while ``has_more``."""
    return ("after", last_id(path, page)) if page.get("has_more") else None


async def discover(fetch: Fetch, learned: list[Learned]) -> None:
    """Walk every list that names ids, appending to ``learned``; raises AdminApiFailed."""
    projects = await walk(fetch, "/v1/organization/projects", [("include_archived", "true")], after)
    for project in projects:
        learned.append(Learned("project_id", project["id"], project["name"]))
    for project in projects:
        project_path = "/v1/organization/projects/" + quote(project["id"], safe="")
        # Without owner_project_access=any, keys owned by service accounts are hidden.
        for key in await walk(fetch, project_path + "/api_keys", [("owner_project_access", "any")], after,
                              skip=(400, 404)):
            learned.extend(_key(key, project["id"]))
        # Archived projects answer 400 here: nothing to learn, not a failure.
        for account in await walk(fetch, project_path + "/service_accounts", [], after, skip=(400, 404)):
            learned.append(Learned("service_account_id", account["id"], account["name"],
                                   project_id=project["id"]))
    for key in await walk(fetch, "/v1/organization/admin_api_keys", [], after):
        learned.extend(_key(key, None))
    for user in await walk(fetch, "/v1/organization/users", [], after):
        learned.append(Learned("user_id", user["id"], user["name"], email=text(user.get("email"))))


def _owner(owner: object) -> tuple[str | None, Mapping[str, Any]]:
    """(type, the owner's own record) in either of the API's two owner shapes."""
    if not isinstance(owner, dict):
        return None, {}
    kind = text(owner.get("type"))
    nested = owner.get(kind) if kind else None
    return kind, nested if isinstance(nested, dict) else owner


def _key(key: dict[str, Any], project_id: str | None) -> list[Learned]:
    """The key, and its owner when the owner is a user (whose name and email it carries)."""
    kind, owner = _owner(key.get("owner"))
    learned = [Learned("api_key_id", key["id"], key["name"], redacted_value=text(key.get("redacted_value")),
                       project_id=project_id, owner_type=kind, owner_id=text(owner.get("id")),
                       owner_name=text(owner.get("name")))]
    if kind == "user" and text(owner.get("id")) and text(owner.get("name")):
        learned.append(Learned("user_id", owner["id"], owner["name"], email=text(owner.get("email"))))
    return learned
