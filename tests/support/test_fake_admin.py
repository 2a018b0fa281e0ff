"""The fake Admin API (tests/fakeadmin.py) behaves as OpenAI's does, as far as discovery cares."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.fake_admin import (ADMIN_KEYS, DATA_PIPELINE, OLD_CHATBOT, PROJECTS, SANDBOX, USERS, WEB_SHOP,
                             FakeAdmin, api_keys_path, sample_org, service_account_owner,
                             service_accounts_path, user_owner)
from tests.support.tcp_upstream import EXAMPLES, FakeUpstream, hold, reply
from tests.support.raw_http import Answer, call

ERROR_401 = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                       "param": None, "code": "invalid_api_key"}}
ERROR_429 = {"error": {"message": "Rate limit reached.", "type": "requests", "param": None,
                       "code": "rate_limit_exceeded"}}


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeAdmin:
    return FakeAdmin(upstream, sample_org())


def get(upstream: FakeUpstream, path: str, **query: Any) -> Answer:
    return call(upstream.url, path + ("?" + urlencode(query) if query else ""))


def walk(upstream: FakeUpstream, path: str, **query: Any) -> list[dict]:
    """Every page of a list, following after=last_id while has_more."""
    pages: list[dict] = []
    while True:
        answer = get(upstream, path, **query)
        assert answer.status == 200, answer.body
        pages.append(answer.json())
        if not pages[-1]["has_more"]:
            return pages
        assert len(pages) < 20, "the walk does not end"
        query = {**query, "after": pages[-1]["last_id"]}


def ids(pages: list[dict]) -> list[str]:
    return [item["id"] for page in pages for item in page["data"]]


def example_item(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())["data"][0]


# --- pagination -------------------------------------------------------------------------------

def test_walking_all_pages_with_after_last_id_yields_every_key_exactly_once(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    seen: list[str] = []
    for project_id in fake.project_names():
        pages = walk(upstream, api_keys_path(project_id), owner_project_access="any", limit=100)
        assert all(len(page["data"]) <= fake.org.page_size for page in pages)
        assert ids(pages) == list(fake.project_key_names(project_id))
        seen += ids(pages)
    admin_pages = walk(upstream, ADMIN_KEYS)
    assert ids(admin_pages) == list(fake.admin_key_names())
    seen += ids(admin_pages)

    assert [key for key, count in Counter(seen).items() if count > 1] == []
    assert set(seen) == fake.all_key_ids()
    assert len(walk(upstream, api_keys_path(WEB_SHOP), owner_project_access="any")) == 3


def test_walking_users_projects_and_service_accounts_yields_each_exactly_once(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    users = walk(upstream, USERS)
    assert ids(users) == list(fake.user_names()) and len(users) == 3
    assert {u["id"]: u["name"] for p in users for u in p["data"]} == fake.user_names()
    projects = walk(upstream, PROJECTS, include_archived="true")
    assert {p["id"]: p["name"] for page in projects for p in page["data"]} == fake.project_names()
    assert len(ids(projects)) == len(set(ids(projects))) == 4
    accounts = {}
    for project_id in (WEB_SHOP, DATA_PIPELINE, SANDBOX):
        pages = walk(upstream, service_accounts_path(project_id))
        accounts.update((a["id"], a["name"]) for page in pages for a in page["data"])
    assert accounts == fake.service_account_names()


def test_first_id_last_id_and_has_more_are_exact(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    web_shop = walk(upstream, api_keys_path(WEB_SHOP), owner_project_access="any")
    assert [[k["id"] for k in page["data"]] for page in web_shop] == [
        ["key_Ws1kProdSrvA9", "key_Ws2kZoeLptB8"], ["key_Ws3kCheckoutC7", "key_Ws4kStagingD6"],
        ["key_Ws5kNightlyE5"]]
    assert [(p["first_id"], p["last_id"], p["has_more"]) for p in web_shop] == [
        ("key_Ws1kProdSrvA9", "key_Ws2kZoeLptB8", True),
        ("key_Ws3kCheckoutC7", "key_Ws4kStagingD6", True),
        ("key_Ws5kNightlyE5", "key_Ws5kNightlyE5", False)]
    assert all(p["object"] == "list" and list(p) == ["object", "data", "first_id", "last_id", "has_more"]
               for p in web_shop)

    # Four keys: the second page is full and is still the last one.
    pipeline = walk(upstream, api_keys_path(DATA_PIPELINE), owner_project_access="any")
    assert [(p["first_id"], p["last_id"], p["has_more"]) for p in pipeline] == [
        ("key_Dp1kIngestF4", "key_Dp2kNotebkG3", True), ("key_Dp3kDashbdH2", "key_Dp4kBackflJ1", False)]

    empty = get(upstream, api_keys_path(SANDBOX), owner_project_access="any").json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_limit_is_an_upper_bound_and_page_size_caps_it(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    one = get(upstream, USERS, limit=1).json()
    assert [u["id"] for u in one["data"]] == ["user-Ada7LvQ2cW9xRt"] and one["has_more"] is True
    assert len(get(upstream, USERS, limit=100).json()["data"]) == 2
    assert len(walk(upstream, USERS, limit=1)) == 5
    fake.org.page_size = 10
    everyone = get(upstream, USERS, limit=100).json()
    assert len(everyone["data"]) == 5 and everyone["has_more"] is False


@pytest.mark.parametrize("limit", ["0", "101", "ten", ""])
def test_a_limit_outside_1_to_100_is_a_400(upstream: FakeUpstream, fake: FakeAdmin, limit: str) -> None:
    answer = get(upstream, USERS, limit=limit)
    assert answer.status == 400
    assert answer.error()["param"] == "limit"


@pytest.mark.parametrize("after", ["key_nonexistent", "", "None", "user-Ada7LvQ2cW9xRt"])
def test_an_after_that_is_not_an_id_in_the_list_is_a_400(upstream: FakeUpstream, fake: FakeAdmin,
                                                         after: str) -> None:
    answer = get(upstream, api_keys_path(WEB_SHOP), owner_project_access="any", after=after)
    assert answer.status == 400
    error = answer.error()
    assert (error["type"], error["param"]) == ("invalid_request_error", "after")


def test_after_a_key_hidden_without_owner_project_access_any_is_a_400(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    # The cursor is an id of the list as filtered for this request.
    assert get(upstream, api_keys_path(WEB_SHOP), after="key_Ws3kCheckoutC7").status == 400
    assert get(upstream, api_keys_path(WEB_SHOP), owner_project_access="any",
               after="key_Ws3kCheckoutC7").status == 200


# --- filters ----------------------------------------------------------------------------------

def test_include_archived_true_adds_the_archived_project(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    default = [p for page in walk(upstream, PROJECTS) for p in page["data"]]
    assert [p["id"] for p in default] == [WEB_SHOP, DATA_PIPELINE, SANDBOX]
    assert all(p["status"] == "active" and p["archived_at"] is None for p in default)
    assert ids(walk(upstream, PROJECTS, include_archived="false")) == [WEB_SHOP, DATA_PIPELINE, SANDBOX]

    everything = [p for page in walk(upstream, PROJECTS, include_archived="true") for p in page["data"]]
    assert [p["id"] for p in everything] == [WEB_SHOP, DATA_PIPELINE, OLD_CHATBOT, SANDBOX]
    old = next(p for p in everything if p["id"] == OLD_CHATBOT)
    assert old["name"] == "Old Chatbot" and old["status"] == "archived"
    assert isinstance(old["archived_at"], int)


def test_archive_project_hides_it_from_the_default_projects_list(upstream: FakeUpstream,
                                                                  fake: FakeAdmin) -> None:
    fake.archive_project(SANDBOX)
    assert ids(walk(upstream, PROJECTS)) == [WEB_SHOP, DATA_PIPELINE]
    assert get(upstream, service_accounts_path(SANDBOX)).status == 400


def test_owner_project_access_any_reveals_keys_owned_by_service_accounts(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    hidden = [k for page in walk(upstream, api_keys_path(WEB_SHOP)) for k in page["data"]]
    assert [k["id"] for k in hidden] == ["key_Ws1kProdSrvA9", "key_Ws2kZoeLptB8", "key_Ws4kStagingD6"]
    assert {k["owner"]["type"] for k in hidden} == {"user"}
    assert ids(walk(upstream, api_keys_path(WEB_SHOP), owner_project_access="active")) == [
        k["id"] for k in hidden]

    shown = [k for page in walk(upstream, api_keys_path(WEB_SHOP), owner_project_access="any")
             for k in page["data"]]
    assert [k["id"] for k in shown] == list(fake.project_key_names(WEB_SHOP))
    owners = {k["id"]: k["owner"] for k in shown}
    assert owners["key_Ws3kCheckoutC7"]["type"] == "service_account"
    assert owners["key_Ws3kCheckoutC7"]["service_account"]["name"] == "checkout-bot"
    assert owners["key_Ws5kNightlyE5"]["service_account"]["name"] == "batch-runner"

    # A project where only user keys remain without the flag: one page instead of two.
    assert ids(walk(upstream, api_keys_path(DATA_PIPELINE))) == ["key_Dp2kNotebkG3", "key_Dp3kDashbdH2"]


def test_an_unknown_owner_project_access_is_a_400(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    answer = get(upstream, api_keys_path(WEB_SHOP), owner_project_access="all")
    assert answer.status == 400 and answer.error()["param"] == "owner_project_access"


def test_service_accounts_of_an_archived_project_is_a_400_in_openais_error_shape(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    answer = get(upstream, service_accounts_path(OLD_CHATBOT))
    assert answer.status == 400
    error = answer.error()
    assert error["type"] == "invalid_request_error" and "archived" in error["message"]
    assert error["param"] is None and error["code"] is None

    active = get(upstream, service_accounts_path(WEB_SHOP)).json()
    assert [(a["id"], a["name"]) for a in active["data"]] == [
        ("svc_acct_Ck8tBo2tXq5Lw", "checkout-bot"), ("svc_acct_Bt4rNr7uYm1Pz", "batch-runner")]
    # The archived project's keys are still listed, owners and all.
    old_keys = walk(upstream, api_keys_path(OLD_CHATBOT), owner_project_access="any")
    assert ids(old_keys) == ["key_Oc1kLegacyK0", "key_Oc2kChatSvcL9"]


# --- shapes -----------------------------------------------------------------------------------

def test_items_have_the_fields_of_the_spec_examples(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    key = example_item("get_organization_projects_project_id_api_keys.response.json")
    keys = [k for page in walk(upstream, api_keys_path(WEB_SHOP), owner_project_access="any") for k in page["data"]]
    for item in keys:
        assert list(item) == list(key)
        assert item["object"] == "organization.project.api_key"
        kind = item["owner"]["type"]
        assert list(item["owner"]) == ["type", kind]
    assert set(keys[0]["owner"]["user"]) == set(key["owner"]["user"])
    assert set(keys[2]["owner"]["service_account"]) == {"id", "name", "role", "created_at"}

    admin = example_item("get_organization_admin_api_keys.response.json")
    for item in get(upstream, ADMIN_KEYS).json()["data"]:
        assert list(item) == list(admin) and item["object"] == "organization.admin_api_key"
        assert set(item["owner"]) == set(admin["owner"])
        assert item["redacted_value"].startswith("sk-admin")

    for path, example in [(USERS, "get_organization_users.response.json"),
                          (PROJECTS, "get_organization_projects.response.json"),
                          (service_accounts_path(WEB_SHOP),
                           "get_organization_projects_project_id_service_accounts.response.json")]:
        expected = example_item(example)
        for item in get(upstream, path, include_archived="true").json()["data"]:
            assert set(item) == set(expected) and item["object"] == expected["object"], path


def test_non_ascii_names_arrive_as_utf8(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    answer = get(upstream, api_keys_path(WEB_SHOP))
    assert answer.header("Content-Type") == "application/json"
    assert "Zoë's key".encode() in answer.body
    assert answer.json()["data"][1]["name"] == "Zoë's key"


def test_the_openai_sdk_pages_through_the_fake(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    from openai import OpenAI

    client = OpenAI(admin_api_key="sk-admin-fake", api_key="sk-unused", base_url=f"{upstream.url}/v1",
                    max_retries=0)
    organization = client.admin.organization
    keys = organization.projects.api_keys.list(WEB_SHOP, owner_project_access="any")
    assert {k.id: k.name for k in keys} == fake.project_key_names(WEB_SHOP)
    assert {p.id for p in organization.projects.list(include_archived=True)} == set(fake.project_names())
    assert {u.id: u.name for u in organization.users.list()} == fake.user_names()
    assert {k.id: k.name for k in organization.admin_api_keys.list()} == fake.admin_key_names()
    assert len(fake.requests_for(api_keys_path(WEB_SHOP))) == 3


# --- misbehaving on demand --------------------------------------------------------------------

@pytest.mark.parametrize("behaviour, status, content_type, body, retry_after", [
    (reply(401, ERROR_401), 401, "application/json", json.dumps(ERROR_401).encode(), None),
    (reply(429, ERROR_429, headers=[("Retry-After", "1")]), 429, "application/json",
     json.dumps(ERROR_429).encode(), "1"),
    (reply(500, "<html>oops</html>", content_type="text/html"), 500, "text/html", b"<html>oops</html>", None),
], ids=["401", "429-retry-after", "500-html"])
def test_fail_next_answers_the_behaviour_once_then_recovers(
        upstream: FakeUpstream, fake: FakeAdmin, behaviour: Any, status: int, content_type: str,
        body: bytes, retry_after: str | None) -> None:
    fake.fail_next(USERS, behaviour)
    failed = get(upstream, USERS, limit=5)
    assert (failed.status, failed.header("Content-Type"), failed.body) == (status, content_type, body)
    assert failed.header("Retry-After") == retry_after

    recovered = get(upstream, USERS, limit=5)
    assert recovered.status == 200
    assert recovered.json()["first_id"] == "user-Ada7LvQ2cW9xRt"


def test_fail_next_on_a_project_route_mid_walk_then_the_walk_resumes(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    path = api_keys_path(WEB_SHOP)
    first = get(upstream, path, owner_project_access="any").json()
    fake.fail_next(path, reply(500, "<html>oops</html>", content_type="text/html"), times=2)
    assert get(upstream, path, owner_project_access="any", after=first["last_id"]).status == 500
    assert get(upstream, path, owner_project_access="any", after=first["last_id"]).status == 500
    second = get(upstream, path, owner_project_access="any", after=first["last_id"]).json()
    assert second["first_id"] == "key_Ws3kCheckoutC7"
    # Other paths were never affected.
    assert get(upstream, api_keys_path(DATA_PIPELINE)).status == 200


def test_fail_next_calls_queue_up_in_order(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    fake.fail_next(PROJECTS, reply(429, ERROR_429, headers=[("Retry-After", "1")]), times=2)
    fake.fail_next(PROJECTS, reply(401, ERROR_401))
    assert [get(upstream, PROJECTS).status for _ in range(4)] == [429, 429, 401, 200]


def test_fail_next_with_hold_never_answers_then_recovers(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    fake.fail_next(ADMIN_KEYS, hold(limit=10))
    host, port = upstream.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=0.3)
    try:
        connection.request("GET", ADMIN_KEYS)
        with pytest.raises(TimeoutError):
            connection.getresponse()
    finally:
        connection.close()
    assert upstream.cancelled.wait(5), "the held request did not notice the client leaving"

    recovered = get(upstream, ADMIN_KEYS)
    assert recovered.status == 200 and recovered.json()["first_id"] == "key_Ad1kMainAdmM8"
    assert len(fake.requests_for(ADMIN_KEYS)) == 2


def test_fail_next_on_a_path_the_fake_does_not_serve_falls_back_to_the_examples(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    path = "/v1/organization/usage/completions"
    fake.fail_next(path, reply(401, ERROR_401))
    assert get(upstream, path, start_time=1).status == 401
    recovered = get(upstream, path, start_time=1)
    assert recovered.status == 200
    assert recovered.body == (EXAMPLES / "get_organization_usage_completions.response.json").read_bytes()


def test_fail_next_rejects_a_query_or_no_times(fake: FakeAdmin) -> None:
    with pytest.raises(ValueError):
        fake.fail_next(USERS + "?limit=1", reply(401, ERROR_401))
    with pytest.raises(ValueError):
        fake.fail_next(USERS, reply(401, ERROR_401), times=0)


# --- changing the organization ----------------------------------------------------------------

def test_delete_key_and_add_key_are_visible_on_the_next_walk(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    path = api_keys_path(WEB_SHOP)
    before = ids(walk(upstream, path, owner_project_access="any"))
    assert "key_Ws2kZoeLptB8" in before

    fake.delete_key(WEB_SHOP, "key_Ws2kZoeLptB8")
    zoe = next(u for u in fake.org.users if u["name"] == "Zoë Quinn")
    fake.add_key(WEB_SHOP, {"id": "key_Ws6kNewZoeQ4", "name": "Zoë's new key",
                            "redacted_value": "sk-proj-Zz...z9Zz", "owner": user_owner(zoe)})
    fake.add_key(WEB_SHOP, {"id": "key_Ws7kNewBotR3", "name": "New bot",
                            "owner": service_account_owner({"id": "svc_acct_Nw1bBt", "name": "new-bot"})})

    after = walk(upstream, path, owner_project_access="any")
    assert ids(after) == [k for k in before if k != "key_Ws2kZoeLptB8"] + ["key_Ws6kNewZoeQ4", "key_Ws7kNewBotR3"]
    assert len(after) == 3
    names = {k["id"]: k["name"] for page in after for k in page["data"]}
    assert names["key_Ws6kNewZoeQ4"] == "Zoë's new key"
    assert "key_Ws2kZoeLptB8" not in fake.all_key_ids()
    assert {"key_Ws6kNewZoeQ4", "key_Ws7kNewBotR3"} <= fake.all_key_ids()
    # Without owner_project_access=any the new service-account key stays hidden.
    assert "key_Ws7kNewBotR3" not in ids(walk(upstream, path))


def test_a_deleted_key_is_no_longer_a_valid_cursor(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    path = api_keys_path(WEB_SHOP)
    first = get(upstream, path, owner_project_access="any").json()
    fake.delete_key(WEB_SHOP, first["last_id"])
    assert get(upstream, path, owner_project_access="any", after=first["last_id"]).status == 400


def test_delete_admin_key_is_visible_on_the_next_walk(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    fake.delete_admin_key("key_Ad2kZoeAdmN7")
    assert ids(walk(upstream, ADMIN_KEYS)) == ["key_Ad1kMainAdmM8", "key_Ad3kBillingP6"]


def test_mutations_reject_unknown_or_duplicate_ids(fake: FakeAdmin) -> None:
    with pytest.raises(KeyError):
        fake.delete_key(WEB_SHOP, "key_nonexistent")
    with pytest.raises(KeyError):
        fake.add_key("proj_nonexistent", {"id": "key_x", "name": "x", "owner": {"type": "user", "user": {}}})
    with pytest.raises(ValueError):  # key ids are unique across projects and admin keys
        fake.add_key(SANDBOX, {"id": "key_Ad1kMainAdmM8", "name": "x", "owner": {"type": "user", "user": {}}})


def test_add_project_registers_its_routes(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    fake.add_project({"id": "proj_Nw2pRj5TkL8vAa", "name": "New Project"})
    fake.add_key("proj_Nw2pRj5TkL8vAa", {"id": "key_Nw1kFirstS2", "name": "First",
                                          "owner": user_owner(fake.org.users[0])})
    assert ids(walk(upstream, PROJECTS))[-1] == "proj_Nw2pRj5TkL8vAa"
    assert ids(walk(upstream, api_keys_path("proj_Nw2pRj5TkL8vAa"))) == ["key_Nw1kFirstS2"]
    assert get(upstream, service_accounts_path("proj_Nw2pRj5TkL8vAa")).json()["data"] == []


def test_install_unregisters_the_routes_of_a_project_removed_from_the_org(
        upstream: FakeUpstream, fake: FakeAdmin) -> None:
    with fake._lock:
        fake.org.projects = [p for p in fake.org.projects if p["id"] != SANDBOX]
    fake.install()
    assert api_keys_path(SANDBOX) not in upstream.behaviours
    assert service_accounts_path(SANDBOX) not in upstream.behaviours
    assert api_keys_path(WEB_SHOP) in upstream.behaviours


# --- the rest ---------------------------------------------------------------------------------

def test_unknown_routes_fall_through_to_the_examples(upstream: FakeUpstream, fake: FakeAdmin) -> None:
    usage = get(upstream, "/v1/organization/usage/completions", start_time=1)
    assert usage.body == (EXAMPLES / "get_organization_usage_completions.response.json").read_bytes()
    # A project the org does not have is not the fake's: FakeUpstream serves the spec's example.
    unknown = get(upstream, api_keys_path("proj_unknown"))
    assert unknown.json()["data"][0]["id"] == "key_abc"
    # So do other methods on the fake's paths.
    created = call(upstream.url, PROJECTS, method="POST", body=b'{"name": "x"}')
    assert created.body == (EXAMPLES / "post_organization_projects.response.json").read_bytes()


def test_requests_for_matches_the_path_before_the_query_in_order(upstream: FakeUpstream,
                                                                 fake: FakeAdmin) -> None:
    get(upstream, USERS, limit=2)
    get(upstream, PROJECTS)
    get(upstream, USERS, limit=2, after="user-Zo3Qn8KfLp1sVe")
    get(upstream, USERS + "/user-Ada7LvQ2cW9xRt")
    assert [r.target for r in fake.requests_for(USERS)] == [
        b"/v1/organization/users?limit=2", b"/v1/organization/users?limit=2&after=user-Zo3Qn8KfLp1sVe"]
    assert [r.method for r in fake.requests_for(PROJECTS)] == ["GET"]
    assert fake.requests_for(ADMIN_KEYS) == []


def test_concurrent_walks_while_keys_change_see_consistent_pages(upstream: FakeUpstream,
                                                                 fake: FakeAdmin) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def walker() -> None:
        try:
            results.append(ids(walk(upstream, USERS)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=walker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for n in range(20):  # changes to a project the walkers do not read, racing with their pages
        fake.add_key(SANDBOX, {"id": f"key_Sb{n}k", "name": f"k{n}", "owner": user_owner(fake.org.users[0])})
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert results == [list(fake.user_names())] * 8
    assert len(fake.project_key_names(SANDBOX)) == 20


def test_sample_org_has_what_discovery_tests_need() -> None:
    org = sample_org()
    assert len(org.projects) >= 3 and sum(p["archived"] for p in org.projects) == 1
    assert max(len(keys) for keys in org.api_keys.values()) >= 5 and org.page_size == 2
    owner_types = {k["owner"]["type"] for keys in org.api_keys.values() for k in keys}
    assert owner_types == {"user", "service_account"}
    assert len(org.admin_keys) >= 3 and len(org.users) >= 5
    assert all(p["id"].startswith("proj_") for p in org.projects)
    all_keys = [k for keys in org.api_keys.values() for k in keys] + org.admin_keys
    assert all(k["id"].startswith("key_") for k in all_keys)
    assert all(u["id"].startswith(("user-", "user_")) for u in org.users)
    assert {u["id"][:5] for u in org.users} == {"user-", "user_"}
    accounts = [a for accounts in org.service_accounts.values() for a in accounts]
    assert all(a["id"].startswith("svc_acct_") for a in accounts)
    active = {p["id"] for p in org.projects if not p["archived"]}
    assert any(org.service_accounts.get(pid) for pid in active)
    assert any(not k["name"].isascii() for k in all_keys)
    assert sample_org() == org and sample_org() is not org  # a fresh copy each time
    org.api_keys[WEB_SHOP].clear()
    assert sample_org().api_keys[WEB_SHOP]
