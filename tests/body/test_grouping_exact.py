"""Merged rows with exact money, and Anthropic's analytics rows merged by name.

Money: every sum in a merged row is decimal arithmetic on the amounts as sent: OpenAI's
``amount.value`` (a JSON number, or a string where users have seen one), Anthropic's cents
(``amount``, ``cost.amount``, ``cost.list_amount``, decimal strings), and every other number
with a fraction. The expected sums are computed here with ``Decimal`` from the text of each
amount, never through the code under test.

Analytics rows (``/v1/organizations/analytics/cost`` and ``/usage``) are flat: each has its
bucket's ``starting_at``/``ending_at``, a ``group`` object holding every dimension (ids among
them) and a ``cost`` or ``usage`` object; rows of one bucket whose group names are the same
and whose other dimensions are equal merge.
"""

from __future__ import annotations

import copy
import decimal
import json
from decimal import Decimal
from functools import reduce
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgproxy.body.amend import amend_json
from orgproxy.body.grouping import merge_by_name, regroup
from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.names.history import Learned
from orgproxy.names.snapshot import Names
from tests.support.properties import property_settings

EXACT = decimal.Context(prec=1000, traps=[decimal.Inexact])
ANALYTICS = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-admin-api" / "analytics"
OPENAI_NAMES = Names.build({"api_keys": {"key_a": "checkout", "key_b": "checkout", "key_c": "search"}})
KEY_1 = "apikey_01Rj2N8SVvo6BePZj99NhmiT"
KEY_2 = "apikey_01HzQ8m3VbT5kY7wXcN2pLdE"
KEY_3 = "apikey_01JbV4tR8sZq2MxY6uW9aKcF"
BILLING = "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
ANTHROPIC_NAMES = Names.build({"api_keys": {KEY_1: "batch", KEY_2: "batch", KEY_3: "web"},
                               "workspaces": {BILLING: "Billing"}},
                              discovered=[Learned("account_id", "user_01WfPq3RbX7kN2mZ8cT5vYhJ", "Dana Iverson",
                                                  email="dana@example.com", provider="anthropic")])


def decimal_loads(body: bytes) -> Any:
    """A JSON body with its numbers as the decimals they are written as."""
    return json.loads(body, parse_float=Decimal)


# --- OpenAI's amount.value --------------------------------------------------------------------

def costs_page(*values: Any) -> bytes:
    """An OpenAI costs page of one bucket, one row per value (as JSON text where a str of
    digits is given with ``raw:``), every key named "checkout"."""
    keys = ["key_a", "key_b"]
    rows = ",".join(
        '{"object":"organization.costs.result","amount":{"value":%s,"currency":"usd"},"line_item":null,'
        '"project_id":null,"api_key_id":"%s"}' % (value.removeprefix("raw:") if isinstance(value, str)
                                                 and value.startswith("raw:") else json.dumps(value),
                                                 keys[i % 2])
        for i, value in enumerate(values))
    return ('{"object":"page","data":[{"object":"bucket","start_time":1730419200,"end_time":1730505600,'
            '"results":[%s]}],"has_more":false,"next_page":null}' % rows).encode()


def merged_value(body: bytes) -> tuple[Any, bytes]:
    """The one merged row's amount.value (as the decimal it is written as), and the body."""
    amended = amend_json(body, OPENAI_NAMES)
    assert amended is not None
    out = regroup(amended.body, {"api_key_id"}, OPENAI_NAMES, False)
    assert out is not None
    [row] = decimal_loads(out)["data"][0]["results"]
    assert row["api_key_ids"] == ["key_a", "key_b"]
    return row["amount"]["value"], out


@pytest.mark.parametrize(("values", "total"), [
    ((0.1, 0.2), "0.3"),  # a double's sum: 0.30000000000000004
    ((68.07, 0.1), "68.17"),  # a double's sum: 68.16999999999999
    ((0.1, 0.2, 0.3, 1e-7), "0.6000001"),
    ((5, 0.25), "5.25"),
])
def test_a_merged_amount_value_has_the_digits_of_the_decimal_sum(values: tuple[float, ...], total: str) -> None:
    value, body = merged_value(costs_page(*values))
    assert value == Decimal(total)
    assert b'"value":%s,' % str(Decimal(total)).encode() in body


def test_numbers_longer_than_a_double_are_summed_as_written() -> None:
    value, _ = merged_value(costs_page("raw:0.12345678901234567891", "raw:1.00000000000000000001"))
    assert value == Decimal("1.12345678901234567892")


def test_string_amount_values_are_summed_as_strings() -> None:
    value, body = merged_value(costs_page("0.1", "0.2", "1520.4417"))
    assert value == "1520.7417" and b'"value":"1520.7417"' in body
    # A string first keeps the sum a string; a number first keeps it a number.
    assert merged_value(costs_page("0.1", 0.2))[0] == "0.3"
    assert merged_value(costs_page(0.1, "0.2"))[0] == Decimal("0.3")


