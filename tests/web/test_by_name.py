"""Grouping and filtering by name, in memory (and through the real openai SDK, whose
HTTP client is handed to the in-memory proxy)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from tests.support.answers import TOKEN
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.memory import InMemoryProxy
from tests.support.sdk_transport import through

if TYPE_CHECKING:  # imported where used: the SDK takes a second to import
    from openai import OpenAI

COSTS = "/v1/organization/costs"
COMPLETIONS = "/v1/organization/usage/completions"
# Three keys, two of them the same service after a rotation.
ALIASES = """
[api_keys]
key_checkout_2025 = "checkout"
key_checkout_2026 = "checkout"
key_web = "web"

[projects]
proj_shop = "shop"
"""
NEXT_PAGE = "page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="

MakeProxy = Callable[..., InMemoryProxy]


def cost_row(key: str | None, value: float, line_item: str = "completions", currency: str = "usd") -> dict:
    return {"object": "organization.costs.result", "amount": {"value": value, "currency": currency},
            "line_item": line_item, "project_id": "proj_shop", "api_key_id": key, "quantity": None,
            "quantity_unit": None}


def costs_page(*buckets: list[dict]) -> dict:
    return {"object": "page", "data": [
        {"object": "bucket", "start_time": 1730419200 + 86400 * i, "end_time": 1730505600 + 86400 * i,
         "results": rows} for i, rows in enumerate(buckets)],
        "has_more": True, "next_page": NEXT_PAGE}


@pytest.fixture
def aliases(tmp_path: Path) -> Path:
    path = tmp_path / "aliases.toml"
    path.write_text(ALIASES)
    return path


def results(proxy: InMemoryProxy, target: str) -> list[dict[str, Any]]:
    answer = proxy.get(target)
    assert answer.status == 200, answer.body
    return answer.json()["data"][0]["results"]


# --- grouping by name -----------------------------------------------------------------

def test_rows_of_keys_sharing_a_name_are_merged_per_bucket(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=costs_page(
        [cost_row("key_checkout_2025", 0.25), cost_row("key_web", 1.0), cost_row("key_checkout_2026", 0.5),
         cost_row("key_mystery", 2.0), cost_row("key_mystery_too", 3.0)],
        [cost_row("key_checkout_2026", 4.0)])))
    answer = proxy.get(COSTS + "?start_time=1730419200&group_by=api_key_name&group_by=line_item")
    assert answer.status == 200
    assert fake.last().target == f"{COSTS}?start_time=1730419200&group_by=api_key_id&group_by=line_item".encode()
    page = answer.json()
    assert (page["has_more"], page["next_page"]) == (True, NEXT_PAGE)  # OpenAI's pagination
    first, second = (bucket["results"] for bucket in page["data"])
    assert [(r["api_key_name"], r["api_key_id"], r["api_key_ids"], r["amount"]["value"]) for r in first] == [
        ("checkout", None, ["key_checkout_2025", "key_checkout_2026"], 0.75),
        ("web", "key_web", ["key_web"], 1.0),
        ("unknown", "key_mystery", ["key_mystery"], 2.0),  # unknown ids are never merged
        ("unknown", "key_mystery_too", ["key_mystery_too"], 3.0),
    ]
    assert [(r["api_key_id"], r["api_key_ids"], r["amount"]["value"]) for r in second] == [
        ("key_checkout_2026", ["key_checkout_2026"], 4.0)]


@pytest.mark.parametrize("group_by", ["group_by[]=api_key_name", "group_by=api_key_name",
                                      "group_by=line_item,api_key_name", "group_by%5B%5D=api_key_name"])
def test_every_spelling_of_group_by_name_merges(proxy: InMemoryProxy, fake: FakeOpenAI, group_by: str) -> None:
    fake.on(COSTS, reply(body=costs_page([cost_row("key_checkout_2025", 0.25), cost_row("key_checkout_2026", 0.5)])))
    (row,) = results(proxy, f"{COSTS}?start_time=1&{group_by}")
    assert (row["api_key_ids"], row["amount"]["value"]) == (["key_checkout_2025", "key_checkout_2026"], 0.75)


def test_rows_in_different_currencies_or_line_items_stay_apart(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=costs_page([
        cost_row("key_checkout_2025", 0.25), cost_row("key_checkout_2026", 0.5, currency="eur"),
        cost_row("key_checkout_2026", 0.5, line_item="embeddings")])))
    rows = results(proxy, COSTS + "?start_time=1&group_by[]=api_key_name")
    assert [(r["amount"]["currency"], r["line_item"], r["api_key_ids"]) for r in rows] == [
        ("usd", "completions", ["key_checkout_2025"]),
        ("eur", "completions", ["key_checkout_2026"]),
        ("usd", "embeddings", ["key_checkout_2026"]),
    ]


def test_grouping_by_id_merges_nothing_and_keeps_every_byte(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    body = json.dumps(costs_page([cost_row("key_checkout_2025", 0.25), cost_row("key_checkout_2026", 0.5)]),
                      indent=2).encode()
    fake.on(COSTS, reply(body=body))
    answer = proxy.get(COSTS + "?start_time=1&group_by=api_key_id")
    rows = answer.json()["data"][0]["results"]
    assert [r["api_key_id"] for r in rows] == ["key_checkout_2025", "key_checkout_2026"]
    assert "api_key_ids" not in rows[0]
    assert answer.body.startswith(b'{\n  "object": "page"')  # the upstream's own layout


def test_rows_of_an_endpoint_that_cannot_group_by_key_are_left_alone(proxy: InMemoryProxy,
                                                                     fake: FakeOpenAI) -> None:
    sessions = "/v1/organization/usage/code_interpreter_sessions"
    row = {"object": "organization.usage.code_interpreter_sessions.result", "num_sessions": 1, "project_id": None}
    fake.on(sessions, reply(body=costs_page([row, row])))
    rows = results(proxy, sessions + "?start_time=1&group_by=api_key_name")
    assert rows == [{**row, "project_name": None}, {**row, "project_name": None}]


def test_usage_tokens_are_summed_as_integers(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    def usage(key: str, tokens: int) -> dict:
        return {"object": "organization.usage.completions.result", "input_tokens": tokens, "output_tokens": 1,
                "num_model_requests": 1, "project_id": None, "user_id": None, "api_key_id": key,
                "model": "gpt-4o-mini", "batch": None}
    fake.on(COMPLETIONS, reply(body={"object": "page", "data": [{"object": "bucket", "results": [
        usage("key_checkout_2025", 10), usage("key_checkout_2026", 32)]}], "has_more": False, "next_page": None}))
    answer = proxy.get(COMPLETIONS + "?start_time=1&group_by=api_key_name,model")
    (row,) = answer.json()["data"][0]["results"]
    assert (row["input_tokens"], row["output_tokens"], row["num_model_requests"]) == (42, 2, 2)
    assert b'"input_tokens":42,' in answer.body  # an integer, not 42.0


# --- filtering by name ----------------------------------------------------------------

@pytest.mark.parametrize(("sent", "forwarded"), [
    ("api_key_names=checkout", "api_key_ids=key_checkout_2025&api_key_ids=key_checkout_2026"),
    ("api_key_names[]=checkout&api_key_names[]=web",
     "api_key_ids[]=key_checkout_2025&api_key_ids[]=key_checkout_2026&api_key_ids[]=key_web"),
    ("api_key_names=web,checkout", "api_key_ids=key_web,key_checkout_2025,key_checkout_2026"),
    ("api_key_ids[]=key_web&api_key_names[]=checkout&api_key_names[]=web",
     "api_key_ids[]=key_web&api_key_ids[]=key_checkout_2025&api_key_ids[]=key_checkout_2026"),
    ("api_key_names%5B%5D=web&project_names=shop", "api_key_ids%5B%5D=key_web&project_ids=proj_shop"),
])
def test_filters_by_name_are_sent_as_the_ids_known_by_those_names(proxy: InMemoryProxy, fake: FakeOpenAI,
                                                                  sent: str, forwarded: str) -> None:
    fake.on(COSTS, reply(body=costs_page([])))
    assert proxy.get(f"{COSTS}?start_time=1&{sent}&limit=7").status == 200
    assert fake.last().target == f"{COSTS}?start_time=1&{forwarded}&limit=7".encode()


@pytest.mark.parametrize(("query", "param"), [
    ("api_key_names=nobody", "api_key_names"),
    ("api_key_names[]=checkout&api_key_names[]=nobody", "api_key_names"),
    ("project_names=nowhere", "project_names"),
    ("user_names=no%20one", "user_names"),
])
def test_a_filter_by_an_unknown_name_is_a_400_that_never_reaches_the_upstream(
        proxy: InMemoryProxy, fake: FakeOpenAI, logged: list[dict[str, Any]], query: str, param: str) -> None:
    answer = proxy.get(f"{COSTS}?start_time=1&{query}")
    assert answer.status == 400
    error = answer.error()
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, "unknown_name")
    assert fake.received == []
    (refused,) = [e for e in logged if e.get("code") == "unknown_name"]
    assert (refused["method"], refused["path"], refused["status"]) == ("GET", COSTS, 400)


# --- --replace-ids ----------------------------------------------------------------------

def test_replace_ids_writes_names_into_the_id_fields(make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--replace-ids")
    fake.on(COSTS, reply(body=costs_page([cost_row("key_web", 1.0), cost_row("key_mystery", 2.0)])))
    known, unknown = results(proxy, COSTS + "?start_time=1")
    assert (known["api_key_id"], known["api_key_id_original"], known["api_key_name"]) == ("web", "key_web", "web")
    assert list(known).index("api_key_id_original") == list(known).index("api_key_id") + 1
    assert (known["project_id"], known["project_id_original"]) == ("shop", "proj_shop")
    assert unknown["api_key_id"] == "key_mystery" and "api_key_id_original" not in unknown


def test_without_replace_ids_the_ids_stay(proxy: InMemoryProxy, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=costs_page([cost_row("key_web", 1.0)])))
    (row,) = results(proxy, COSTS + "?start_time=1")
    assert row["api_key_id"] == "key_web" and "api_key_id_original" not in row


# --- through the official SDK ------------------------------------------------------------


@pytest.fixture
def client(proxy: InMemoryProxy) -> OpenAI:
    # No retries: each test sees exactly one upstream call.
    from openai import OpenAI

    return OpenAI(admin_api_key=TOKEN, api_key="sk-unused", base_url="http://orgproxy.test/v1", max_retries=0,
                  http_client=httpx2.Client(transport=through(proxy)))


def test_sdk_costs_grouped_by_api_key_name(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body=costs_page([cost_row("key_checkout_2025", 0.25), cost_row("key_checkout_2026", 0.5)])))
    page = client.admin.organization.usage.costs(start_time=1730419200,
                                                 group_by=["api_key_name"])  # type: ignore[list-item]
    (row,) = page.data[0].results
    assert row.api_key_name == "checkout"
    assert row.api_key_ids == ["key_checkout_2025", "key_checkout_2026"]
    assert row.amount.value == 0.75
    target = fake.last().target
    assert b"api_key_id" in target and b"api_key_name" not in target
    assert fake.last().header("Authorization") == f"Bearer {TOKEN}".encode()


def test_sdk_completions_filtered_by_api_key_names(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.on(COMPLETIONS, reply(body={"object": "page", "data": [], "has_more": False, "next_page": None}))
    client.admin.organization.usage.completions(start_time=1730419200, extra_query={"api_key_names": ["checkout"]})
    target = fake.last().target
    assert b"api_key_names" not in target
    assert b"key_checkout_2025" in target and b"key_checkout_2026" in target


def test_sdk_unknown_name_raises_bad_request(client: OpenAI, fake: FakeOpenAI) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as raised:
        client.admin.organization.usage.completions(start_time=1730419200,
                                                    extra_query={"api_key_names": ["nobody"]})
    assert raised.value.param == "api_key_names"
    assert raised.value.code == "unknown_name"
    assert fake.received == []
