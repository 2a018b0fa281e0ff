"""The fake Admin API (tests/support/fake_admin.py) behaves as OpenAI's does, as far as
discovery cares. Driven in memory: treq's RequestTraversalAgent over the FakeOpenAI it is
installed on."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import treq
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived
from twisted.web.http_headers import Headers

from tests.support.memory import BytesProducer
from tests.support.answers import Answer
from tests.support.fake_admin import (ADMIN_KEYS, DATA_PIPELINE, OLD_CHATBOT, PROJECTS, SANDBOX, USERS, WEB_SHOP,
                                      FakeAdmin, api_keys_path, sample_org, service_account_owner,
                                      service_accounts_path, user_owner)
from tests.support.fake_openai import EXAMPLES, FakeOpenAI, hold, reply

ERROR_401 = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                       "param": None, "code": "invalid_api_key"}}
ERROR_429 = {"error": {"message": "Rate limit reached.", "type": "requests", "param": None,
                       "code": "rate_limit_exceeded"}}
BASE_URL = "http://openai.test"


class Client:
    """Requests to the fake, in memory; the fake answers at once, so every call returns."""

    def __init__(self, fake: FakeOpenAI):
        self.agent = RequestTraversalAgent(fake)

    def start(self, target: str, method: str = "GET", body: bytes | None = None) -> Deferred[Any]:
        producer = BytesProducer(body) if body is not None else None
        return self.agent.request(method.encode(), (BASE_URL + target).encode(), Headers(), producer)

    def call(self, target: str, method: str = "GET", body: bytes | None = None) -> Answer:
        response = self.result(self.start(target, method, body))
        content = self.result(treq.content(response))
        headers = [(k.decode(), v.decode()) for k, vs in response.headers.getAllRawHeaders() for v in vs]
        return Answer(response.code, headers, content)

    def result(self, d: Deferred[Any]) -> Any:
        self.agent.flush()
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "the fake did not answer"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]


@pytest.fixture
def admin(fake: FakeOpenAI) -> FakeAdmin:
    return FakeAdmin(fake, sample_org())


@pytest.fixture
def client(fake: FakeOpenAI) -> Client:
    return Client(fake)


def get(client: Client, path: str, **query: Any) -> Answer:
    return client.call(path + ("?" + urlencode(query) if query else ""))


def walk(client: Client, path: str, **query: Any) -> list[dict]:
    """Every page of a list, following after=last_id while has_more."""
    pages: list[dict] = []
    while True:
        answer = get(client, path, **query)
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
        client: Client, admin: FakeAdmin) -> None:
    seen: list[str] = []
    for project_id in admin.project_names():
        pages = walk(client, api_keys_path(project_id), owner_project_access="any", limit=100)
        assert all(len(page["data"]) <= admin.org.page_size for page in pages)
        assert ids(pages) == list(admin.project_key_names(project_id))
        seen += ids(pages)
    admin_pages = walk(client, ADMIN_KEYS)
    assert ids(admin_pages) == list(admin.admin_key_names())
    seen += ids(admin_pages)

    assert [key for key, count in Counter(seen).items() if count > 1] == []
    assert set(seen) == admin.all_key_ids()
    assert len(walk(client, api_keys_path(WEB_SHOP), owner_project_access="any")) == 3


def test_walking_users_projects_and_service_accounts_yields_each_exactly_once(
        client: Client, admin: FakeAdmin) -> None:
    users = walk(client, USERS)
    assert ids(users) == list(admin.user_names()) and len(users) == 3
    assert {u["id"]: u["name"] for p in users for u in p["data"]} == admin.user_names()
    projects = walk(client, PROJECTS, include_archived="true")
    assert {p["id"]: p["name"] for page in projects for p in page["data"]} == admin.project_names()
    assert len(ids(projects)) == len(set(ids(projects))) == 4
    accounts: dict[str, str] = {}
    for project_id in (WEB_SHOP, DATA_PIPELINE, SANDBOX):
        pages = walk(client, service_accounts_path(project_id))
        accounts.update((a["id"], a["name"]) for page in pages for a in page["data"])
    assert accounts == admin.service_account_names()


def test_first_id_last_id_and_has_more_are_exact(client: Client, admin: FakeAdmin) -> None:
    web_shop = walk(client, api_keys_path(WEB_SHOP), owner_project_access="any")
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
    pipeline = walk(client, api_keys_path(DATA_PIPELINE), owner_project_access="any")
    assert [(p["first_id"], p["last_id"], p["has_more"]) for p in pipeline] == [
        ("key_Dp1kIngestF4", "key_Dp2kNotebkG3", True), ("key_Dp3kDashbdH2", "key_Dp4kBackflJ1", False)]

    empty = get(client, api_keys_path(SANDBOX), owner_project_access="any").json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_limit_is_an_upper_bound_and_page_size_caps_it(client: Client, admin: FakeAdmin) -> None:
    one = get(client, USERS, limit=1).json()
    assert [u["id"] for u in one["data"]] == ["user-Ada7LvQ2cW9xRt"] and one["has_more"] is True
    assert len(get(client, USERS, limit=100).json()["data"]) == 2
    assert len(walk(client, USERS, limit=1)) == 5
    admin.org.page_size = 10
    everyone = get(client, USERS, limit=100).json()
    assert len(everyone["data"]) == 5 and everyone["has_more"] is False


@pytest.mark.parametrize("limit", ["0", "101", "ten", ""])
def test_a_limit_outside_1_to_100_is_a_400(client: Client, admin: FakeAdmin, limit: str) -> None:
    answer = get(client, USERS, limit=limit)
    assert answer.status == 400
    assert answer.error()["param"] == "limit"


@pytest.mark.parametrize("after", ["key_nonexistent", "", "None", "user-Ada7LvQ2cW9xRt"])
def test_an_after_that_is_not_an_id_in_the_list_is_a_400(client: Client, admin: FakeAdmin,
                                                         after: str) -> None:
    answer = get(client, api_keys_path(WEB_SHOP), owner_project_access="any", after=after)
    assert answer.status == 400
    error = answer.error()
    assert (error["type"], error["param"]) == ("invalid_request_error", "after")


def test_after_a_key_hidden_without_owner_project_access_any_is_a_400(
        client: Client, admin: FakeAdmin) -> None:
    # The cursor is an id of the list as filtered for this request.
    assert get(client, api_keys_path(WEB_SHOP), after="key_Ws3kCheckoutC7").status == 400
    assert get(client, api_keys_path(WEB_SHOP), owner_project_access="any",
               after="key_Ws3kCheckoutC7").status == 200


# --- filters ----------------------------------------------------------------------------------

def test_include_archived_true_adds_the_archived_project(client: Client, admin: FakeAdmin) -> None:
    default = [p for page in walk(client, PROJECTS) for p in page["data"]]
    assert [p["id"] for p in default] == [WEB_SHOP, DATA_PIPELINE, SANDBOX]
    assert all(p["status"] == "active" and p["archived_at"] is None for p in default)
    assert ids(walk(client, PROJECTS, include_archived="false")) == [WEB_SHOP, DATA_PIPELINE, SANDBOX]

    everything = [p for page in walk(client, PROJECTS, include_archived="true") for p in page["data"]]
    assert [p["id"] for p in everything] == [WEB_SHOP, DATA_PIPELINE, OLD_CHATBOT, SANDBOX]
    old = next(p for p in everything if p["id"] == OLD_CHATBOT)
    assert old["name"] == "Old Chatbot" and old["status"] == "archived"
    assert isinstance(old["archived_at"], int)


def test_archive_project_hides_it_from_the_default_projects_list(client: Client,
                                                                  admin: FakeAdmin) -> None:
    admin.archive_project(SANDBOX)
    assert ids(walk(client, PROJECTS)) == [WEB_SHOP, DATA_PIPELINE]
    assert get(client, service_accounts_path(SANDBOX)).status == 400


def test_owner_project_access_any_reveals_keys_owned_by_service_accounts(
        client: Client, admin: FakeAdmin) -> None:
    hidden = [k for page in walk(client, api_keys_path(WEB_SHOP)) for k in page["data"]]
    assert [k["id"] for k in hidden] == ["key_Ws1kProdSrvA9", "key_Ws2kZoeLptB8", "key_Ws4kStagingD6"]
    assert {k["owner"]["type"] for k in hidden} == {"user"}
    assert ids(walk(client, api_keys_path(WEB_SHOP), owner_project_access="active")) == [
        k["id"] for k in hidden]

    shown = [k for page in walk(client, api_keys_path(WEB_SHOP), owner_project_access="any")
             for k in page["data"]]
    assert [k["id"] for k in shown] == list(admin.project_key_names(WEB_SHOP))
    owners = {k["id"]: k["owner"] for k in shown}
    assert owners["key_Ws3kCheckoutC7"]["type"] == "service_account"
    assert owners["key_Ws3kCheckoutC7"]["service_account"]["name"] == "checkout-bot"
    assert owners["key_Ws5kNightlyE5"]["service_account"]["name"] == "batch-runner"

    # A project where only user keys remain without the flag: one page instead of two.
    assert ids(walk(client, api_keys_path(DATA_PIPELINE))) == ["key_Dp2kNotebkG3", "key_Dp3kDashbdH2"]


def test_an_unknown_owner_project_access_is_a_400(client: Client, admin: FakeAdmin) -> None:
    answer = get(client, api_keys_path(WEB_SHOP), owner_project_access="all")
    assert answer.status == 400 and answer.error()["param"] == "owner_project_access"


def test_service_accounts_of_an_archived_project_is_a_400_in_openais_error_shape(
        client: Client, admin: FakeAdmin) -> None:
    answer = get(client, service_accounts_path(OLD_CHATBOT))
    assert answer.status == 400
    error = answer.error()
    assert error["type"] == "invalid_request_error" and "archived" in error["message"]
    assert error["param"] is None and error["code"] is None

    active = get(client, service_accounts_path(WEB_SHOP)).json()
    assert [(a["id"], a["name"]) for a in active["data"]] == [
        ("svc_acct_Ck8tBo2tXq5Lw", "checkout-bot"), ("svc_acct_Bt4rNr7uYm1Pz", "batch-runner")]
    # The archived project's keys are still listed, owners and all.
    old_keys = walk(client, api_keys_path(OLD_CHATBOT), owner_project_access="any")
    assert ids(old_keys) == ["key_Oc1kLegacyK0", "key_Oc2kChatSvcL9"]


# --- shapes -----------------------------------------------------------------------------------

def test_items_have_the_fields_of_the_spec_examples(client: Client, admin: FakeAdmin) -> None:
    key = example_item("get_organization_projects_project_id_api_keys.response.json")
    keys = [k for page in walk(client, api_keys_path(WEB_SHOP), owner_project_access="any") for k in page["data"]]
    for item in keys:
        assert list(item) == list(key)
        assert item["object"] == "organization.project.api_key"
        kind = item["owner"]["type"]
        assert list(item["owner"]) == ["type", kind]
    assert set(keys[0]["owner"]["user"]) == set(key["owner"]["user"])
    assert set(keys[2]["owner"]["service_account"]) == {"id", "name", "role", "created_at"}

    admin_key = example_item("get_organization_admin_api_keys.response.json")
    for item in get(client, ADMIN_KEYS).json()["data"]:
        assert list(item) == list(admin_key) and item["object"] == "organization.admin_api_key"
        assert set(item["owner"]) == set(admin_key["owner"])
        assert item["redacted_value"].startswith("sk-admin")

    for path, example in [(USERS, "get_organization_users.response.json"),
                          (PROJECTS, "get_organization_projects.response.json"),
                          (service_accounts_path(WEB_SHOP),
                           "get_organization_projects_project_id_service_accounts.response.json")]:
        expected = example_item(example)
        for item in get(client, path, include_archived="true").json()["data"]:
            assert set(item) == set(expected) and item["object"] == expected["object"], path


def test_non_ascii_names_arrive_as_utf8(client: Client, admin: FakeAdmin) -> None:
    answer = get(client, api_keys_path(WEB_SHOP))
    assert answer.header("Content-Type") == "application/json"
    assert "Zoë's key".encode() in answer.body
    assert answer.json()["data"][1]["name"] == "Zoë's key"


def test_the_openai_sdk_pages_through_the_fake(client: Client, admin: FakeAdmin) -> None:
    import httpx2
    from openai import OpenAI

    def through_the_fake(request: httpx2.Request) -> httpx2.Response:
        answer = client.call(request.url.raw_path.decode("ascii"), request.method, request.content or None)
        return httpx2.Response(answer.status, headers=answer.headers, content=answer.body)

    sdk = OpenAI(admin_api_key="sk-admin-fake", api_key="sk-unused", base_url=f"{BASE_URL}/v1", max_retries=0,
                 http_client=httpx2.Client(transport=httpx2.MockTransport(through_the_fake)))
    organization = sdk.admin.organization
    keys = organization.projects.api_keys.list(WEB_SHOP, owner_project_access="any")
    assert {k.id: k.name for k in keys} == admin.project_key_names(WEB_SHOP)
    assert {p.id for p in organization.projects.list(include_archived=True)} == set(admin.project_names())
    assert {u.id: u.name for u in organization.users.list()} == admin.user_names()
    assert {k.id: k.name for k in organization.admin_api_keys.list()} == admin.admin_key_names()
    assert len(admin.requests_for(api_keys_path(WEB_SHOP))) == 3


# --- misbehaving on demand --------------------------------------------------------------------

@pytest.mark.parametrize("behaviour, status, content_type, body, retry_after", [
    (reply(401, ERROR_401), 401, "application/json", json.dumps(ERROR_401).encode(), None),
    (reply(429, ERROR_429, headers=[("Retry-After", "1")]), 429, "application/json",
     json.dumps(ERROR_429).encode(), "1"),
    (reply(500, "<html>oops</html>", content_type="text/html"), 500, "text/html", b"<html>oops</html>", None),
], ids=["401", "429-retry-after", "500-html"])
def test_fail_next_answers_the_behaviour_once_then_recovers(
        client: Client, admin: FakeAdmin, behaviour: Any, status: int, content_type: str,
        body: bytes, retry_after: str | None) -> None:
    admin.fail_next(USERS, behaviour)
    failed = get(client, USERS, limit=5)
    assert (failed.status, failed.header("Content-Type"), failed.body) == (status, content_type, body)
    assert failed.header("Retry-After") == retry_after

    recovered = get(client, USERS, limit=5)
    assert recovered.status == 200
    assert recovered.json()["first_id"] == "user-Ada7LvQ2cW9xRt"


def test_fail_next_on_a_project_route_mid_walk_then_the_walk_resumes(
        client: Client, admin: FakeAdmin) -> None:
    path = api_keys_path(WEB_SHOP)
    first = get(client, path, owner_project_access="any").json()
    admin.fail_next(path, reply(500, "<html>oops</html>", content_type="text/html"), times=2)
    assert get(client, path, owner_project_access="any", after=first["last_id"]).status == 500
    assert get(client, path, owner_project_access="any", after=first["last_id"]).status == 500
    second = get(client, path, owner_project_access="any", after=first["last_id"]).json()
    assert second["first_id"] == "key_Ws3kCheckoutC7"
    # Other paths were never affected.
    assert get(client, api_keys_path(DATA_PIPELINE)).status == 200


def test_fail_next_calls_queue_up_in_order(client: Client, admin: FakeAdmin) -> None:
    admin.fail_next(PROJECTS, reply(429, ERROR_429, headers=[("Retry-After", "1")]), times=2)
    admin.fail_next(PROJECTS, reply(401, ERROR_401))
    assert [get(client, PROJECTS).status for _ in range(4)] == [429, 429, 401, 200]


def test_fail_next_with_hold_never_answers_then_recovers(client: Client, admin: FakeAdmin,
                                                          fake: FakeOpenAI) -> None:
    admin.fail_next(ADMIN_KEYS, hold)
    held = client.start(ADMIN_KEYS)
    client.agent.flush()
    answered: list[Any] = []
    held.addBoth(answered.append)
    assert answered == []
    held.cancel()  # the client gives up
    assert isinstance(answered[0], Failure) and answered[0].check(ResponseNeverReceived)
    client.agent.flush()
    assert [r.target for r in fake.abandoned] == [ADMIN_KEYS.encode()], \
        "the held request did not notice the client leaving"

    recovered = get(client, ADMIN_KEYS)
    assert recovered.status == 200 and recovered.json()["first_id"] == "key_Ad1kMainAdmM8"
    assert len(admin.requests_for(ADMIN_KEYS)) == 2


def test_fail_next_on_a_path_the_fake_does_not_serve_falls_back_to_the_examples(
        client: Client, admin: FakeAdmin) -> None:
    path = "/v1/organization/usage/completions"
    admin.fail_next(path, reply(401, ERROR_401))
    assert get(client, path, start_time=1).status == 401
    recovered = get(client, path, start_time=1)
    assert recovered.status == 200
    assert recovered.body == (EXAMPLES / "get_organization_usage_completions.response.json").read_bytes()


def test_fail_next_rejects_a_query_or_no_times(admin: FakeAdmin) -> None:
    with pytest.raises(ValueError):
        admin.fail_next(USERS + "?limit=1", reply(401, ERROR_401))
    with pytest.raises(ValueError):
        admin.fail_next(USERS, reply(401, ERROR_401), times=0)


# --- changing the organization ----------------------------------------------------------------

def test_delete_key_and_add_key_are_visible_on_the_next_walk(client: Client, admin: FakeAdmin) -> None:
    path = api_keys_path(WEB_SHOP)
    before = ids(walk(client, path, owner_project_access="any"))
    assert "key_Ws2kZoeLptB8" in before

    admin.delete_key(WEB_SHOP, "key_Ws2kZoeLptB8")
    zoe = next(u for u in admin.org.users if u["name"] == "Zoë Quinn")
    admin.add_key(WEB_SHOP, {"id": "key_Ws6kNewZoeQ4", "name": "Zoë's new key",
                            "redacted_value": "sk-proj-Zz...z9Zz", "owner": user_owner(zoe)})
    admin.add_key(WEB_SHOP, {"id": "key_Ws7kNewBotR3", "name": "New bot",
                            "owner": service_account_owner({"id": "svc_acct_Nw1bBt", "name": "new-bot"})})

    after = walk(client, path, owner_project_access="any")
    assert ids(after) == [k for k in before if k != "key_Ws2kZoeLptB8"] + ["key_Ws6kNewZoeQ4", "key_Ws7kNewBotR3"]
    assert len(after) == 3
    names = {k["id"]: k["name"] for page in after for k in page["data"]}
    assert names["key_Ws6kNewZoeQ4"] == "Zoë's new key"
    assert "key_Ws2kZoeLptB8" not in admin.all_key_ids()
    assert {"key_Ws6kNewZoeQ4", "key_Ws7kNewBotR3"} <= admin.all_key_ids()
    # Without owner_project_access=any the new service-account key stays hidden.
    assert "key_Ws7kNewBotR3" not in ids(walk(client, path))


def test_a_deleted_key_is_no_longer_a_valid_cursor(client: Client, admin: FakeAdmin) -> None:
    path = api_keys_path(WEB_SHOP)
    first = get(client, path, owner_project_access="any").json()
    admin.delete_key(WEB_SHOP, first["last_id"])
    assert get(client, path, owner_project_access="any", after=first["last_id"]).status == 400


def test_delete_admin_key_is_visible_on_the_next_walk(client: Client, admin: FakeAdmin) -> None:
    admin.delete_admin_key("key_Ad2kZoeAdmN7")
    assert ids(walk(client, ADMIN_KEYS)) == ["key_Ad1kMainAdmM8", "key_Ad3kBillingP6"]


def test_mutations_reject_unknown_or_duplicate_ids(admin: FakeAdmin) -> None:
    with pytest.raises(KeyError):
        admin.delete_key(WEB_SHOP, "key_nonexistent")
    with pytest.raises(KeyError):
        admin.add_key("proj_nonexistent", {"id": "key_x", "name": "x", "owner": {"type": "user", "user": {}}})
    with pytest.raises(ValueError):  # key ids are unique across projects and admin keys
        admin.add_key(SANDBOX, {"id": "key_Ad1kMainAdmM8", "name": "x", "owner": {"type": "user", "user": {}}})


def test_add_project_registers_its_routes(client: Client, admin: FakeAdmin) -> None:
    admin.add_project({"id": "proj_Nw2pRj5TkL8vAa", "name": "New Project"})
    admin.add_key("proj_Nw2pRj5TkL8vAa", {"id": "key_Nw1kFirstS2", "name": "First",
                                          "owner": user_owner(admin.org.users[0])})
    assert ids(walk(client, PROJECTS))[-1] == "proj_Nw2pRj5TkL8vAa"
    assert ids(walk(client, api_keys_path("proj_Nw2pRj5TkL8vAa"))) == ["key_Nw1kFirstS2"]
    assert get(client, service_accounts_path("proj_Nw2pRj5TkL8vAa")).json()["data"] == []


def test_install_unregisters_the_routes_of_a_project_removed_from_the_org(
        client: Client, admin: FakeAdmin) -> None:
    admin.org.projects = [p for p in admin.org.projects if p["id"] != SANDBOX]
    admin.install()
    # The spec's example answers again: its one key, not the org's empty list.
    assert ids(walk(client, api_keys_path(SANDBOX))) == ["key_abc"]
    assert get(client, service_accounts_path(SANDBOX)).body == (
        EXAMPLES / "get_organization_projects_project_id_service_accounts.response.json").read_bytes()
    assert ids(walk(client, api_keys_path(WEB_SHOP))) == [
        "key_Ws1kProdSrvA9", "key_Ws2kZoeLptB8", "key_Ws4kStagingD6"]


# --- the rest ---------------------------------------------------------------------------------

def test_unknown_routes_fall_through_to_the_examples(client: Client, admin: FakeAdmin) -> None:
    usage = get(client, "/v1/organization/usage/completions", start_time=1)
    assert usage.body == (EXAMPLES / "get_organization_usage_completions.response.json").read_bytes()
    # A project the org does not have is not the fake's: FakeOpenAI serves the spec's example.
    unknown = get(client, api_keys_path("proj_unknown"))
    assert unknown.json()["data"][0]["id"] == "key_abc"
    # So do other methods on the fake's paths.
    created = client.call(PROJECTS, method="POST", body=b'{"name": "x"}')
    assert created.body == (EXAMPLES / "post_organization_projects.response.json").read_bytes()


def test_requests_for_matches_the_path_before_the_query_in_order(client: Client,
                                                                 admin: FakeAdmin) -> None:
    get(client, USERS, limit=2)
    get(client, PROJECTS)
    get(client, USERS, limit=2, after="user-Zo3Qn8KfLp1sVe")
    get(client, USERS + "/user-Ada7LvQ2cW9xRt")
    assert [r.target for r in admin.requests_for(USERS)] == [
        b"/v1/organization/users?limit=2", b"/v1/organization/users?limit=2&after=user-Zo3Qn8KfLp1sVe"]
    assert [r.method for r in admin.requests_for(PROJECTS)] == [b"GET"]
    assert admin.requests_for(ADMIN_KEYS) == []


def test_interleaved_walks_while_keys_change_see_consistent_pages(client: Client,
                                                                  admin: FakeAdmin) -> None:
    def walker() -> Iterator[list[str]]:
        """A walk of the users, one page per step; its last step yields every id."""
        seen: list[str] = []
        query: dict[str, str] = {}
        while True:
            page = get(client, USERS, **query).json()
            seen += [u["id"] for u in page["data"]]
            if not page["has_more"]:
                yield seen
                return
            query = {"after": page["last_id"]}
            yield []

    walkers = [walker() for _ in range(8)]
    results: list[list[str]] = []
    added = 0
    while walkers:
        for walk_of_users in list(walkers):  # one page each, then a change elsewhere
            step = next(walk_of_users, None)
            if step is None:
                walkers.remove(walk_of_users)
            elif step:
                results.append(step)
            admin.add_key(SANDBOX, {"id": f"key_Sb{added}k", "name": f"k{added}",
                                    "owner": user_owner(admin.org.users[0])})
            added += 1
    assert results == [list(admin.user_names())] * 8
    assert len(admin.project_key_names(SANDBOX)) == added


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
