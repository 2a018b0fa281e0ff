"""Anthropic's Usage and Cost Analytics API through the daemon, in memory, in front of the
fake's ``analytics/cost`` and ``analytics/usage`` (the sample organization's ledger): names
beside every id wherever it sits (inside each row's ``group``, inside its ``actor``), the
Console and the Default Workspace named where the request grouped by their field, rows
grouped by name with exact sums, filters by name, the beta header and the page cursor as the
caller sent them. What the rows should hold is computed from the ledger, never through the
code under test."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.fake_analytics import BETA, COST, USAGE
from tests.support.fake_anthropic import (
    ADMIN_KEY,
    BILLING,
    BILLING_KEY,
    BILLING_KEY_OLD,
    BOT,
    JANE_DOE,
    JANE_SMITH,
    PERSONAL_KEY,
    FakeAnthropic,
)
from tests.support.memory import InMemoryProxy

CALLER = {"x-api-key": "sk-ant-admin01-caller-own-key-3b9e", "anthropic-version": "2023-06-01", "anthropic-beta": BETA}
OCTOBER = "starting_at=2026-10-01T00:00:00Z&ending_at=2026-10-17T00:00:00Z&time_bucket_width=1d"
ALIASES = """
[api_keys]
apikey_01Rj2N8SVvo6BePZj99NhmiT = "billing-batch-prod"
apikey_01CONSTRUCTEDrotated0000 = "billing-batch-prod"
apikey_01CONSTRUCTEDpersonal000 = "jane-laptop"

[workspaces]
wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ = "Billing"

[users]
user_01XyDMpzjS89pFZXqSFUBDr6 = "Jane Smith"

[service_accounts]
svac_01Hk3R9TWxq7CfQak00OiVw4 = "ci-deploy-bot"
"""
NAMES = {"api_key_id": {BILLING_KEY: "billing-batch-prod", BILLING_KEY_OLD: "billing-batch-prod",
                        PERSONAL_KEY: "jane-laptop"},
         "workspace_id": {BILLING: "Billing"}, "user_id": {JANE_SMITH: "Jane Smith"},
         "service_account_id": {BOT: "ci-deploy-bot"}}
NAME_FIELD = {"api_key_id": "api_key_name", "workspace_id": "workspace_name", "user_id": "user_name",
              "service_account_id": "service_account_name"}
NULL_NAMES = {"api_key_id": "Console", "workspace_id": "Default"}


@pytest.fixture
def proxy(make_proxy: Callable[..., InMemoryProxy], tmp_path: Path) -> InMemoryProxy:
    aliases = tmp_path / "aliases.toml"
    aliases.write_text(ALIASES)
    return make_proxy("--aliases", str(aliases))


def objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in a JSON value, at any depth."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from objects(item)


def assert_named(page: dict[str, Any], grouped: set[str]) -> int:
    """Every id field of every object has its name right after it: the alias file's, else
    "unknown"; a null the provider's name for it where the answer is grouped by its field,
    else null. How many ids were checked."""
    checked = 0
    for item in objects(page):
        keys = list(item)
        for field, name_field in NAME_FIELD.items():
            if field not in item:
                continue
            assert keys[keys.index(field) + 1] == name_field, keys
            value = item[field]
            want = (NAMES[field].get(value, "unknown") if value is not None
                    else NULL_NAMES.get(field) if field in grouped else None)
            assert item[name_field] == want, (field, value, item)
            checked += 1
    return checked


def with_names(text: str, grouped: set[str]) -> str:
    """What the proxy answers for ``text`` (a page the fake wrote with indent=2): after
    every id member, its name on a line of its own in the member's indent (or on the same
    line after an object's last member)."""
    def insert(match: re.Match[str]) -> str:
        indent, field, raw, comma = match.groups()
        value = json.loads(raw)
        name = (NAMES[field].get(value, "unknown") if value is not None
                else NULL_NAMES.get(field) if field in grouped else None)
        member = f'"{NAME_FIELD[field]}": {json.dumps(name)}'
        return f'{indent}"{field}": {raw},\n{indent}{member},' if comma else f'{indent}"{field}": {raw}, {member}'
    pattern = r'^( *)"(' + "|".join(NAME_FIELD) + r')": (null|"[^"]*")(,?)$'
    return re.sub(pattern, insert, text, flags=re.MULTILINE)


