"""Anthropic's Admin API through the same daemon, in memory: ``/v1/organizations/`` goes to
the fake Anthropic with the caller's own headers, comes back with names beside Anthropic's
ids (the Default Workspace and the Console named where a report's grouping says what their
null means), is grouped and filtered by name, and the proxy's own errors there are in
Anthropic's shape."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orgproxy.errors import anthropic_type
from tests.support.answers import Answer
from tests.support.fake_anthropic import (
    API_KEYS,
    EXAMPLES,
    BILLING,
    BILLING_KEY,
    BILLING_KEY_OLD,
    BOT,
    BOT_KEY,
    COSTS,
    JANE_SMITH,
    LEGACY_KEY,
    MESSAGES,
    PERSONAL_KEY,
    PLATFORM,
    FakeAnthropic,
    example,
    page_token,
)
from tests.support.fake_openai import FakeOpenAI, hold, reply
from tests.support.memory import InMemoryProxy

CALLER_KEY = "sk-ant-admin01-caller-own-key-3b9e"
CALLER = {"x-api-key": CALLER_KEY, "anthropic-version": "2023-06-01"}
AUGUST = "starting_at=2026-08-01T00:00:00Z&ending_at=2026-08-04T00:00:00Z"
ALIASES = """
[api_keys]
apikey_01Rj2N8SVvo6BePZj99NhmiT = "billing-batch-prod"
apikey_01CONSTRUCTEDrotated0000 = "billing-batch-prod"
apikey_01ABC123DEF456GHI789JKL = "legacy default key"
key_1234567890abcdef = "checkout-service-production"

[workspaces]
wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ = "Billing"
wrkspc_01XYZ789ABC123DEF456MNO = "Platform"

[users]
user_01XyDMpzjS89pFZXqSFUBDr6 = "Jane Smith"
"user-abc" = "Alice Example"

