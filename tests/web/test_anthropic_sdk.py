"""The official ``anthropic`` SDK's organization calls (``client.beta.organization``) through
the proxy, in memory: its HTTP client hands each request to the in-memory proxy, in front of
the fake Anthropic. Its auto-paging walks every page through the proxy, its objects carry the
names, and the proxy's own errors raise its usual exceptions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import httpx2
import pytest

from tests.support.fake_anthropic import (
    API_KEYS,
    BILLING,
    BILLING_KEY,
    BOT,
    BOT_KEY,
    MESSAGES,
    USERS,
    WORKSPACES,
    FakeAnthropic,
)
from tests.support.memory import InMemoryProxy
from tests.support.sdk_transport import through
from tests.web.test_anthropic import ALIASES

if TYPE_CHECKING:
    from anthropic import Anthropic

CALLER_KEY = "sk-ant-admin01-sdk-caller-8c2f"



@pytest.fixture
def aliases(tmp_path: Path) -> Path:
    """The alias file naming the sample organization's keys, workspaces and accounts."""
    path = tmp_path / "aliases.toml"
    path.write_text(ALIASES)
    return path


@pytest.fixture
def client(proxy: InMemoryProxy) -> Anthropic:
    # Imported here, in the one test process that uses it: the SDK takes two seconds to
    # import, which every process collecting the suite would otherwise pay.
    from anthropic import Anthropic
    # No retries: each test sees exactly one upstream call per page.
    return Anthropic(api_key=CALLER_KEY, base_url="http://orgproxy.test", max_retries=0,
                     http_client=httpx2.Client(transport=through(proxy)))


def test_listing_api_keys_walks_every_page_and_each_key_carries_workspace_names(
        client: Anthropic, fake_anthropic: FakeAnthropic) -> None:
    keys = list(client.beta.organization.api_keys.list(limit=2))
    assert [key.id for key in keys] == [k["id"] for k in fake_anthropic.org.api_keys]
    by_id = {key.id: key for key in keys}
    # Fields the SDK's types do not declare are kept as extras.
    assert by_id[BILLING_KEY].model_extra["workspace_name"] == "Billing"
    assert by_id[BILLING_KEY].scope.model_extra["workspace_name"] == "Billing"
    bot = by_id[BOT_KEY].principal
    assert (bot.service_account_id, bot.model_extra["service_account_name"]) == (BOT, "ci-deploy-bot")
    asked = [r for r in fake_anthropic.received if r.path == API_KEYS.encode()]
    # (Some versions of the SDK add beta=true to these paths; the proxy forwards it as it is.)
    queries = [[(k, v) for k, v in parse_qsl(r.target.decode().partition("?")[2]) if k != "beta"] for r in asked]
    assert queries == [[("limit", "2")], *([("limit", "2"), ("after_id", k["id"])]
                                           for k in fake_anthropic.org.api_keys[1:-1:2])]
    # The credential as the SDK sent it (x-api-key, or Authorization: Bearer in newer versions).
    assert all(CALLER_KEY.encode() in (r.header("x-api-key") or r.header("authorization") or b"")
               and r.header("anthropic-version") for r in asked)


def test_workspaces_members_and_users_come_through(client: Anthropic, fake_anthropic: FakeAnthropic) -> None:
    workspaces = list(client.beta.organization.workspaces.list(include_archived=True))
    assert [w.name for w in workspaces] == ["Billing", "Platform", "Research"]
    (member, *_) = client.beta.organization.workspaces.members.list(BILLING).data
    assert member.workspace_id == "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
    assert member.model_extra["workspace_name"] == "Billing"
    users = list(client.beta.organization.users.list())
    assert {u.email for u in users} == {"user@emaildomain.com", "jane@example.com", "zoe@example.com"}
    assert {r.path for r in fake_anthropic.received} >= {WORKSPACES.encode(), USERS.encode()}


def test_the_proxys_own_errors_raise_the_sdks_exceptions(client: Anthropic, fake_anthropic: FakeAnthropic) -> None:
    import anthropic

    with pytest.raises(anthropic.NotFoundError) as raised:
        client.get(API_KEYS + "//apikey_x", cast_to=object)  # would leave the path once decoded
    assert raised.value.status_code == 404 and raised.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.get(MESSAGES, cast_to=object,
                   options={"params": {"starting_at": "2026-08-01T00:00:00Z", "api_key_names[]": "nobody"}})
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "api_key_names" in refused.value.message
    assert not any(r.path == MESSAGES.encode() for r in fake_anthropic.received)