def ledger_sums(fake_anthropic: FakeAnthropic, measure: str, name_of: Callable[[Any], Any]
                ) -> dict[tuple[str, Any], Decimal]:
    """Each day's cost per name (of ``name_of(entry)``) in October, from the ledger."""
    sums: dict[tuple[str, Any], Decimal] = defaultdict(Decimal)
    for entry in fake_anthropic.org.analytics.costs:
        if entry.day.startswith("2026-10"):
            value = getattr(entry, measure) or entry.amount
            sums[(f"{entry.day}T00:00:00Z", name_of(entry))] += Decimal(value)
    return dict(sums)


def key_name(entry: Any) -> str:
    key = entry.dimensions.get("api_key_id")
    return NAMES["api_key_id"].get(key, "unknown") if key else "Console"


# --- names --------------------------------------------------------------------------------------

def test_a_cost_page_grouped_by_key_has_the_key_s_name_beside_every_id_in_its_group(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(COST + f"?{OCTOBER}&group_by[]=api_key_id", headers=CALLER)
    assert answer.status == 200, answer.body
    page = answer.json()
    assert assert_named(page, {"api_key_id"}) == 2 * len(page["data"])  # each group's key and workspace
    console = [row["group"] for row in page["data"] if row["group"]["api_key_id"] is None]
    assert console and all(g["api_key_name"] == "Console" and g["workspace_name"] is None for g in console)
    # Every other byte as sent: the names are spliced into the upstream's own page.
    assert answer.body.decode() == with_names(fake_anthropic.answered[-1].decode(), {"api_key_id"})


def test_the_default_workspace_is_named_where_the_answer_is_grouped_by_workspace(
        proxy: InMemoryProxy) -> None:
    page = proxy.get(COST + f"?{OCTOBER}&group_by[]=workspace_id", headers=CALLER).json()
    assert assert_named(page, {"workspace_id"}) == 2 * len(page["data"])
    assert {row["group"]["workspace_name"] for row in page["data"]} == {"Billing", "Default", "unknown"}
    assert {row["group"]["api_key_name"] for row in page["data"]} == {None}


def test_actors_are_named_by_their_own_ids(proxy: InMemoryProxy) -> None:
    page = proxy.get(COST + "?starting_at=2026-10-01T00:00:00Z&group_by[]=actor", headers=CALLER).json()
    assert assert_named(page, set())
    actors = {row["group"]["actor"]["type"]: row["group"]["actor"] for row in page["data"]}
    assert {a.get("user_name") for a in (r["group"]["actor"] for r in page["data"]) if "user_id" in a} == {
        "Jane Smith", "unknown"}  # Jane Doe is in no alias file: discovery is off here
    assert actors["service_account_actor"]["service_account_name"] == "ci-deploy-bot"
    api_actors = [r["group"]["actor"] for r in page["data"] if r["group"]["actor"]["type"] == "api_actor"]
    assert {a["api_key_name"] for a in api_actors} == {"billing-batch-prod"}


def test_discovered_users_name_the_actors_too(make_proxy: Callable[..., InMemoryProxy]) -> None:
    proxy = make_proxy("--discovery-interval", "86400", "--cost-interval", "0",
                       environ={"ANTHROPIC_ADMIN_KEY": ADMIN_KEY})
    proxy.start_service()
    proxy.flush()
    page = proxy.get(COST + "?starting_at=2026-10-01T00:00:00Z&group_by[]=actor", headers=CALLER).json()
    users = {a["user_id"]: a["user_name"] for a in (r["group"]["actor"] for r in page["data"]) if "user_id" in a}
    assert users == {JANE_DOE: "Jane Doe", JANE_SMITH: "Jane Smith"}


# --- grouped by name ---------------------------------------------------------------------------

def test_grouped_by_key_name_one_row_per_name_per_bucket_with_exact_sums(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(COST + f"?{OCTOBER}&group_by[]=api_key_name", headers=CALLER)
    assert answer.status == 200, answer.body
    assert fake_anthropic.last().target == (COST + f"?{OCTOBER}&group_by[]=api_key_id").encode()
    rows = answer.json()["data"]
    got = {(row["starting_at"], row["group"]["api_key_name"]): row for row in rows}
    assert len(got) == len(rows), "one row per name per bucket"
    amounts = ledger_sums(fake_anthropic, "amount", key_name)
    lists = ledger_sums(fake_anthropic, "list_amount", key_name)
    assert {k: Decimal(row["cost"]["amount"]) for k, row in got.items()} == amounts
    assert {k: Decimal(row["cost"]["list_amount"]) for k, row in got.items()} == lists
    assert all(isinstance(row["cost"]["amount"], str) for row in rows)
    # Oct 15: both "billing-batch-prod" keys, 0.2 + 20 cents, and their requests, in one row.
    both = got[("2026-10-15T00:00:00Z", "billing-batch-prod")]
    assert both["group"]["api_key_ids"] == [BILLING_KEY, BILLING_KEY_OLD] and both["group"]["api_key_id"] is None
    assert (both["cost"]["amount"], both["cost"]["requests"]) == ("20.2", 3)
    assert got[("2026-10-01T00:00:00Z", "Console")]["group"]["api_key_ids"] == []


def test_grouped_by_two_names_in_any_spelling_the_ids_go_upstream_in_brackets(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    for spelling in ("group_by=api_key_name,workspace_name", "group_by[]=api_key_name&group_by=workspace_name",
                     "group_by%5B%5D=api_key_name&group_by%5B%5D=workspace_name"):
        answer = proxy.get(COST + f"?{OCTOBER}&{spelling}", headers=CALLER)
        assert answer.status == 200, (spelling, answer.body)
        target = fake_anthropic.last().target.decode()
        assert target.count("group_by") == 2 and "api_key_id" in target and "workspace_id" in target, target
        assert "_name" not in target
        rows = answer.json()["data"]
        october_15 = [r["group"] for r in rows if r["starting_at"] == "2026-10-15T00:00:00Z"]
        assert {(g["api_key_name"], g["workspace_name"]) for g in october_15} == {
            ("billing-batch-prod", "Billing"), ("jane-laptop", "Default"), ("unknown", "unknown")}


def test_counts_left_null_by_cost_type_stay_null_when_merged(proxy: InMemoryProxy) -> None:
    answer = proxy.get(COST + f"?{OCTOBER}&group_by[]=api_key_name&group_by[]=cost_type", headers=CALLER)
    rows = answer.json()["data"]
    assert all(row["cost"]["requests"] is None for row in rows)
    merged = [row for row in rows if len(row["group"]["api_key_ids"]) == 2]
    assert [(row["starting_at"][:10], row["group"]["cost_type"], row["cost"]["amount"]) for row in merged] == [
        ("2026-10-15", "tokens", "20.2")]


def test_usage_grouped_by_key_name_sums_the_token_counts(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(USAGE + f"?{OCTOBER}&group_by[]=api_key_name", headers=CALLER)
    assert answer.status == 200, answer.body
    rows = {(r["starting_at"][:10], r["group"]["api_key_name"]): r["usage"] for r in answer.json()["data"]}
    both = rows[("2026-10-15", "billing-batch-prod")]
    requests = sum(e.requests for e in fake_anthropic.org.analytics.usage
                   if e.day == "2026-10-15" and e.dimensions["api_key_id"] in (BILLING_KEY, BILLING_KEY_OLD))
    assert both["requests"] == requests == 3 and both["uncached_input_tokens"] == 100 * requests


def test_a_filter_by_key_name_is_the_api_s_own_key_filter(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    for spelling, sent in (("api_key_names=billing-batch-prod", "api_key_ids[]"),
                           ("api_key_names%5B%5D=billing-batch-prod", "api_key_ids%5B%5D")):
        answer = proxy.get(COST + f"?{OCTOBER}&{spelling}&group_by[]=api_key_id", headers=CALLER)
        assert answer.status == 200, answer.body
        assert fake_anthropic.last().target == (
            COST + f"?{OCTOBER}&{sent}={BILLING_KEY}&{sent}={BILLING_KEY_OLD}&group_by[]=api_key_id").encode()
        assert {row["group"]["api_key_id"] for row in answer.json()["data"]} == {BILLING_KEY, BILLING_KEY_OLD}


# --- forwarded as sent ----------------------------------------------------------------------------

def test_the_beta_header_goes_as_the_caller_sent_it_never_added_never_dropped(
        proxy: InMemoryProxy, fake_anthropic: FakeAnthropic) -> None:
    target = COST + "?starting_at=2026-10-01T00:00:00Z"
    two = {**CALLER, "anthropic-beta": f"fast-mode-2026-02-01, {BETA}"}
    assert proxy.get(target, headers=two).status == 200
    assert fake_anthropic.last().header("anthropic-beta") == f"fast-mode-2026-02-01, {BETA}".encode()
    without = {k: v for k, v in CALLER.items() if k != "anthropic-beta"}
    refused = proxy.get(target, headers=without)
    assert refused.status == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    assert fake_anthropic.last().header("anthropic-beta") is None


def test_cached_answers_are_kept_apart_by_the_beta_header(make_proxy: Callable[..., InMemoryProxy],
                                                          fake_anthropic: FakeAnthropic) -> None:
    proxy = make_proxy("--cache-ttl", "60")
    target = COST + "?starting_at=2026-10-01T00:00:00Z"
    without = {k: v for k, v in CALLER.items() if k != "anthropic-beta"}
    outcomes = [proxy.get(target, headers=headers).header("X-Orgproxy-Cache")
                for headers in (CALLER, CALLER, without, {**CALLER, "anthropic-beta": f"{BETA},other-beta"})]
    assert outcomes == ["miss", "hit", "miss", "miss"]
    assert len(fake_anthropic.received) == 3


def test_pages_are_walked_with_anthropic_s_cursor_unchanged(proxy: InMemoryProxy,
                                                            fake_anthropic: FakeAnthropic) -> None:
    query = f"{OCTOBER}&group_by[]=api_key_id&limit=3"
    first = proxy.get(COST + f"?{query}", headers=CALLER).json()
    assert first["has_more"] is True
    rows, cursor = list(first["data"]), first["next_page"]
    while cursor is not None:
        target = COST + f"?{query}&page={quote(cursor, safe='')}"
        answer = proxy.get(target, headers=CALLER)
        assert answer.status == 200, answer.body
        assert fake_anthropic.last().target == target.encode()
        rows += answer.json()["data"]
        cursor = answer.json()["next_page"]
    whole = proxy.get(COST + f"?{OCTOBER}&group_by[]=api_key_id", headers=CALLER).json()["data"]
    assert rows == whole


def test_a_filter_by_user_name_is_the_api_s_filter_by_actor(proxy: InMemoryProxy,
                                                             fake_anthropic: FakeAnthropic) -> None:
    answer = proxy.get(COST + f"?{OCTOBER}&user_names=Jane%20Smith&group_by[]=actor", headers=CALLER)
    assert answer.status == 200, answer.body
    assert fake_anthropic.last().target == (COST + f"?{OCTOBER}&actor_ids[]={JANE_SMITH}&group_by[]=actor").encode()
    assert {row["group"]["actor"]["user_id"] for row in answer.json()["data"]} == {JANE_SMITH}
