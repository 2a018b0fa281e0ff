"""The official ``openai`` SDK as a client of the real daemon."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.conftest import TOKEN
from tests.support.daemon import Daemon
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.test_e2e import COMPLETIONS, COSTS, example, grouped


@pytest.fixture
def client(daemon: Daemon) -> OpenAI:
    # No retries: each test sees exactly one upstream call.
    return OpenAI(admin_api_key=TOKEN, api_key="sk-unused", base_url=daemon.url + "/v1", max_retries=0)


def test_usage_completions_results_carry_api_key_name(client: OpenAI, upstream: FakeUpstream) -> None:
    upstream.on(COMPLETIONS, reply(body=grouped(example("get_organization_usage_completions.response.json"),
                                                api_key_id="key_abcdef1234567890")))
    page = client.admin.organization.usage.completions(start_time=1730419200, group_by=["api_key_id"])
    result = page.data[0].results[0]
    assert result.api_key_id == "key_abcdef1234567890"
    assert result.api_key_name == "mobile-app-production"
    assert result.project_name is None and result.user_name is None
    assert result.input_tokens == 1000
    received = upstream.last()
    assert received.header("Authorization") == f"Bearer {TOKEN}"
    assert b"start_time=1730419200" in received.target and b"api_key_id" in received.target


def test_usage_costs_results_carry_api_key_name(client: OpenAI, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(body=grouped(example("get_organization_costs.response.json"),
                                          api_key_id="key_1111222233334444", project_id="proj_abc")))
    page = client.admin.organization.usage.costs(start_time=1730419200, group_by=["api_key_id", "project_id"])
    result = page.data[0].results[0]
    assert (result.api_key_name, result.project_name) == ("internal-analytics", "checkout")
    assert result.amount.value == 0.06


def test_group_by_api_key_name_through_the_sdk(client: OpenAI, upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(body=grouped(example("get_organization_costs.response.json"),
                                          api_key_id="key_1234567890abcdef")))
    page = client.admin.organization.usage.costs(start_time=1730419200,
                                                 group_by=["api_key_name"])  # type: ignore[list-item]
    assert page.data[0].results[0].api_key_name == "checkout-service-production"
    target = upstream.last().target
    assert b"api_key_name" not in target and b"api_key_id" in target


def test_upstream_401_raises_authentication_error_with_openai_message(client: OpenAI, upstream: FakeUpstream) -> None:
    message = "Incorrect API key provided: sk-admin-****. You can find your API key at https://platform.openai.com."
    upstream.on(COMPLETIONS, reply(401, {"error": {"message": message, "type": "invalid_request_error",
                                                   "param": None, "code": "invalid_api_key"}}))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.admin.organization.usage.completions(start_time=1730419200)
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert message in str(raised.value)


def test_proxy_errors_raise_the_sdk_exception_for_their_status(client: OpenAI, daemon: Daemon) -> None:
    unrouted = OpenAI(admin_api_key=TOKEN, api_key="sk-unused", base_url=daemon.url + "/v2", max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        unrouted.admin.organization.usage.completions(start_time=1730419200)
    assert raised.value.code == "not_found"