def test_an_amount_string_that_is_no_decimal_merges_only_with_its_equal() -> None:
    amended = amend_json(costs_page("n/a", "0.2", "n/a"), OPENAI_NAMES)
    assert amended is not None
    out = regroup(amended.body, {"api_key_id"}, OPENAI_NAMES, False)
    assert out is not None
    rows = decimal_loads(out)["data"][0]["results"]
    assert [(row["amount"]["value"], row["api_key_ids"]) for row in rows] == [("n/a", ["key_a"]), ("0.2", ["key_b"])]


@st.composite
def decimal_amounts(draw: st.DrawFn) -> list[tuple[str, bool]]:
    """Amounts as their text, and whether each is sent as a JSON string: up to 20
    significant digits (beyond what a double carries), any scale."""
    out = []
    for _ in range(draw(st.integers(2, 6))):
        digits = draw(st.integers(0, 10**draw(st.integers(1, 20)) - 1))
        scale = draw(st.integers(0, 12))
        sign = draw(st.sampled_from(["", "-"]))
        out.append((format(Decimal(f"{sign}{digits}").scaleb(-scale), "f"), draw(st.booleans())))
    return out


@property_settings(120)
@given(decimal_amounts(), st.booleans())
def test_any_decimal_amounts_merge_into_their_exact_sum(amounts: list[tuple[str, bool]], first_string: bool) -> None:
    amounts[0] = (amounts[0][0], first_string)
    values = [text if as_string else "raw:" + text for text, as_string in amounts]
    total = reduce(EXACT.add, (Decimal(text) for text, _ in amounts))
    value, _ = merged_value(costs_page(*values))
    if first_string:
        assert isinstance(value, str) and "e" not in value.lower() and Decimal(value) == total
    else:
        assert isinstance(value, (int, Decimal)) and value == total  # integers stay integers


# --- Anthropic's analytics rows ---------------------------------------------------------------

def example(name: str) -> dict[str, Any]:
    page: dict[str, Any] = json.loads((ANALYTICS / name).read_bytes())
    return page


def named(page: dict[str, Any], named_nulls: tuple[str, ...] = ()) -> dict[str, Any]:
    amended = amend_json(orjson.dumps(page), ANTHROPIC_NAMES, ANTHROPIC_FIELDS, named_nulls)
    assert amended is not None
    result: dict[str, Any] = orjson.loads(amended.body)
    return result


