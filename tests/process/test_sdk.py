"""The official ``openai`` SDK as a client of the real daemon: the names orgproxy adds reach
the SDK's objects, and errors raise the SDK's usual exceptions. One daemon serves the
module; each test tells the fake OpenAI what to answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT, serving
from tests.support.answers import TOKEN
from tests.support.daemon import Daemon
from tests.support.fake_openai import EXAMPLES
from tests.support.tcp_upstream import FakeUpstream, reply, upstream_fixture

if TYPE_CHECKING:  # imported where used: the SDK takes a second to import
    from openai import OpenAI

COMPLETIONS = "/v1/organization/usage/completions"
COSTS = "/v1/organization/costs"


def grouped(example: str, **ids: str) -> str:
    """The spec's example page as OpenAI sends it when grouped by the given id fields."""
    text = (EXAMPLES / example).read_text()
    for field, value in ids.items():
        text = text.replace(f'"{field}": null', f'"{field}": "{value}"')
    return text


upstream = upstream_fixture("module")  # one fake for the module's daemon


@pytest.fixture(scope="module")
def daemon(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon with the shipped example alias map (etc/aliases.toml)."""
    with serving(["--upstream", upstream.url, "--aliases", str(ROOT / "etc" / "aliases.toml")],
                 tmp_path_factory.mktemp("sdk-daemon")) as running:
        yield running


@pytest.fixture
def client(daemon: Daemon) -> OpenAI:
    # No retries: each test sees exactly one upstream call.
    from openai import OpenAI

    return OpenAI(admin_api_key=TOKEN, api_key="sk-unused", base_url=daemon.url + "/v1", max_retries=0)


def test_usage_completions_results_carry_api_key_name(client: OpenAI, upstream: FakeUpstream) -> None:
    upstream.on(COMPLETIONS, reply(body=grouped("get_organization_usage_completions.response.json",
                                                api_key_id="key_abcdef1234567890")))
    page = client.admin.organization.usage.completions(start_time=1730419200, group_by=["api_key_id"])
    result = page.data[0].results[0]
    assert (result.api_key_id, result.api_key_name) == ("key_abcdef1234567890", "mobile-app-production")
    assert result.project_name is None and result.user_name is None
    assert result.input_tokens == 1000
    received = upstream.last()
    assert received.header("Authorization") == f"Bearer {TOKEN}"
    assert b"start_time=1730419200" in received.target and b"api_key_id" in received.target


def test_costs_grouped_by_api_key_name_and_project_id_carry_both_names(client: OpenAI,
                                                                       upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(body=grouped("get_organization_costs.response.json",
                                          api_key_id="key_1234567890abcdef", project_id="proj_abc")))
    page = client.admin.organization.usage.costs(start_time=1730419200,
                                                 group_by=["api_key_name", "project_id"])  # type: ignore[list-item]
    result = page.data[0].results[0]
    assert (result.api_key_name, result.project_name) == ("checkout-service-production", "checkout")
    assert result.amount.value == 0.06
    target = upstream.last().target
    assert b"api_key_name" not in target, "OpenAI is asked by id"
    assert b"api_key_id" in target and b"project_id" in target


def test_upstream_401_raises_authentication_error_with_openai_message(client: OpenAI,
                                                                      upstream: FakeUpstream) -> None:
    import openai

    message = "Incorrect API key provided: sk-admin-****. You can find your API key at https://platform.openai.com."
    upstream.on(COMPLETIONS, reply(401, {"error": {"message": message, "type": "invalid_request_error",
                                                   "param": None, "code": "invalid_api_key"}}))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.admin.organization.usage.completions(start_time=1730419200)
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert message in str(raised.value)


def test_the_proxy_s_own_error_raises_the_sdk_exception_for_its_status(daemon: Daemon) -> None:
    import openai
    from openai import OpenAI

    unrouted = OpenAI(admin_api_key=TOKEN, api_key="sk-unused", base_url=daemon.url + "/v2", max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        unrouted.admin.organization.usage.completions(start_time=1730419200)
    assert raised.value.code == "not_found"


def test_the_admin_namespace_s_project_role_calls_outside_the_organization_api_are_forwarded(
        client: OpenAI, upstream: FakeUpstream) -> None:
    # Every call of the SDK's admin namespace whose path is outside /v1/organization/:
    # project roles, and the roles of a project's users and groups (the fake answers
    # each with the spec's example).
    projects = client.admin.organization.projects
    calls = [
        ("POST", "/v1/projects/proj_abc/roles",
         lambda: projects.roles.create("proj_abc", permissions=["api.organization.projects.api_keys.read"],
                                       role_name="Key reader")),
        ("GET", "/v1/projects/proj_abc/roles/role_1", lambda: projects.roles.retrieve("role_1", project_id="proj_abc")),
        ("POST", "/v1/projects/proj_abc/roles/role_1",
         lambda: projects.roles.update("role_1", project_id="proj_abc", description="reads keys")),
        ("GET", "/v1/projects/proj_abc/roles?limit=20", lambda: projects.roles.list("proj_abc", limit=20)),
        ("DELETE", "/v1/projects/proj_abc/roles/role_1", lambda: projects.roles.delete("role_1", project_id="proj_abc")),
    ]
    for owner, resource, owner_id in (("users", projects.users.roles, "user-abc"),
                                      ("groups", projects.groups.roles, "group_1")):
        owner_param = "user_id" if owner == "users" else "group_id"
        base = f"/v1/projects/proj_abc/{owner}/{owner_id}/roles"
        calls += [
            ("POST", base, lambda r=resource, o=owner_id: r.create(o, project_id="proj_abc", role_id="role_1")),
            ("GET", base + "/role_1",
             lambda r=resource, o=owner_id, p=owner_param: r.retrieve("role_1", project_id="proj_abc", **{p: o})),
            ("GET", base, lambda r=resource, o=owner_id: r.list(o, project_id="proj_abc")),
            ("DELETE", base + "/role_1",
             lambda r=resource, o=owner_id, p=owner_param: r.delete("role_1", project_id="proj_abc", **{p: o})),
        ]
    for method, target, call in calls:
        before = len(upstream.received)
        result = call()
        assert result is not None
        (received,) = upstream.received[before:]
        assert (received.method, received.target.decode()) == (method, target)
        assert received.header("Authorization") == f"Bearer {TOKEN}"
    listed = projects.roles.list("proj_abc")
    assert [role.id for role in listed.data] == ["role_01J1F8PROJ"]


def test_the_rest_of_the_api_outside_the_organization_stays_refused(daemon: Daemon, upstream: FakeUpstream) -> None:
    import openai
    from openai import OpenAI

    client = OpenAI(api_key=TOKEN, base_url=daemon.url + "/v1", max_retries=0)
    before = len(upstream.received)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.list()
    assert len(upstream.received) == before