[service_accounts]
svac_01Hk3R9TWxq7CfQak00OiVw4 = "ci-deploy-bot"
"""
NAMED = {BILLING_KEY: "billing-batch-prod", BILLING_KEY_OLD: "billing-batch-prod", LEGACY_KEY: "legacy default key",
         BILLING: "Billing", PLATFORM: "Platform", JANE_SMITH: "Jane Smith", BOT: "ci-deploy-bot"}
NAME_FIELD = {"api_key_id": "api_key_name", "workspace_id": "workspace_name", "account_id": "account_name",
              "service_account_id": "service_account_name", "user_id": "user_name"}

MakeProxy = Callable[..., InMemoryProxy]


@pytest.fixture
def aliases(tmp_path: Path) -> Path:
    path = tmp_path / "aliases.toml"
    path.write_text(ALIASES)
    return path


def anthropic_error(answer: Answer) -> dict[str, str]:
    """The proxy's own error, checked for Anthropic's exact shape and the type of its status."""
    body = answer.json()
    assert list(body) == ["type", "error"] and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"} and body["error"]["message"], body
    assert body["error"]["type"] == anthropic_type(answer.status), body
    return body["error"]


def with_names(text: str, named_nulls: dict[str, str]) -> str:
    """What the proxy must answer for ``text`` (a page the fake wrote with indent=2): after
    every id member, its name in the member's own layout, on a line of its own when a comma
    follows, else on the same line; "unknown" for an unnamed id, the provider's name for a
    null in ``named_nulls``, null for any other null."""
    def name(field: str, raw: str) -> str:
        if raw == "null":
            return json.dumps(named_nulls.get(field))
        return json.dumps(NAMED.get(json.loads(raw), "unknown"), ensure_ascii=False)

    def insert(match: re.Match[str]) -> str:
        indent, field, raw, comma = match.groups()
        member = f'"{NAME_FIELD[field]}": {name(field, raw)}'
        if comma:
            return f'{indent}"{field}": {raw},\n{indent}{member},'
        return f'{indent}"{field}": {raw}, {member}'
    pattern = r'^( *)"(' + "|".join(NAME_FIELD) + r')": (null|"[^"]*")(,?)$'
    return re.sub(pattern, insert, text, flags=re.MULTILINE)


# --- forwarding ------------------------------------------------------------------------------

def test_organizations_paths_go_to_anthropic_with_the_callers_own_headers_byte_for_byte(
        proxy: InMemoryProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    target = (MESSAGES + f"?{AUGUST}&group_by%5B%5D=api_key_id&bucket_width=1d&limit=2"
              f"&page={page_token(2).replace('=', '%3D')}&x=a+b%20c")
    headers = {**CALLER, "anthropic-beta": "fast-mode-2026-02-01"}
    answer = proxy.get(target, headers=headers)
    assert answer.status == 200, answer.body
    received = fake_anthropic.last()
    assert received.target == target.encode()
    assert received.header("x-api-key") == CALLER_KEY.encode()
    assert received.header("anthropic-version") == b"2023-06-01"
    assert received.header("anthropic-beta") == b"fast-mode-2026-02-01"
    assert received.header("authorization") is None
    assert fake.received == []  # nothing went to OpenAI
    # ...and OpenAI's paths still go to OpenAI alone.
    assert proxy.get("/v1/organization/costs?start_time=1").status == 200
    assert fake.last().path == b"/v1/organization/costs" and len(fake_anthropic.received) == 1


def test_an_oauth_bearer_token_goes_through_untouched(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    headers = {"Authorization": "Bearer sk-ant-oat01-caller", "anthropic-version": "2023-06-01"}
    assert proxy.get(API_KEYS + "?limit=2", headers=headers).status == 200
    assert fake_anthropic.last().header("authorization") == b"Bearer sk-ant-oat01-caller"
    assert fake_anthropic.last().header("x-api-key") is None


@pytest.mark.parametrize("path", [
    "/v1/organizations/../organization/costs", "/v1/organizations/%2e%2e/organization/costs",
    "/v1/organizations/usage_report%2Fmessages", "/v1/organizations//api_keys", "/v1/organizations/",
    "/v1/organizations", "/v1/organizations/api_keys/",
])
def test_paths_that_would_leave_organizations_are_anthropic_shaped_404s_never_forwarded(
        proxy: InMemoryProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic, path: str) -> None:
    answer = proxy.get(path, headers=CALLER)
    assert answer.status == 404
    assert anthropic_error(answer)["type"] == "not_found_error"
    assert fake_anthropic.received == [] and fake.received == []


def test_anthropic_s_own_errors_and_headers_come_back_as_sent(proxy: InMemoryProxy,
                                                              fake_anthropic: FakeAnthropic) -> None:
    body = example("error.not_found_error.response.json")
    fake_anthropic.on("/v1/organizations/api_keys/apikey_nope",
                      reply(404, body, headers=[("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")]))
    answer = proxy.get("/v1/organizations/api_keys/apikey_nope", headers=CALLER)
    assert (answer.status, answer.body) == (404, body)
    assert answer.header("request-id") == "req_011CSHoEeqs5C35K2UUqR7Fy"


# --- the proxy's own errors, in Anthropic's shape ---------------------------------------------

def test_the_proxys_own_errors_on_organizations_paths_are_anthropic_shaped(
        make_proxy: MakeProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--timeout", "5", "--max-concurrency", "1")
    fake_anthropic.on(MESSAGES, hold)
    held = proxy.start("GET", MESSAGES + f"?{AUGUST}", CALLER)
    proxy.flush()
    # One request in flight is the limit: the next is refused at once, Anthropic-shaped.
    busy = proxy.get(API_KEYS, headers=CALLER)
    assert busy.status == 503 and busy.header("Retry-After") == "1"
    assert anthropic_error(busy)["type"] == "overloaded_error"
    # ...while OpenAI's paths keep OpenAI's shape.
    assert set(proxy.get("/v1/organization/costs").json()["error"]) == {"message", "type", "param", "code"}
    proxy.advance(5)
    timed_out = proxy.answer(held)
    assert timed_out.status == 504
    assert anthropic_error(timed_out)["type"] == "timeout_error"
    assert anthropic_error(timed_out)["message"] == "Anthropic (anthropic.test:80) did not answer within 5 seconds."

    too_large = proxy.call("POST", API_KEYS + "/apikey_x", CALLER, b"x" * (1024 * 1024 + 1))
    assert too_large.status == 413 and anthropic_error(too_large)["type"] == "request_too_large"

    unknown = proxy.get(MESSAGES + f"?{AUGUST}&api_key_names[]=nobody", headers=CALLER)
    assert unknown.status == 400
    error = anthropic_error(unknown)
    assert error["type"] == "invalid_request_error" and "api_key_names" in error["message"]


def test_access_rules_hold_for_anthropic_paths_and_answer_in_its_shape(
        make_proxy: MakeProxy, fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    token_file = tmp_path / "client.token"
    token_file.write_text("team-secret-4f9a\n")
    proxy = make_proxy("--client-token-file", str(token_file))
    refused = proxy.get(API_KEYS, headers=CALLER)
    assert refused.status == 401 and anthropic_error(refused)["type"] == "authentication_error"
    outsider = proxy.raw(b"GET /v1/organizations/api_keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"X-Orgproxy-Token: team-secret-4f9a\r\n\r\n", client="203.0.113.9")
    assert outsider.refused_at_accept  # outside --allow-from: closed before a byte is read
    assert fake_anthropic.received == []
    allowed = proxy.get(API_KEYS, headers={**CALLER, "X-Orgproxy-Token": "team-secret-4f9a"})
    assert allowed.status == 200
    assert fake_anthropic.last().header("x-orgproxy-token") is None  # the proxy's own token stays here


def test_cached_answers_are_kept_apart_by_x_api_key_and_version(make_proxy: MakeProxy,
                                                                fake_anthropic: FakeAnthropic) -> None:
    proxy = make_proxy("--cache-ttl", "60")
    target = API_KEYS + "?limit=2"
    first = proxy.get(target, headers=CALLER)
    again = proxy.get(target, headers=CALLER)
    assert (first.header("X-Orgproxy-Cache"), again.header("X-Orgproxy-Cache")) == ("miss", "hit")
    assert again.body == first.body
    other_key = proxy.get(target, headers={**CALLER, "x-api-key": "sk-ant-admin01-someone-else"})
    other_version = proxy.get(target, headers={**CALLER, "anthropic-version": "2099-01-01"})
    bearer_too = proxy.get(target, headers={**CALLER, "Authorization": "Bearer sk-ant-oat01-x"})
    no_key = proxy.get(target, headers={"anthropic-version": "2023-06-01"})
    assert {a.header("X-Orgproxy-Cache") for a in (other_key, other_version, bearer_too)} == {"miss"}
    assert no_key.header("X-Orgproxy-Cache") is None, "without a credential, never cached"
    assert len(fake_anthropic.received) == 5
    assert fake_anthropic.received[1].header("x-api-key") == b"sk-ant-admin01-someone-else"


def test_the_callers_key_never_reaches_the_log(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic,
                                               logged: list[dict[str, Any]]) -> None:
    fake_anthropic.on(COSTS, reply(500, {"type": "error", "error": {"type": "api_error", "message": CALLER_KEY}}))
    proxy.get(COSTS + f"?{AUGUST}", headers=CALLER)
    proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=api_key_id", headers=CALLER)
    assert logged and not any(CALLER_KEY in repr(event) for event in logged)


# --- names ------------------------------------------------------------------------------------

def test_a_report_grouped_by_key_and_workspace_names_both_and_its_nulls_default_and_console(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    target = MESSAGES + f"?{AUGUST}&group_by[]=api_key_id&group_by[]=workspace_id"
    answer = proxy.get(target, headers=CALLER)
    assert answer.status == 200
    sent = fake_anthropic.answered[-1].decode()
    # Byte for byte: the upstream's page with each name spliced in beside its id.
    assert answer.body.decode() == with_names(sent, {"workspace_id": "Default", "api_key_id": "Console"})
    rows = [row for bucket in answer.json()["data"] for row in bucket["results"]]
    console = next(row for row in rows if row["api_key_id"] is None)
    assert (console["api_key_name"], console["workspace_name"]) == ("Console", "Default")
    legacy = next(row for row in rows if row["api_key_id"] == LEGACY_KEY)
    assert (legacy["api_key_name"], legacy["workspace_id"], legacy["workspace_name"]) == (
        "legacy default key", None, "Default")
    personal = next(row for row in rows if row["api_key_id"] == PERSONAL_KEY)
    assert personal["api_key_name"] == "unknown"
    # Dimensions not grouped by are null, and so are their names.
    assert all(row["account_id"] is None and row["account_name"] is None for row in rows)
    assert answer.json()["data"][1]["results"] == []  # the empty day stays empty


def test_a_null_stays_null_where_the_report_is_not_grouped_by_its_field(proxy: InMemoryProxy,
                                                                        fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=model", headers=CALLER)
    rows = [row for bucket in answer.json()["data"] for row in bucket["results"]]
    assert rows and all(row["workspace_name"] is None and row["api_key_name"] is None for row in rows)
    # Grouped by workspace only: the Default Workspace is named, a null key stays null.
    answer = proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=workspace_id", headers=CALLER)
    rows = [row for bucket in answer.json()["data"] for row in bucket["results"]]
    assert {row["workspace_name"] for row in rows} == {"Billing", "Default", "Platform"}
    assert {row["api_key_name"] for row in rows} == {None}


def test_accounts_and_service_accounts_are_named_with_the_accounts_email(
        make_proxy: MakeProxy, fake_anthropic: FakeAnthropic, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases))
    answer = proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=account_id&group_by[]=service_account_id",
                       headers=CALLER)
    rows = [row for bucket in answer.json()["data"] for row in bucket["results"]]
    jane = next(row for row in rows if row["account_id"] == JANE_SMITH)
    assert jane["account_name"] == "Jane Smith" and "account_email" not in jane  # an alias has no email
    bot = next(row for row in rows if row["service_account_id"] == BOT)
    assert bot["service_account_name"] == "ci-deploy-bot"


def test_ids_are_named_at_any_depth_in_both_api_key_shapes(proxy: InMemoryProxy,
                                                          fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.org.page_size = 100
    answer = proxy.get(API_KEYS + "?limit=1000", headers=CALLER)
    assert answer.status == 200
    keys = {key["id"]: key for key in answer.json()["data"]}
    billing = keys[BILLING_KEY]
    assert (billing["workspace_id"], billing["workspace_name"]) == (BILLING, "Billing")
    assert billing["scope"] == {"type": "workspace", "workspace_id": BILLING, "workspace_name": "Billing"}
    bot = keys[BOT_KEY]
    assert bot["principal"] == {"type": "service_account_actor", "service_account_id": BOT,
                                "service_account_name": "ci-deploy-bot"}
    assert bot["scope"]["workspace_name"] == "Platform"
    # The older shape (principal {"id", "type"}, no scope): only its workspace_id is an id field.
    old = keys[BILLING_KEY_OLD]
    assert old["workspace_name"] == "Billing" and "scope" not in old
    assert keys[LEGACY_KEY]["workspace_name"] is None  # not a report grouped by workspace: null stays null


def test_each_provider_names_only_its_own_fields(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                 fake_anthropic: FakeAnthropic) -> None:
    row = {"api_key_id": "key_1234567890abcdef", "project_id": "proj_abc", "workspace_id": BILLING,
           "account_id": JANE_SMITH}
    fake.on("/v1/organization/costs", reply(body={"data": [row]}))
    fake_anthropic.on(COSTS, reply(body={"data": [row]}))
    openai_row = proxy.get("/v1/organization/costs").json()["data"][0]
    anthropic_row = proxy.get(COSTS, headers=CALLER).json()["data"][0]
    assert set(openai_row) == set(row) | {"api_key_name", "project_name"}
    assert set(anthropic_row) == set(row) | {"api_key_name", "workspace_name", "account_name"}
    assert openai_row["api_key_name"] == anthropic_row["api_key_name"] == "checkout-service-production"


def test_a_large_report_is_named_as_a_small_one_is(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    # Over 16 KB, with no backslash: the array passes find the id members, service_account_id
    # (18 letters) among them, and a near miss of the same length is not taken for it.
    rows = [{"account_id": JANE_SMITH if i % 3 else None, "api_key_id": [BILLING_KEY, PERSONAL_KEY, None][i % 3],
             "service_XXcount_id": "svac_x", "service_account_id": BOT if i % 2 else None, "uncached_input_tokens": i,
             "workspace_id": [BILLING, None][i % 2]} for i in range(300)]
    page = {"data": [{"ending_at": "2026-08-02T00:00:00Z", "results": rows, "starting_at": "2026-08-01T00:00:00Z"}],
            "has_more": False, "next_page": None}
    text = json.dumps(page, indent=2)
    assert len(text) > 16_384
    fake_anthropic.on(MESSAGES, reply(body=text))
    answer = proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=api_key_id&group_by[]=workspace_id"
                       "&group_by[]=account_id&group_by[]=service_account_id", headers=CALLER)
    assert answer.body.decode() == with_names(text, {"workspace_id": "Default", "api_key_id": "Console"})


# --- by name ------------------------------------------------------------------------------------

def test_grouping_by_key_name_asks_by_id_in_brackets_and_merges_rotated_keys(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(MESSAGES + f"?{AUGUST}&group_by=api_key_name,workspace_id", headers=CALLER)
    assert answer.status == 200, answer.body
    assert fake_anthropic.last().target == (
        MESSAGES + f"?{AUGUST}&group_by[]=api_key_id&group_by[]=workspace_id").encode()
    first_day = answer.json()["data"][0]["results"]
    billing = [row for row in first_day if row["api_key_name"] == "billing-batch-prod"]
    assert len(billing) == 1, first_day
    (row,) = billing
    assert row["api_key_ids"] == [BILLING_KEY, BILLING_KEY_OLD] and row["api_key_id"] is None
    assert (row["uncached_input_tokens"], row["output_tokens"]) == (15900, 3120)
    assert row["cache_creation"] == {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 1200}
    console = [row for row in first_day if row["api_key_name"] == "Console"]
    assert len(console) == 1 and console[0]["api_key_ids"] == [] and console[0]["workspace_name"] == "Default"


def test_grouping_costs_by_workspace_name_sums_the_cents_exactly_as_decimal_strings(
        make_proxy: MakeProxy, fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.toml"
    aliases.write_text(ALIASES.replace('"Platform"', '"Billing"'))  # two workspaces, one name
    proxy = make_proxy("--aliases", str(aliases))
    fake_anthropic.org.costs.append({"day": "2026-08-01", "workspace_id": PLATFORM, "description": "x",
                                     "amount": "0.00001"})
    answer = proxy.get(COSTS + f"?{AUGUST}&group_by[]=workspace_name", headers=CALLER)
    assert fake_anthropic.last().target == (COSTS + f"?{AUGUST}&group_by[]=workspace_id").encode()
    first_day = answer.json()["data"][0]["results"]
    billing = next(row for row in first_day if row["workspace_name"] == "Billing")
    # 1520.4417 + 0.01 (Anthropic's sum for BILLING) + 0.00001 (PLATFORM's): not a float's 1520.4517100000001
    assert billing["amount"] == "1520.45171" and billing["currency"] == "USD"
    assert billing["workspace_ids"] == [BILLING, PLATFORM]
    default = next(row for row in first_day if row["workspace_name"] == "Default")
    assert (default["workspace_name"], default["amount"]) == ("Default", "87.5")


def test_filters_by_name_become_id_filters_in_brackets_and_a_name_nobody_has_is_refused(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(MESSAGES + f"?{AUGUST}&api_key_names=billing-batch-prod&workspace_names%5B%5D=Billing",
                       headers=CALLER)
    assert answer.status == 200
    assert fake_anthropic.last().target == (
        MESSAGES + f"?{AUGUST}&api_key_ids[]={BILLING_KEY}&api_key_ids[]={BILLING_KEY_OLD}"
        f"&workspace_ids%5B%5D={BILLING}").encode()
    keys = {row["api_key_id"] for bucket in answer.json()["data"] for row in bucket["results"]}
    assert keys == {None}  # not grouped: one row a day, of those keys only
    before = len(fake_anthropic.received)
    # OpenAI's key "checkout-service-production" shares the [api_keys] table, not Anthropic's filters.
    refused = proxy.get(MESSAGES + f"?{AUGUST}&api_key_names[]=checkout-service-production", headers=CALLER)
    assert refused.status == 400 and "api_key_names" in anthropic_error(refused)["message"]
    assert len(fake_anthropic.received) == before


def test_other_array_parameters_go_upstream_in_brackets_and_the_rest_as_sent(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    target = (MESSAGES + "?starting_at=2026-08-01T00%3A00%3A00%2B00%3A00&models=claude-opus-4-6,claude-sonnet-5"
              "&service_tiers%5B%5D=batch&group_by=model")
    assert proxy.get(target, headers=CALLER).status == 200
    assert fake_anthropic.last().target == (
        MESSAGES + "?starting_at=2026-08-01T00%3A00%3A00%2B00%3A00&models[]=claude-opus-4-6"
        "&models[]=claude-sonnet-5&service_tiers%5B%5D=batch&group_by[]=model").encode()


# --- the proxy's own pages --------------------------------------------------------------------

def test_unknown_ids_of_both_providers_are_reported_with_their_provider_and_table(
        proxy: InMemoryProxy, fake: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    fake.on("/v1/organization/costs", reply(body={"data": [{"api_key_id": "key_9f8e7d6c5b4a3210"}]}))
    proxy.get("/v1/organization/costs")
    proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=api_key_id&group_by[]=workspace_id", headers=CALLER)
    fake_anthropic.on(COSTS, reply(body={"data": [{"workspace_id": "wrkspc_unnamed", "account_id": "user_unnamed"}]}))
    proxy.get(COSTS, headers=CALLER)
    report = {(r["provider"], r["field"], r["id"]) for r in proxy.get("/orgproxy/unknown").json()["data"]}
    assert report == {("openai", "api_key_id", "key_9f8e7d6c5b4a3210"), ("anthropic", "api_key_id", PERSONAL_KEY),
                      ("anthropic", "api_key_id", BOT_KEY), ("anthropic", "workspace_id", "wrkspc_unnamed"),
                      ("anthropic", "account_id", "user_unnamed")}
    toml = proxy.get("/orgproxy/unknown?format=toml").body.decode()
    tables = {table: body for table, body in re.findall(r"^\[(\w+)\]\n((?:#.*\n)+)", toml, re.MULTILINE)}
    assert set(tables) == {"api_keys", "users", "workspaces"}
    assert "wrkspc_unnamed" in tables["workspaces"] and "user_unnamed" in tables["users"]
    assert PERSONAL_KEY in tables["api_keys"] and "key_9f8e7d6c5b4a3210" in tables["api_keys"]


def test_health_and_metrics_cover_both_providers(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = proxy.get("/metrics").body.decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}
    before = samples()
    proxy.get(MESSAGES + f"?{AUGUST}&group_by[]=api_key_id&group_by[]=workspace_id", headers=CALLER)
    after = samples()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)
    assert grew("orgproxy_requests_total", route="proxy", method="GET", status="200", provider="anthropic") == 1
    assert grew("orgproxy_upstream_seconds_count", provider="anthropic") == 1
    assert grew("orgproxy_ids_total", provider="anthropic", field="api_key_id", result="named") == 3
    assert grew("orgproxy_ids_total", provider="anthropic", field="api_key_id", result="unknown") == 2
    assert grew("orgproxy_ids_total", provider="anthropic", field="workspace_id", result="named") == 3
    assert ("orgproxy_discovery_runs_total", (("provider", "anthropic"), ("result", "ok"))) in after
    providers = {labels for name, labels in after if name == "orgproxy_requests_total"}
    assert {dict(labels)["provider"] for labels in providers} <= {"openai", "anthropic", "none"}
    health = proxy.get("/health").json()
    assert health["providers"]["anthropic"] == {"upstream": "http://anthropic.test",
                                                "discovery": {"enabled": False}}
    assert health["providers"]["openai"]["upstream"] == "http://openai.test"
    assert health["names_by_field"]["workspace_id"] == 2


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_body_comes_back_with_names_and_every_other_byte_as_sent(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic, name: str) -> None:
    body = example(name)
    fake_anthropic.on(COSTS, reply(body=body))
    answer = proxy.get(COSTS + f"?{AUGUST}", headers=CALLER)  # grouped by nothing: every null stays null
    assert answer.status == 200
    assert answer.body.decode() == with_names(body.decode(), {})


def test_replace_ids_writes_anthropic_s_names_into_its_id_fields(make_proxy: MakeProxy, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--replace-ids")
    answer = proxy.get(COSTS + f"?{AUGUST}&group_by[]=workspace_id", headers=CALLER)
    first_day = answer.json()["data"][0]["results"]
    billing = next(row for row in first_day if row.get("workspace_id_original") == BILLING)
    assert (billing["workspace_id"], billing["workspace_name"]) == ("Billing", "Billing")
    default = next(row for row in first_day if row["workspace_name"] == "Default")
    assert default["workspace_id"] is None and "workspace_id_original" not in default  # a null stays as it is
