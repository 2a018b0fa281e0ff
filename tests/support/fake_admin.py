"""A fake of the parts of OpenAI's Admin API that list names, installed onto a FakeOpenAI.

The shapes follow the spec's examples (tests/fixtures/openai-admin-api/) and OpenAI's documented
rules for these lists:

- every list is ``{"object": "list", "data": [...], "first_id", "last_id", "has_more"}``;
- cursor pagination: ``after=<id>`` means strictly after that id, ``limit`` (1..100) is an upper
  bound, and the fake never answers more than ``org.page_size`` items (OpenAI may return fewer
  than ``limit``), so a walk needs several pages;
- ``/v1/organization/projects`` lists archived projects only with ``include_archived=true``;
- ``/v1/organization/projects/{id}/api_keys`` hides keys owned by service accounts unless
  ``owner_project_access=any``;
- ``/v1/organization/projects/{id}/service_accounts`` answers 400 for an archived project.

Usage::

    admin = FakeAdmin(fake, sample_org())  # fake: the FakeOpenAI the proxy forwards to
    admin.fail_next(PROJECTS, reply(429, {...}, headers=[("Retry-After", "1")]))
    admin.delete_key(WEB_SHOP, "key_Ws3kCheckoutC7")

The fake reads ``admin.org`` on every request, so direct edits to it are seen at once. A
project added to ``org.projects`` by hand needs ``install()`` for its per-project routes
(``add_project`` does it).
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from twisted.web import server

from tests.support.fake_openai import Behaviour, FakeOpenAI, Received, openai_error, serve_example

__all__ = ["ADMIN_KEYS", "AdminApi", "DATA_PIPELINE", "OLD_CHATBOT", "PROJECTS", "SANDBOX", "USERS", "WEB_SHOP",
           "FakeAdmin", "Org", "admin_service_account_owner", "admin_user_owner", "api_keys_path", "openai_error",
           "sample_org", "service_account_owner", "service_accounts_path", "user_owner"]

PROJECTS = "/v1/organization/projects"
ADMIN_KEYS = "/v1/organization/admin_api_keys"
USERS = "/v1/organization/users"


def api_keys_path(project_id: str) -> str:
    return f"{PROJECTS}/{project_id}/api_keys"


def service_accounts_path(project_id: str) -> str:
    return f"{PROJECTS}/{project_id}/service_accounts"


# Timestamps used when an item in the Org does not carry its own.
CREATED_AT = 1711471533
LAST_USED_AT = 1711471534
ARCHIVED_AT = 1719792000
EXPIRES_AT = 1714063533


@dataclass
class Org:
    """What the fake organization holds. Items are plain dicts in the shapes documented on
    each field; optional extra fields (``created_at``, ``last_used_at``, ``role``, ...) are used
    when present, otherwise fixed defaults are answered."""

    projects: list[dict]  # {"id", "name", "archived": bool} (+ "created_at", "archived_at")
    # project id -> keys {"id", "name", "redacted_value", "owner"}, owner in the project API
    # key shape: {"type": "user", "user": {...}} or {"type": "service_account", "service_account": {...}}
    # (+ "created_at", "last_used_at", "owner_project_access": "active"|"inactive")
    api_keys: dict[str, list[dict]]
    # {"id", "name", "redacted_value", "owner"}, owner flat: {"type", "object", "id", "name", "created_at", "role"}
    admin_keys: list[dict]
    users: list[dict]  # {"id", "name", "email"} (+ "role", "added_at")
    service_accounts: dict[str, list[dict]]  # project id -> [{"id", "name"} (+ "role", "created_at")]
    page_size: int = 2  # the most items the fake answers per page, whatever the limit


def user_owner(user: dict, role: str = "owner") -> dict:
    """A project API key's owner that is a user (the spec's shape)."""
    return {"type": "user", "user": {"id": user["id"], "name": user["name"], "email": user["email"],
                                     "role": role, "created_at": user.get("added_at", CREATED_AT)}}


def service_account_owner(account: dict, role: str = "member") -> dict:
    """A project API key's owner that is a service account (the spec's shape)."""
    return {"type": "service_account",
            "service_account": {"id": account["id"], "name": account["name"], "role": role,
                                "created_at": account.get("created_at", CREATED_AT)}}


def admin_user_owner(user: dict, role: str = "owner") -> dict:
    """An admin key's owner that is a user (flat, as in the admin_api_keys example)."""
    return {"type": "user", "object": "organization.user", "id": user["id"], "name": user["name"],
            "created_at": user.get("added_at", CREATED_AT), "role": role}