def grouped_rows(page: dict[str, Any], grouped: set[str], named_nulls: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The page named, then merged by name over ``grouped`` through regroup (its bytes)."""
    out = regroup(orjson.dumps(named(page, named_nulls)), grouped, ANTHROPIC_NAMES, False, ANTHROPIC_FIELDS)
    assert out is not None
    rows: list[dict[str, Any]] = decimal_loads(out)["data"]
    return rows


def test_every_id_in_an_analytics_row_gets_its_name_inside_group() -> None:
    rows = named(example("04-cost-console-usage-default-workspace.json"), ("api_key_id", "workspace_id"))["data"]
    groups = [row["group"] for row in rows]
    assert [(g["api_key_id"], g["api_key_name"], g["workspace_name"]) for g in groups] == [
        (KEY_1, "batch", "Billing"), (KEY_2, "batch", "Default"), (None, "Console", "Default")]
    keys = list(groups[0])
    assert keys[keys.index("api_key_id") + 1] == "api_key_name"
    assert keys[keys.index("workspace_id") + 1] == "workspace_name"


def test_a_null_is_console_or_default_only_where_the_answer_is_grouped_by_it() -> None:
    rows = named(example("01-cost-by-api-key-daily-page1.json"), ("api_key_id",))["data"]
    assert {row["group"]["workspace_name"] for row in rows} == {None}
    assert all(row["group"]["api_key_name"] is not None for row in rows)


def test_every_actor_is_named_by_its_own_id() -> None:
    rows = named(example("08-cost-by-actor-month.json"))["data"]
    actors = [row["group"]["actor"] for row in rows]
    assert actors[0]["user_id"] == "user_01WfPq3RbX7kN2mZ8cT5vYhJ" and actors[0]["user_name"] == "Dana Iverson"
    assert (actors[1]["api_key_id"], actors[1]["api_key_name"]) == (KEY_2, "batch")
    assert actors[2]["service_account_name"] == "unknown"
    assert set(actors[3]) == {"type", "provider", "subject"}  # a federated actor has no id to name


def test_rows_of_one_bucket_merge_by_key_name_with_exact_cents() -> None:
    page = {"data": example("01-cost-by-api-key-daily-page1.json")["data"]
            + example("02-cost-by-api-key-daily-page2.json")["data"], "has_more": False, "next_page": None}
    rows = grouped_rows(page, {"api_key_id"}, ("api_key_id",))
    by_bucket = [(row["starting_at"], row["group"]["api_key_name"]) for row in rows]
    assert len(by_bucket) == len(set(by_bucket)), "one row per name per bucket"
    source = page["data"]
    for row in rows:
        went_in = [r for r in source if r["starting_at"] == row["starting_at"]
                   and ANTHROPIC_NAMES.by_field["api_key_id"].get(r["group"]["api_key_id"], "Console")
                   == row["group"]["api_key_name"]]
        assert row["group"]["api_key_ids"] == [r["group"]["api_key_id"] for r in went_in if r["group"]["api_key_id"]]
        for measure in ("amount", "list_amount"):
            assert row["cost"][measure] == format(reduce(EXACT.add, (Decimal(r["cost"][measure]) for r in went_in)), "f")
        assert row["cost"]["requests"] == sum(r["cost"]["requests"] for r in went_in)
        assert row["ending_at"] == went_in[0]["ending_at"]
    # Both days' two keys are "batch"; the Console's row stays its own.
    assert [(row["starting_at"][:10], row["group"]["api_key_name"], row["group"]["api_key_id"]) for row in rows] == [
        ("2026-09-28", "batch", None), ("2026-09-29", "batch", None), ("2026-09-29", "Console", None)]


def test_requests_left_null_by_cost_type_stay_null_and_other_dimensions_stay_apart() -> None:
    page = example("03-cost-by-api-key-workspace-cost-type.json")
    rows = grouped_rows(page, {"api_key_id"})
    # "batch" is two keys, but their token costs are in two workspaces: dimensions, not merged.
    assert len(rows) == len(page["data"])
    assert all(row["cost"]["requests"] is None for row in rows)
    # In one workspace, the two keys' token costs are one row; its requests stay null, never 0.
    page["data"][3]["group"]["workspace_id"] = BILLING
    rows = grouped_rows(page, {"api_key_id"})
    tokens = [row for row in rows if row["group"]["cost_type"] == "tokens"]
    assert [row["group"]["api_key_ids"] for row in tokens] == [[KEY_1, KEY_2]]
    assert tokens[0]["cost"] == {"amount": "2493.4025", "currency": "USD", "list_amount": "2727.335833",
                                 "requests": None}


def test_rows_whose_other_dimensions_differ_never_merge() -> None:
    base = example("01-cost-by-api-key-daily-page1.json")["data"][0]
    rows = []
    for key, model in ((KEY_1, "claude-opus-4-6"), (KEY_2, "claude-sonnet-5"), (KEY_2, "claude-opus-4-6")):
        row = copy.deepcopy(base)
        row["group"].update(api_key_id=key, model=model)
        rows.append(row)
    merged = grouped_rows({"data": rows}, {"api_key_id"})
    assert [(row["group"]["model"], row["group"]["api_key_ids"]) for row in merged] == [
        ("claude-opus-4-6", [KEY_1, KEY_2]), ("claude-sonnet-5", [KEY_2])]
    assert merged[0]["cost"]["amount"] == format(Decimal(base["cost"]["amount"]) * 2, "f")


def test_usage_rows_merge_their_token_counts_as_integers() -> None:
    rows = grouped_rows(example("05-usage-by-api-key-model-daily.json"), {"api_key_id"}, ("api_key_id",))
    source = example("05-usage-by-api-key-model-daily.json")["data"]
    for row in rows:
        ids = row["group"]["api_key_ids"]
        went_in = [r for r in source if r["group"]["model"] == row["group"]["model"]
                   and (r["group"]["api_key_id"] in ids if ids else r["group"]["api_key_id"] is None)]
        assert row["usage"]["total_tokens"] == sum(r["usage"]["total_tokens"] for r in went_in)
        assert type(row["usage"]["total_tokens"]) is int
        assert row["usage"]["cache_creation"]["ephemeral_5m_input_tokens"] == sum(
            r["usage"]["cache_creation"]["ephemeral_5m_input_tokens"] for r in went_in)
    assert len(rows) == len(source) - 1, "the two keys named batch that used haiku are one row"


def test_an_analytics_page_without_groups_is_left_as_it_is() -> None:
    page = {"data": [{"starting_at": "x", "cost": {"amount": "1"}}, {"starting_at": "x", "cost": {"amount": "2"}}]}
    before = copy.deepcopy(page)
    assert merge_by_name(page, {"api_key_id"}, ANTHROPIC_NAMES, ANTHROPIC_FIELDS) == 0
    assert page == before