def admin_service_account_owner(account: dict, role: str = "member") -> dict:
    """An admin key's owner that is a service account (flat, as in the admin_api_keys example)."""
    return {"type": "service_account", "object": "organization.service_account", "id": account["id"],
            "name": account["name"], "created_at": account.get("created_at", CREATED_AT), "role": role}


# The sample organization's ids, for tests to refer to.
WEB_SHOP = "proj_Wb7sHq2LxK9mTz"  # active, 5 keys (3 user-owned, 2 service-account-owned)
DATA_PIPELINE = "proj_Dp4nRv8YcG1eQa"  # active, 4 keys (2 and 2): exactly two full pages
OLD_CHATBOT = "proj_Oc0bAr5ChvD3iW"  # archived, 2 keys (1 and 1)
SANDBOX = "proj_Sb6xEm9PtY2uNo"  # active, no keys, no service accounts: an empty page


def sample_org() -> Org:
    """A ready organization; a fresh copy on every call, so tests may change it."""
    ada = {"id": "user-Ada7LvQ2cW9xRt", "name": "Ada Lovelace", "email": "ada@example.com", "role": "owner"}
    zoe = {"id": "user-Zo3Qn8KfLp1sVe", "name": "Zoë Quinn", "email": "zoe@example.com", "role": "reader"}
    bob = {"id": "user-Bb5Mr2TgHw6yUa", "name": "Bob Martin", "email": "bob@example.com", "role": "reader"}
    chen = {"id": "user_Cw9Xn4JdSe7kPb", "name": "陈伟", "email": "chen@example.com", "role": "reader"}
    dana = {"id": "user-Dn1Sc6VbQm3rZo", "name": "Dana Scully", "email": "dana@example.com", "role": "owner"}

    checkout_bot = {"id": "svc_acct_Ck8tBo2tXq5Lw", "name": "checkout-bot"}
    batch_runner = {"id": "svc_acct_Bt4rNr7uYm1Pz", "name": "batch-runner"}
    etl = {"id": "svc_acct_Et2lSv9kWn6Hc", "name": "etl-service"}
    old_bot = {"id": "svc_acct_Ob6dBt3aGv8Jq", "name": "old-bot"}  # on the archived project
    admin_bot = {"id": "svc_acct_Ad5mBt1rFx4Ks", "name": "Admin automation"}

    def key(id: str, name: str, redacted: str, owner: dict) -> dict:
        return {"id": id, "name": name, "redacted_value": redacted, "owner": owner}

    return Org(
        projects=[
            {"id": WEB_SHOP, "name": "Web Shop", "archived": False},
            {"id": DATA_PIPELINE, "name": "Data Pipeline", "archived": False},
            {"id": OLD_CHATBOT, "name": "Old Chatbot", "archived": True},
            {"id": SANDBOX, "name": "Sandbox", "archived": False},
        ],
        api_keys={
            WEB_SHOP: [
                key("key_Ws1kProdSrvA9", "Production server", "sk-proj-Ab...x1Yz", user_owner(ada)),
                key("key_Ws2kZoeLptB8", "Zoë's key", "sk-proj-Cd...w2Xy", user_owner(zoe, "member")),
                key("key_Ws3kCheckoutC7", "Checkout worker", "sk-svcac-Ef...v3Wx",
                    service_account_owner(checkout_bot)),
                key("key_Ws4kStagingD6", "Staging", "sk-proj-Gh...u4Vw", user_owner(dana)),
                key("key_Ws5kNightlyE5", "Nightly batch", "sk-svcac-Ij...t5Uv",
                    service_account_owner(batch_runner)),
            ],
            DATA_PIPELINE: [
                key("key_Dp1kIngestF4", "ETL ingest", "sk-svcac-Kl...s6Tu", service_account_owner(etl)),
                key("key_Dp2kNotebkG3", "Notebook — Bob", "sk-proj-Mn...r7St", user_owner(bob, "member")),
                key("key_Dp3kDashbdH2", "Analytics dashboard", "sk-proj-Op...q8Rs", user_owner(chen, "member")),
                key("key_Dp4kBackflJ1", "Backfill", "sk-svcac-Qr...p9Qr", service_account_owner(etl)),
            ],
            OLD_CHATBOT: [
                key("key_Oc1kLegacyK0", "Legacy bot", "sk-proj-St...o0Pq", user_owner(ada)),
                key("key_Oc2kChatSvcL9", "Chatbot service", "sk-svcac-Uv...n1Op",
                    service_account_owner(old_bot)),
            ],
        },
        admin_keys=[
            key("key_Ad1kMainAdmM8", "Main Admin Key", "sk-admin...a1Bc", admin_service_account_owner(admin_bot)),
            key("key_Ad2kZoeAdmN7", "Zoë's admin key", "sk-admin...d2Ef", admin_user_owner(zoe, "reader")),
            key("key_Ad3kBillingP6", "Billing export", "sk-admin...g3Hi", admin_user_owner(dana)),
        ],
        users=[ada, zoe, bob, chen, dana],
        service_accounts={
            WEB_SHOP: [checkout_bot, batch_runner],
            DATA_PIPELINE: [etl],
            OLD_CHATBOT: [old_bot],  # listed only via key owners: the route answers 400
        },
    )


# A route's answer to a GET, from its query: (status, JSON body).
Route = Callable[[dict[str, str]], tuple[int, dict]]


class AdminApi:
    """The organization's lists as the Admin API pages them, from ``org`` alone: the routes
    and what discovery should learn, for a fake to serve (``FakeAdmin`` in memory, and
    ``tests/support/tcp_upstream.py``'s ``TcpAdmin`` on a socket)."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def routes(self) -> dict[str, Route]:
        """The fixed routes, and two per project in ``org.projects``."""
        routes: dict[str, Route] = {PROJECTS: self._projects, ADMIN_KEYS: self._admin_keys, USERS: self._users}
        for project in self.org.projects:
            routes[api_keys_path(project["id"])] = partial(self._api_keys, project["id"])
            routes[service_accounts_path(project["id"])] = partial(self._service_accounts, project["id"])
        return routes

    def answer(self, path: str, query: str) -> tuple[int, dict] | None:
        """(status, JSON body) for ``GET path?query``; None for a path that lists nothing."""
        route = self.routes().get(path)
        return None if route is None else route(dict(parse_qsl(query, keep_blank_values=True)))

    def install(self) -> None:
        """(Re)register the routes with the server the fake serves on, as ``org.projects`` changed."""

    # --- changing the organization ---------------------------------------------------------

    def delete_key(self, project_id: str, key_id: str) -> None:
        keys = self.org.api_keys.get(project_id, [])
        index = next((i for i, key in enumerate(keys) if key["id"] == key_id), None)
        if index is None:
            raise KeyError(f"no key {key_id} in project {project_id}")
        del keys[index]

    def add_key(self, project_id: str, key: dict) -> None:
        """Append ``key`` ({"id", "name", "owner"}, optional "redacted_value", ...) to the project."""
        if self._project(project_id) is None:
            raise KeyError(f"no project {project_id}")
        if key["id"] in self.all_key_ids():
            raise ValueError(f"key id {key['id']} is already used")
        if key["owner"]["type"] not in ("user", "service_account"):
            raise ValueError(f"unknown owner type in {key['owner']!r}")
        self.org.api_keys.setdefault(project_id, []).append(dict(key))

    def delete_admin_key(self, key_id: str) -> None:
        index = next((i for i, key in enumerate(self.org.admin_keys) if key["id"] == key_id), None)
        if index is None:
            raise KeyError(f"no admin key {key_id}")
        del self.org.admin_keys[index]

    def add_project(self, project: dict) -> None:
        """Append ``project`` ({"id", "name", "archived"}) and register its routes."""
        if self._project(project["id"]) is not None:
            raise ValueError(f"project id {project['id']} is already used")
        self.org.projects.append({"archived": False, **project})
        self.install()

    def archive_project(self, project_id: str) -> None:
        project = self._project(project_id)
        if project is None:
            raise KeyError(f"no project {project_id}")
        project["archived"] = True


    # --- what was asked, and what discovery should learn -----------------------------------

    def key_names(self) -> dict[str, str]:
        """{key id: name} of every key: all projects' (archived too, any owner) and admin keys."""
        names = {key["id"]: key["name"] for keys in self.org.api_keys.values() for key in keys}
        names.update((key["id"], key["name"]) for key in self.org.admin_keys)
        return names

    def all_key_ids(self) -> set[str]:
        return set(self.key_names())

    def project_key_names(self, project_id: str) -> dict[str, str]:
        return {key["id"]: key["name"] for key in self.org.api_keys.get(project_id, [])}

    def admin_key_names(self) -> dict[str, str]:
        return {key["id"]: key["name"] for key in self.org.admin_keys}

    def project_names(self) -> dict[str, str]:
        """{project id: name}, archived projects included."""
        return {p["id"]: p["name"] for p in self.org.projects}

    def user_names(self) -> dict[str, str]:
        return {u["id"]: u["name"] for u in self.org.users}

    def service_account_names(self) -> dict[str, str]:
        """{service account id: name} that the service_accounts route reveals (active projects
        only; an archived project's accounts are known only as key owners)."""
        archived = {p["id"] for p in self.org.projects if p.get("archived")}
        return {a["id"]: a["name"] for pid, accounts in self.org.service_accounts.items()
                if pid not in archived for a in accounts}

    # --- the routes -------------------------------------------------------------------------

    def _project(self, project_id: str) -> dict | None:
        return next((p for p in self.org.projects if p["id"] == project_id), None)

    def _page(self, items: list[dict], query: dict[str, str]) -> tuple[int, dict]:
        limit_text = query.get("limit", "20")
        try:
            limit = int(limit_text)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return 400, openai_error(f"Invalid 'limit': expected an integer between 1 and 100, "
                                     f"got {limit_text!r}.", param="limit", code="invalid_value")
        start = 0
        if "after" in query:
            ids = [item["id"] for item in items]
            if query["after"] not in ids:
                return 400, openai_error(f"Invalid 'after': no object with id {query['after']!r} "
                                         f"in this list.", param="after", code="invalid_value")
            start = ids.index(query["after"]) + 1
        end = start + min(limit, self.org.page_size)
        data = copy.deepcopy(items[start:end])
        return 200, {"object": "list", "data": data,
                     "first_id": data[0]["id"] if data else None,
                     "last_id": data[-1]["id"] if data else None,
                     "has_more": end < len(items)}

    def _projects(self, query: dict[str, str]) -> tuple[int, dict]:
        include_archived = query.get("include_archived", "false")
        if include_archived not in ("true", "false"):
            return 400, openai_error(f"Invalid 'include_archived': expected a boolean, got "
                                     f"{include_archived!r}.", param="include_archived", code="invalid_value")
        items = []
        for p in self.org.projects:
            archived = bool(p.get("archived"))
            if archived and include_archived != "true":
                continue
            items.append({"id": p["id"], "object": "organization.project", "name": p["name"],
                          "created_at": p.get("created_at", CREATED_AT),
                          "archived_at": p.get("archived_at", ARCHIVED_AT) if archived else None,
                          "status": "archived" if archived else "active"})
        return self._page(items, query)

    def _api_keys(self, project_id: str, query: dict[str, str]) -> tuple[int, dict]:
        access = query.get("owner_project_access")
        if access not in (None, "active", "inactive", "any"):
            return 400, openai_error(f"Invalid 'owner_project_access': expected one of 'active', "
                                     f"'inactive', 'any', got {access!r}.", param="owner_project_access",
                                     code="invalid_value")
        items = []
        for key in self.org.api_keys.get(project_id, []):
            key_access = key.get("owner_project_access", "active")
            if access != "any":
                # Without "any", membership-based visibility: service accounts' keys are hidden.
                if key["owner"]["type"] == "service_account":
                    continue
                if access is not None and key_access != access:
                    continue
            created_at = key.get("created_at", CREATED_AT)
            items.append({"object": "organization.project.api_key",
                          "redacted_value": key.get("redacted_value", f"sk-proj-...{key['id'][-4:]}"),
                          "name": key["name"], "created_at": created_at,
                          "last_used_at": key.get("last_used_at", LAST_USED_AT), "id": key["id"],
                          "owner_project_access": key_access, "owner": key["owner"]})
        return self._page(items, query)

    def _admin_keys(self, query: dict[str, str]) -> tuple[int, dict]:
        order = query.get("order", "asc")
        if order not in ("asc", "desc"):
            return 400, openai_error(f"Invalid 'order': expected 'asc' or 'desc', got {order!r}.",
                                     param="order", code="invalid_value")
        items = [{"object": "organization.admin_api_key", "id": key["id"], "name": key["name"],
                  "redacted_value": key.get("redacted_value", f"sk-admin...{key['id'][-4:]}"),
                  "created_at": key.get("created_at", CREATED_AT),
                  "expires_at": key.get("expires_at", EXPIRES_AT),
                  "last_used_at": key.get("last_used_at", LAST_USED_AT), "owner": key["owner"]}
                 for key in self.org.admin_keys]
        if order == "desc":
            items.reverse()
        return self._page(items, query)

    def _users(self, query: dict[str, str]) -> tuple[int, dict]:
        items = [{"object": "organization.user", "id": u["id"], "name": u["name"], "email": u["email"],
                  "role": u.get("role", "reader"), "added_at": u.get("added_at", CREATED_AT)}
                 for u in self.org.users]
        return self._page(items, query)

    def _service_accounts(self, project_id: str, query: dict[str, str]) -> tuple[int, dict]:
        project = self._project(project_id)
        if project is not None and project.get("archived"):
            return 400, openai_error(f"Project {project_id} is archived and cannot be modified or "
                                     f"listed; unarchive it first.")
        items = [{"object": "organization.project.service_account", "id": a["id"], "name": a["name"],
                  "role": a.get("role", "member"), "created_at": a.get("created_at", CREATED_AT)}
                 for a in self.org.service_accounts.get(project_id, [])]
        return self._page(items, query)


class FakeAdmin(AdminApi):
    """The Admin API installed onto a FakeOpenAI, able to fail on demand."""

    def __init__(self, openai: FakeOpenAI, org: Org) -> None:
        super().__init__(org)
        self.openai = openai
        self._routes: dict[str, Route] = {}
        self._failures: dict[str, deque[list[Any]]] = {}  # path -> [[behaviour, times left], ...]
        self._others: dict[str, Behaviour] = {}  # what non-route paths given to fail_next did before
        self.install()

    # --- installing -----------------------------------------------------------------------

    def install(self) -> None:
        """(Re)register the routes: the fixed ones, and two per project in ``org.projects``.
        Paths of projects that left ``org.projects`` fall through to the spec's examples again."""
        routes = self.routes()
        for stale in self._routes.keys() - routes.keys():
            if stale not in self._failures:
                self.openai.behaviours.pop(stale.encode(), None)
        self._routes = routes
        for path in routes:
            self.openai.on(path, self._dispatch)

    def _dispatch(self, request: server.Request, received: Received) -> bytes | int:
        path, _, query = received.target.decode("latin-1").partition("?")
        behaviour = self._take_failure(path)
        if behaviour is not None:
            return behaviour(request, received)
        route = self._routes.get(path) if received.method == b"GET" else None
        if route is None:  # another method, or a path fail_next borrowed
            return self._others.get(path, serve_example)(request, received)
        status, body = route(dict(parse_qsl(query, keep_blank_values=True)))
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        try:
            return json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, which only its \u escape can send
            return json.dumps(body).encode("ascii")

    def _take_failure(self, path: str) -> Behaviour | None:
        queue = self._failures.get(path)
        if not queue:
            return None
        entry = queue[0]
        entry[1] -= 1
        if entry[1] == 0:
            queue.popleft()
        if not queue:
            del self._failures[path]
        return entry[0]

    # --- misbehaving ----------------------------------------------------------------------

    def fail_next(self, path: str, behaviour: Behaviour, times: int = 1) -> None:
        """The next ``times`` requests to ``path`` (any method, any query) get ``behaviour``
        instead of the normal answer, then the normal answer resumes. Calls queue up in order."""
        if "?" in path:
            raise ValueError(f"fail_next takes a path without a query: {path!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        if path not in self._routes and path not in self._others:
            self._others[path] = self.openai.behaviours.get(path.encode(), serve_example)
        self.openai.on(path, self._dispatch)
        self._failures.setdefault(path, deque()).append([behaviour, times])

    # --- what was asked -------------------------------------------------------------------

    def requests_for(self, path: str) -> list[Received]:
        """Requests whose path (before '?') equals ``path``, in arrival order."""
        return [r for r in self.openai.received if r.path.decode("latin-1") == path]

