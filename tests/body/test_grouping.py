"""Tests for orgproxy.grouping (rows merged by name, names in place of ids) and for the
name-filter side of orgproxy.query (``rewrite_name_filters``, ``names_grouped_by``).

The merge properties check ``merge_by_name`` against the contract, not against its own
helpers: which input rows went into which output row is reconstructed from the output's
id lists and other non-numeric fields, and every claim is checked from there.
"""

from __future__ import annotations

import copy
import decimal
import json
import operator
from decimal import Decimal
from functools import reduce
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote_to_bytes

import orjson
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from orgproxy.body.amend import amend_json
from orgproxy.body.grouping import merge_by_name, merge_rows, regroup, replace_ids
from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.names.history import Learned
from orgproxy.names.snapshot import Names
from orgproxy.query import UnknownName, names_grouped_by, rewrite_name_filters
from tests.support.properties import property_settings as examples_of

# No example database: running the tests must not leave files in the working tree.
property_settings = examples_of(80)

# The contract, spelled out here rather than imported, so the tests check the module.
ID_FIELDS = ("api_key_id", "project_id", "user_id")
IDS_FIELD = {"api_key_id": "api_key_ids", "project_id": "project_ids", "user_id": "user_ids"}
NAME_FIELD = {"api_key_id": "api_key_name", "project_id": "project_name", "user_id": "user_name"}
EXTRA = {"api_key_id": ("api_key_redacted_value",), "project_id": (), "user_id": ("user_email",)}

# Several ids share a name (keys get rotated; projects and people get recreated). Some ids
# come with extras from discovery, some only from the alias file (no extras).
DISCOVERED = [
    Learned("api_key_id", "key_ck1", "checkout", redacted_value="sk-proj-...aaaa"),
    Learned("api_key_id", "key_ck2", "checkout", redacted_value="sk-proj-...bbbb"),
    Learned("api_key_id", "key_srch", "search", redacted_value="sk-proj-...cccc"),
    Learned("project_id", "proj_w1", "web"),
    Learned("project_id", "proj_w2", "web"),
    Learned("project_id", "proj_m", "mobile"),
    Learned("user_id", "user_a1", "alice", email="alice@old.example"),
    Learned("user_id", "user_a2", "alice", email="alice@new.example"),
    Learned("user_id", "user_b", "bob", email="bob@example.com"),
]
ALIASES = {
    "api_keys": {"key_ck3": "checkout", "key_ops1": "ops team", "key_ops2": "ops team", "key_eq": "équipe"},
    "users": {"user_a3": "alice"},
}
NAMES = Names.build(ALIASES, discovered=DISCOVERED)

# ABSENT: the row has no such field at all (an endpoint that cannot group by it).
ABSENT = "<absent>"
KEY_POOL = ["key_ck1", "key_ck2", "key_ck3", "key_srch", "key_gone1", "key_gone2", None, None, ABSENT]
PROJECT_POOL = ["proj_w1", "proj_w2", "proj_m", "proj_gone", None, None, ABSENT]
USER_POOL = ["user_a1", "user_a2", "user_a3", "user_b", "user_gone", None, None, ABSENT]
POOL = {"api_key_id": KEY_POOL, "project_id": PROJECT_POOL, "user_id": USER_POOL}


def test_the_fixture_names_share_names_and_leave_some_ids_unknown() -> None:
    assert NAMES.ids_by_name["api_key_id"]["checkout"] == ("key_ck1", "key_ck2", "key_ck3")
    assert NAMES.by_field["project_id"]["proj_w2"] == "web"
    assert "key_gone1" not in NAMES.by_field["api_key_id"]
    assert NAMES.members["api_key_id"]["key_ck1"][1][0] == b"api_key_redacted_value"
    assert len(NAMES.members["api_key_id"]["key_ck3"]) == 1  # alias only: no redacted value


# Reference helpers ----------------------------------------------------------------------------


def is_number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def as_decimal(number: Any) -> Any:
    """A number as the decimal it was written as (a double by its shortest spelling)."""
    return Decimal(repr(number)) if isinstance(number, float) else number


def as_decimals(value: Any) -> Any:
    """``value`` with every float as the decimal it was written as."""
    if isinstance(value, dict):
        return {k: as_decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_decimals(v) for v in value]
    return as_decimal(value)


def own_fields(grouped: frozenset[str] | set[str]) -> set[str]:
    fields: set[str] = set()
    for f in grouped:
        fields |= {f, NAME_FIELD[f], IDS_FIELD[f], *EXTRA[f]}
    return fields


def skeleton(value: Any) -> Any:
    """A hashable picture of a value in which every number looks the same (null does not)."""
    if is_number(value):
        return ("<number>",)
    if isinstance(value, dict):
        return ("{}", tuple(sorted((k, skeleton(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("[]", tuple(skeleton(v) for v in value))
    return (type(value).__name__, value)


def rest(row: dict[str, Any], grouped: set[str]) -> Any:
    """The non-numeric fields a merged row's inputs must all share (outside the grouped ids)."""
    own = own_fields(grouped)
    return skeleton({k: v for k, v in row.items() if k not in own})


def is_unknown(row: dict[str, Any], grouped: set[str]) -> bool:
    """Whether the row must stay alone: a grouped id in it is something nobody can name,
    or it has no such field at all."""
    return any(f not in row or (row[f] is not None and row[f] not in NAMES.by_field[f]) for f in grouped)


def name_key(row: dict[str, Any], grouped: set[str]) -> tuple[Any, ...]:
    return tuple(None if row.get(f) is None else NAMES.by_field[f][row[f]] for f in sorted(grouped))


def with_id_lists(row: dict[str, Any], grouped: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        out[k] = v
        if k in grouped:
            out[IDS_FIELD[k]] = [] if v is None else [v]
    return out


def could_hold(out_row: dict[str, Any], in_row: dict[str, Any], grouped: set[str]) -> bool:
    """Whether ``in_row`` can have gone into ``out_row``: same other non-numeric fields, and
    each grouped id listed (a null id: an empty list)."""
    if rest(out_row, grouped) != rest(in_row, grouped):
        return False
    for f in grouped:
        if f not in in_row:  # no id field: no id list either
            if f in out_row or IDS_FIELD[f] in out_row:
                return False
            continue
        ids = out_row.get(IDS_FIELD[f])
        if not isinstance(ids, list):
            return False
        if in_row.get(f) is None:
            if ids != []:
                return False
        elif in_row[f] not in ids:
            return False
    return True


def claims(rows_in: list[dict[str, Any]], rows_out: list[dict[str, Any]], grouped: set[str]) -> list[list[int]]:
    """For each output row, the indexes of the input rows that went into it, reconstructed
    from the id lists and the other non-numeric fields. An input row with a known (or null)
    id fits exactly one output row; one with an unknown id takes an output row of its own."""
    members: list[list[int]] = [[] for _ in rows_out]
    alone: set[int] = set()
    for i, row in enumerate(rows_in):
        fits = [j for j, out in enumerate(rows_out) if could_hold(out, row, grouped)]
        if is_unknown(row, grouped):
            fits = [j for j in fits if j not in alone]
            assert fits, f"unknown-id input row {i} is in no output row: {row}"
            alone.add(fits[0])
            members[fits[0]].append(i)
        else:
            assert len(fits) == 1, f"input row {i} fits output rows {fits}, not exactly one: {row}"
            members[fits[0]].append(i)
    return members


def assert_same(actual: Any, expected: Any, where: str = "") -> None:
    """Equal, and numbers of the same type (an int sum stays an int)."""
    if is_number(expected):
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), f"{where}: {actual!r} != {expected!r}"
        for k in expected:
            assert_same(actual[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for n, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{n}]")
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


def summed(values: list[Any]) -> Any:
    """What a field of merged rows must be: integers added, other numbers added as the
    decimals they were written as (a Decimal), the rest as is."""
    first = values[0]
    if is_number(first):
        if len(values) == 1 or all(isinstance(v, int) for v in values):
            return reduce(operator.add, values)
        exact = decimal.Context(prec=1000, traps=[decimal.Inexact])
        return reduce(exact.add, map(as_decimal, values))
    if isinstance(first, dict):
        return {k: summed([v[k] for v in values]) for k in first}
    if isinstance(first, list):
        return [summed(list(column)) for column in zip(*values)]
    return first


def first_seen(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


# Generated pages ------------------------------------------------------------------------------

ints = st.integers(min_value=0, max_value=10**9)
floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.1, 0.2, 0.3, 0.25, 0.5, 1e-7, 3.0])


@st.composite
def usage_template(draw: st.DrawFn) -> dict[str, Any]:
    return {"model": draw(st.sampled_from(["gpt-4o", "gpt-4o-mini", None])),
            "batch": draw(st.sampled_from([False, True, None])),
            "service_tier": draw(st.sampled_from([None, "default"]))}


@st.composite
def costs_template(draw: st.DrawFn) -> dict[str, Any]:
    return {"currency": draw(st.sampled_from(["usd", "usd", "eur"])),
            "line_item": draw(st.sampled_from([None, "gpt-4o, input", "gpt-4o, output"])),
            "value": draw(st.sampled_from(["float", "float", "int", "null"])),
            "quantity": draw(st.sampled_from(["null", "float", "int"])),
            "quantity_unit": draw(st.sampled_from([None, "tokens"]))}


def number_of(draw: st.DrawFn, kind: str) -> Any:
    return {"null": None, "int": draw(ints), "float": draw(floats)}[kind]


@st.composite
def usage_row(draw: st.DrawFn, templates: list[dict[str, Any]], ids: dict[str, list[Any]]) -> dict[str, Any]:
    template = draw(st.sampled_from(templates))
    return without_absent({"object": "organization.usage.completions.result",
            "input_tokens": draw(ints), "input_cached_tokens": draw(ints),
            "output_tokens": draw(ints), "num_model_requests": draw(st.integers(0, 50)),
            "project_id": draw(st.sampled_from(ids["project_id"])),
            "user_id": draw(st.sampled_from(ids["user_id"])),
            "api_key_id": draw(st.sampled_from(ids["api_key_id"])),
            **template})


@st.composite
def costs_row(draw: st.DrawFn, templates: list[dict[str, Any]], ids: dict[str, list[Any]]) -> dict[str, Any]:
    t = draw(st.sampled_from(templates))
    return without_absent({"object": "organization.costs.result",
            "amount": {"value": number_of(draw, t["value"]), "currency": t["currency"]},
            "line_item": t["line_item"],
            "project_id": draw(st.sampled_from(ids["project_id"])),
            "api_key_id": draw(st.sampled_from(ids["api_key_id"])),
            "quantity": number_of(draw, t["quantity"]),
            "quantity_unit": t["quantity_unit"]})


def without_absent(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v != ABSENT}


@st.composite
def pages(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A usage-like or costs-like page, and a non-empty set of id fields grouped by name.
    Half the time the page is amended first (name fields and extras already in the rows),
    as the daemon merges it."""
    kind = draw(st.sampled_from(["usage", "costs"]))
    fields = ID_FIELDS if kind == "usage" else ("api_key_id", "project_id")
    grouped = draw(st.sets(st.sampled_from(fields), min_size=1))
    template, row = (usage_template, usage_row) if kind == "usage" else (costs_template, costs_row)
    # Rows share most non-numeric fields: a base, and variants that differ in one field.
    base = draw(template())
    templates = [base] + [{**base, field: other[field]} for other, field in draw(st.lists(
        st.tuples(template(), st.sampled_from(sorted(base))), max_size=2))]
    # Each page uses a few ids of each pool, so that rows meet often enough to merge.
    ids = {f: draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True)) for f, pool in POOL.items()}
    buckets = []
    start = 1730419200
    for n in range(draw(st.integers(0, 4))):
        buckets.append({"object": "bucket", "start_time": start + n * 86400, "end_time": start + (n + 1) * 86400,
                        "results": draw(st.lists(row(templates, ids), max_size=8))})
    page = {"object": "page", "data": buckets, "has_more": draw(st.booleans()),
            "next_page": draw(st.sampled_from([None, "page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="]))}
    if draw(st.booleans()):
        amended = amend_json(orjson.dumps(page), NAMES)
        assert amended is not None
        page = orjson.loads(amended.body)
    return page, grouped


def merged(page: dict[str, Any], grouped: set[str]) -> tuple[dict[str, Any], int]:
    """A deep copy of ``page`` merged, and what merge_by_name returned."""
    out = copy.deepcopy(page)
    return out, merge_by_name(out, grouped, NAMES)


def bucket_pairs(page_in: dict[str, Any], page_out: dict[str, Any]) -> list[tuple[list[Any], list[Any]]]:
    assert len(page_out["data"]) == len(page_in["data"])
    return [(b_in["results"], b_out["results"]) for b_in, b_out in zip(page_in["data"], page_out["data"])]


# Merge properties -----------------------------------------------------------------------------


@property_settings
@given(pages())
def test_input_rows_are_partitioned_exactly_among_output_rows(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    for rows_in, rows_out in bucket_pairs(page, out):
        members = claims(rows_in, rows_out, grouped)
        assert sorted(i for m in members for i in m) == list(range(len(rows_in)))  # none lost
        for j, m in enumerate(members):
            assert m, f"output row {j} holds no input row (invented): {rows_out[j]}"
            if len(m) > 1:
                assert not any(is_unknown(rows_in[i], grouped) for i in m), "a row of an unknown id merged"
                assert len({name_key(rows_in[i], grouped) for i in m}) == 1, "rows with different names merged"
            for f in grouped:  # the id lists name exactly the ids that went in
                if f not in rows_out[j]:
                    continue
                assert rows_out[j][IDS_FIELD[f]] == first_seen(
                    [rows_in[i][f] for i in m if rows_in[i].get(f) is not None])


@property_settings
@given(pages())
def test_numbers_of_an_output_row_are_the_in_order_sums_of_its_input_rows(
        case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    own = own_fields(grouped)
    for rows_in, rows_out in bucket_pairs(page, out):
        for row, m in zip(rows_out, claims(rows_in, rows_out, grouped)):
            expected = {k: summed([rows_in[i][k] for i in m]) for k in rows_in[m[0]] if k not in own}
            assert_same({k: v for k, v in row.items() if k not in own}, expected, "row")


@property_settings
@given(pages())
def test_id_field_and_extras_of_an_output_row_follow_its_ids(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    for rows_in, rows_out in bucket_pairs(page, out):
        for row, m in zip(rows_out, claims(rows_in, rows_out, grouped)):
            keys = list(row)
            for f in grouped:
                if f not in row:
                    assert IDS_FIELD[f] not in row, f"{IDS_FIELD[f]} added to a row without {f}"
                    continue
                ids = row[IDS_FIELD[f]]
                assert keys[keys.index(f) + 1] == IDS_FIELD[f], f"{IDS_FIELD[f]} not right after {f}: {keys}"
                assert row[f] == (ids[0] if len(ids) == 1 else None)
                if NAME_FIELD[f] in rows_in[m[0]]:
                    assert row[NAME_FIELD[f]] == rows_in[m[0]][NAME_FIELD[f]]
                for extra in EXTRA[f]:
                    values = [rows_in[i].get(extra) for i in m]
                    if len(set(values)) == 1:
                        assert row.get(extra) == values[0]
                    else:  # the merged rows disagree: no one value (see the concrete test on absence)
                        assert row.get(extra) is None


@property_settings
@given(pages())
def test_unknown_id_rows_stay_unchanged_one_per_input_row(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    for rows_in, rows_out in bucket_pairs(page, out):
        expected = [with_id_lists(r, grouped) for r in rows_in if is_unknown(r, grouped)]
        actual = [r for r in rows_out if is_unknown(r, grouped)]
        assert [list(r.items()) for r in actual] == [list(r.items()) for r in expected]


@property_settings
@given(pages())
def test_no_two_output_rows_of_a_bucket_share_a_merge_key(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    for _, rows_out in bucket_pairs(page, out):
        seen: set[Any] = set()
        for row in rows_out:
            if is_unknown(row, grouped) or any(
                    i not in NAMES.by_field[f] for f in grouped for i in row[IDS_FIELD[f]]):
                continue  # an unknown id is never merged, so it shares no key
            names = []
            for f in sorted(grouped):
                row_names = {NAMES.by_field[f][i] for i in row[IDS_FIELD[f]]}
                assert len(row_names) <= 1, f"ids of different names in one row: {row[IDS_FIELD[f]]}"
                names.append(row_names.pop() if row_names else None)
            key = (tuple(names), rest(row, grouped))
            assert key not in seen, f"two output rows with the same names and fields: {row}"
            seen.add(key)


@property_settings
@given(pages())
def test_output_rows_are_in_order_of_first_appearance(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    for rows_in, rows_out in bucket_pairs(page, out):
        firsts = [min(m) for m in claims(rows_in, rows_out, grouped)]
        assert firsts == sorted(firsts)


@property_settings
@given(pages())
def test_page_and_bucket_fields_are_untouched(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, _ = merged(page, grouped)
    assert list(out) == list(page)
    assert {k: v for k, v in out.items() if k != "data"} == {k: v for k, v in page.items() if k != "data"}
    for b_in, b_out in zip(page["data"], out["data"], strict=True):
        assert list(b_out.items())[:-1] == list(b_in.items())[:-1]  # all but results, in order
        assert list(b_out)[-1] == "results"


@property_settings
@given(pages())
def test_return_value_is_rows_in_minus_rows_out(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    out, count = merged(page, grouped)
    rows_in = sum(len(b["results"]) for b in page["data"])
    rows_out = sum(len(b["results"]) for b in out["data"])
    assert count == rows_in - rows_out


# Not shrunk: the search for a smaller failing page is slow, and the concrete test
# test_an_empty_grouped_merges_not_even_rows_alike_but_for_numbers is the minimal case.
@settings(property_settings, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(pages())
def test_nothing_changes_when_nothing_is_grouped_by_name(case: tuple[dict[str, Any], set[str]]) -> None:
    page, _ = case
    out, count = merged(page, set())
    assert count == 0
    assert orjson.dumps(out) == orjson.dumps(page)


@property_settings
@given(pages())
def test_merging_does_not_change_the_input_rows(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    rows = [r for b in page["data"] for r in b["results"]]
    before = copy.deepcopy(rows)
    merge_by_name(page, grouped, NAMES)
    assert orjson.dumps(rows) == orjson.dumps(before)


def test_generated_pages_do_merge_rows() -> None:
    """The strategy makes merges happen (a guard on the properties above)."""
    total = 0

    @examples_of(60)
    @given(pages())
    def count(case: tuple[dict[str, Any], set[str]]) -> None:
        nonlocal total
        total += merged(*case)[1]

    count()
    assert total > 0


# Merge examples -------------------------------------------------------------------------------


def costs_row_of(api_key_id: str | None, value: float | None, currency: str = "usd", **more: Any) -> dict[str, Any]:
    row = {"object": "organization.costs.result", "amount": {"value": value, "currency": currency},
           "line_item": None, "project_id": None, "api_key_id": api_key_id, "quantity": None, "quantity_unit": None}
    row.update(more)
    return row


def page_of(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "data": [{"object": "bucket", "start_time": 1730419200, "end_time": 1730505600,
                                        "results": list(rows)}],
            "has_more": True, "next_page": "page_AAAA="}


def amended(page: dict[str, Any]) -> dict[str, Any]:
    result = amend_json(orjson.dumps(page), NAMES)
    assert result is not None
    return orjson.loads(result.body)


def results(page: dict[str, Any]) -> list[dict[str, Any]]:
    return page["data"][0]["results"]


def test_two_checkout_keys_are_one_row_with_the_amounts_summed() -> None:
    page = amended(page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_srch", 1.0),
                           costs_row_of("key_ck2", 0.5)))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 1
    checkout, search = results(page)
    assert checkout == {
        "object": "organization.costs.result", "amount": {"value": 0.75, "currency": "usd"}, "line_item": None,
        "project_id": None, "project_name": None, "api_key_id": None, "api_key_ids": ["key_ck1", "key_ck2"],
        "api_key_name": "checkout", "api_key_redacted_value": None, "quantity": None, "quantity_unit": None}
    assert list(checkout) == ["object", "amount", "line_item", "project_id", "project_name", "api_key_id",
                              "api_key_ids", "api_key_name", "api_key_redacted_value", "quantity", "quantity_unit"]
    assert search["api_key_ids"] == ["key_srch"] and search["amount"]["value"] == 1.0
    assert page["has_more"] is True and page["next_page"] == "page_AAAA="


def test_a_deleted_key_and_its_successor_are_one_row_telling_only_what_both_share() -> None:
    names = Names.build(discovered=[
        Learned("api_key_id", "key_old", "checkout", redacted_value="sk-...old1", owner_name="Ada"),
        Learned("api_key_id", "key_new", "checkout", redacted_value="sk-...new2", owner_name="Ada")],
        listed_keys={"openai": {"key_new"}})
    result = amend_json(orjson.dumps(page_of(costs_row_of("key_old", 0.25), costs_row_of("key_new", 0.5))), names)
    assert result is not None
    page = orjson.loads(result.body)
    old, new = results(page)
    assert (old["api_key_deleted"], "api_key_deleted" in new) == (True, False)
    assert merge_by_name(page, {"api_key_id"}, names) == 1
    [row] = results(page)
    assert row["api_key_ids"] == ["key_old", "key_new"] and row["amount"]["value"] == 0.75
    assert (row["api_key_owner_name"], row["api_key_redacted_value"], row["api_key_deleted"]) == ("Ada", None, None)


def test_three_keys_of_one_name_are_listed_in_first_seen_order() -> None:
    page = page_of(costs_row_of("key_ck3", 0.5), costs_row_of("key_ck1", 0.25),
                   costs_row_of("key_ck3", 0.125), costs_row_of("key_ck2", 1.0))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 3
    [row] = results(page)
    assert row["api_key_ids"] == ["key_ck3", "key_ck1", "key_ck2"]
    assert row["api_key_id"] is None
    assert row["amount"]["value"] == ((0.5 + 0.25) + 0.125) + 1.0


def test_rows_in_different_currencies_are_not_merged() -> None:
    page = page_of(costs_row_of("key_ck1", 0.25, "usd"), costs_row_of("key_ck2", 0.5, "eur"))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0
    assert [(r["api_key_ids"], r["api_key_id"], r["amount"]) for r in results(page)] == [
        (["key_ck1"], "key_ck1", {"value": 0.25, "currency": "usd"}),
        (["key_ck2"], "key_ck2", {"value": 0.5, "currency": "eur"})]


def test_a_null_amount_is_not_merged_with_a_number() -> None:
    page = page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_ck2", None))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0
    assert [r["amount"]["value"] for r in results(page)] == [0.25, None]


def test_an_unknown_id_twice_stays_two_rows() -> None:
    page = amended(page_of(costs_row_of("key_gone1", 0.25), costs_row_of("key_gone1", 0.5)))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0
    assert [(r["api_key_id"], r["api_key_ids"], r["api_key_name"], r["amount"]["value"]) for r in results(page)] == [
        ("key_gone1", ["key_gone1"], "unknown", 0.25), ("key_gone1", ["key_gone1"], "unknown", 0.5)]


def test_two_unknown_ids_are_not_merged_with_each_other() -> None:
    page = page_of(costs_row_of("key_gone1", 0.25), costs_row_of("key_gone2", 0.5))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0
    assert len(results(page)) == 2


def test_null_ids_merge_with_each_other_into_an_empty_list() -> None:
    page = amended(page_of(costs_row_of(None, 0.25), costs_row_of("key_ck1", 2.0), costs_row_of(None, 0.5)))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 1
    nulls, ck1 = results(page)
    assert (nulls["api_key_id"], nulls["api_key_ids"], nulls["api_key_name"], nulls["amount"]["value"]) == (
        None, [], None, 0.75)
    assert ck1["api_key_ids"] == ["key_ck1"]


def test_rows_without_the_grouped_id_field_are_never_merged_and_get_no_id_list() -> None:
    # code_interpreter_sessions cannot be grouped by key: its rows have no api_key_id.
    sessions = {"object": "organization.usage.code_interpreter_sessions.result", "num_sessions": 1,
                "project_id": None}
    page = page_of(dict(sessions), dict(sessions), costs_row_of("key_ck1", 0.25), costs_row_of("key_ck2", 0.5))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 1
    first, second, checkout = results(page)
    assert first == sessions and second == sessions  # as they were: no api_key_ids, not summed
    assert checkout["api_key_ids"] == ["key_ck1", "key_ck2"]


def test_a_row_lacking_one_of_two_grouped_fields_stays_alone() -> None:
    # Costs rows have no user_id: grouped by key and user name, none of them may merge.
    page = page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_ck2", 0.5))
    assert merge_by_name(page, {"api_key_id", "user_id"}, NAMES) == 0
    assert [(r["api_key_ids"], "user_ids" in r) for r in results(page)] == [(["key_ck1"], False),
                                                                            (["key_ck2"], False)]


def test_an_id_list_of_the_upstreams_that_is_not_a_list_keeps_its_row_alone() -> None:
    page = page_of(costs_row_of("key_ck1", 0.25, api_key_ids=5), costs_row_of("key_ck2", 0.5, api_key_ids=5))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0
    assert [r["api_key_ids"] for r in results(page)] == [5, 5]


def test_an_empty_grouped_merges_not_even_rows_alike_but_for_numbers() -> None:
    page = page_of(usage_row_of(None, None, 10), usage_row_of(None, None, 20))
    before = copy.deepcopy(page)
    assert merge_by_name(page, set(), NAMES) == 0
    assert page == before


def test_grouping_by_id_groups_nothing_by_name_and_merges_nothing() -> None:
    grouped = names_grouped_by(b"group_by=api_key_id&group_by[]=project_id")
    assert grouped == frozenset()
    page = amended(page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_ck2", 0.5)))
    before = copy.deepcopy(page)
    assert merge_by_name(page, grouped, NAMES) == 0
    assert page == before
    assert "api_key_ids" not in results(page)[0]


def usage_row_of(api_key_id: str | None, project_id: str | None, tokens: int, user_id: str | None = None,
                 model: str | None = "gpt-4o") -> dict[str, Any]:
    return {"object": "organization.usage.completions.result", "input_tokens": tokens, "output_tokens": 2 * tokens,
            "num_model_requests": 1, "project_id": project_id, "user_id": user_id, "api_key_id": api_key_id,
            "model": model, "batch": False}


def test_grouping_by_two_names_at_once() -> None:
    page = amended(page_of(usage_row_of("key_ck1", "proj_w1", 10), usage_row_of("key_ck2", "proj_w2", 20),
                           usage_row_of("key_ck1", "proj_m", 40), usage_row_of("key_ck3", "proj_w1", 80)))
    assert merge_by_name(page, {"api_key_id", "project_id"}, NAMES) == 2
    web, mobile = results(page)
    assert (web["api_key_ids"], web["project_ids"], web["input_tokens"], web["output_tokens"]) == (
        ["key_ck1", "key_ck2", "key_ck3"], ["proj_w1", "proj_w2"], 110, 220)
    assert web["api_key_id"] is None and web["project_id"] is None
    assert (web["api_key_name"], web["project_name"]) == ("checkout", "web")
    assert (mobile["api_key_ids"], mobile["project_ids"], mobile["project_id"], mobile["input_tokens"]) == (
        ["key_ck1"], ["proj_m"], "proj_m", 40)


def test_grouping_by_key_name_keeps_different_projects_apart() -> None:
    page = page_of(usage_row_of("key_ck1", "proj_w1", 10), usage_row_of("key_ck2", "proj_w2", 20))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0  # proj_w1 != proj_w2, though both are "web"


def test_integers_stay_integers() -> None:
    page = page_of(usage_row_of("key_ck1", None, 10), usage_row_of("key_ck2", None, 20))
    merge_by_name(page, {"api_key_id"}, NAMES)
    [row] = results(page)
    assert type(row["input_tokens"]) is int and row["input_tokens"] == 30
    assert type(row["num_model_requests"]) is int and row["num_model_requests"] == 2


def test_a_single_id_row_gets_its_list_and_keeps_its_id() -> None:
    page = amended(page_of(usage_row_of("key_ck1", None, 10)))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 0
    [row] = results(page)
    assert row["api_key_id"] == "key_ck1" and row["api_key_ids"] == ["key_ck1"]
    keys = list(row)
    assert keys[keys.index("api_key_id") + 1] == "api_key_ids"
    assert row["api_key_redacted_value"] == "sk-proj-...aaaa"


def test_the_same_id_twice_keeps_the_id_and_its_extras() -> None:
    page = amended(page_of(usage_row_of("key_ck1", None, 10, model="gpt-4o"),
                           usage_row_of("key_ck1", None, 5, model="gpt-4o")))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 1
    [row] = results(page)
    assert (row["api_key_id"], row["api_key_ids"], row["api_key_redacted_value"], row["input_tokens"]) == (
        "key_ck1", ["key_ck1"], "sk-proj-...aaaa", 15)


def test_user_emails_that_disagree_become_null() -> None:
    page = amended(page_of(usage_row_of(None, None, 1, user_id="user_a1"), usage_row_of(None, None, 2, user_id="user_a2")))
    assert merge_by_name(page, {"user_id"}, NAMES) == 1
    [row] = results(page)
    assert (row["user_id"], row["user_ids"], row["user_name"], row["user_email"]) == (
        None, ["user_a1", "user_a2"], "alice", None)


@pytest.mark.parametrize("order", [("key_ck1", "key_ck3"), ("key_ck3", "key_ck1")])
def test_a_redacted_value_only_one_merged_key_has_becomes_null_in_either_order(order: tuple[str, str]) -> None:
    # key_ck1 was discovered (it has a redacted value); key_ck3 is in the alias file only.
    page = amended(page_of(costs_row_of(order[0], 0.25), costs_row_of(order[1], 0.5)))
    assert merge_by_name(page, {"api_key_id"}, NAMES) == 1
    [row] = results(page)
    assert "api_key_redacted_value" in row and row["api_key_redacted_value"] is None, row


def test_rows_without_the_only_grouped_id_field_stay_as_they_are() -> None:
    # Costs rows have no user_id; a caller may still ask to group them by user_name.
    page = page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_ck1", 0.5))
    before = copy.deepcopy(page)
    assert merge_by_name(page, {"user_id"}, NAMES) == 0
    assert page == before


# regroup --------------------------------------------------------------------------------------


def strict_loads(body: bytes) -> Any:
    """Parse as strict JSON: UTF-8, no NaN or Infinity; numbers with a fraction as the
    decimals they are written as."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(body.decode("utf-8"), parse_constant=refuse, parse_float=Decimal)


@property_settings
@given(pages(), st.booleans())
def test_regroup_is_merge_by_name_of_the_parsed_body(case: tuple[dict[str, Any], set[str]], pretty: bool) -> None:
    page, grouped = case
    body = json.dumps(page, indent=2 if pretty else None).encode()
    expected, _ = merged(page, grouped)
    out = regroup(body, grouped, NAMES, False)
    assert out is not None
    assert_same(strict_loads(out), as_decimals(expected), "page")
    assert b"\n" not in out  # compact


@property_settings
@given(pages())
def test_regroup_with_replace_is_merge_then_replace_ids(case: tuple[dict[str, Any], set[str]]) -> None:
    page, grouped = case
    expected, _ = merged(page, grouped)
    replace_ids(expected, NAMES)
    out = regroup(orjson.dumps(page), grouped, NAMES, True)
    assert out is not None
    assert_same(strict_loads(out), as_decimals(expected), "page")


def test_regroup_keeps_an_integer_beyond_64_bits_exact() -> None:
    big = 123456789012345678901234567890
    body = json.dumps(page_of(usage_row_of("key_ck1", None, big), usage_row_of("key_ck2", None, 1))).encode()
    out = regroup(body, {"api_key_id"}, NAMES, False)
    assert out is not None
    [row] = results(strict_loads(out))
    assert type(row["input_tokens"]) is int and row["input_tokens"] == big + 1, out


def test_regroup_writes_a_sum_beyond_64_bits() -> None:
    # Each count fits in 64 bits (orjson reads it); their sum does not.
    half = 2**63
    body = json.dumps(page_of(usage_row_of("key_ck1", None, half), usage_row_of("key_ck2", None, half))).encode()
    out = regroup(body, {"api_key_id"}, NAMES, False)
    assert out is not None
    [row] = results(strict_loads(out))
    assert row["input_tokens"] == 2**64


def test_regroup_handles_a_lone_surrogate_escape() -> None:
    # Valid JSON the amender writes itself for a name like "a\ud800b" in a JSON alias file.
    body = (b'{"object":"page","data":[{"object":"bucket","results":['
            b'{"api_key_id":"key_ck1","api_key_name":"a\\ud800b","n":1},'
            b'{"api_key_id":"key_ck2","api_key_name":"a\\ud800b","n":2}]}]}')
    out = regroup(body, {"api_key_id"}, NAMES, False)
    assert out is not None
    expected = json.loads(body)
    merge_by_name(expected, {"api_key_id"}, NAMES)
    assert strict_loads(out) == expected


def test_regroup_never_writes_infinity() -> None:
    # 1e400 is valid JSON (the amender accepts it) but no double holds it.
    body = json.dumps(page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_ck2", 0.5))).encode()
    body = body.replace(b"0.25", b"1e400")
    out = regroup(body, {"api_key_id"}, NAMES, False)
    assert out is None or strict_loads(out) is not None, out


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"a":1,}', b"\xff\xfe", b'{"x":NaN}', b"[Infinity]"])
def test_regroup_returns_none_for_invalid_json(body: bytes) -> None:
    assert regroup(body, {"api_key_id"}, NAMES, True) is None


def test_regroup_without_grouping_or_replacing_keeps_the_value() -> None:
    page = page_of(costs_row_of("key_ck1", 0.25), costs_row_of("key_ck2", 0.5))
    out = regroup(json.dumps(page, indent=4).encode(), (), NAMES, False)
    assert out is not None and json.loads(out) == page


# replace_ids ----------------------------------------------------------------------------------


def test_replace_ids_writes_names_and_keeps_ids_right_after() -> None:
    row = {"api_key_id": "key_ck1", "api_key_name": "checkout", "project_id": "proj_m", "user_id": "user_b", "n": 1}
    replace_ids(row, NAMES)
    assert list(row.items()) == [
        ("api_key_id", "checkout"), ("api_key_id_original", "key_ck1"), ("api_key_name", "checkout"),
        ("project_id", "mobile"), ("project_id_original", "proj_m"),
        ("user_id", "bob"), ("user_id_original", "user_b"), ("n", 1)]


def test_replace_ids_leaves_unknown_and_null_ids_alone() -> None:
    row = {"api_key_id": "key_gone1", "project_id": None, "user_id": "user_a1"}
    replace_ids(row, NAMES)
    assert list(row.items()) == [("api_key_id", "key_gone1"), ("project_id", None),
                                 ("user_id", "alice"), ("user_id_original", "user_a1")]
    alone = {"api_key_id": "key_gone1", "project_id": None}
    replace_ids(alone, NAMES)
    assert alone == {"api_key_id": "key_gone1", "project_id": None}


def test_replace_ids_reaches_nested_objects() -> None:
    page = page_of(costs_row_of("key_ck2", 0.5, project_id="proj_w1"),
                   {"nested": [{"deeper": {"api_key_id": "key_srch"}}], "api_key_id": "key_gone2"})
    replace_ids(page, NAMES)
    first, second = results(page)
    assert (first["api_key_id"], first["api_key_id_original"], first["project_id"], first["project_id_original"]) == (
        "checkout", "key_ck2", "web", "proj_w1")
    assert second["nested"][0]["deeper"] == {"api_key_id": "search", "api_key_id_original": "key_srch"}
    assert second["api_key_id"] == "key_gone2" and "api_key_id_original" not in second
    assert page["data"][0]["start_time"] == 1730419200 and page["next_page"] == "page_AAAA="


def test_replace_ids_leaves_a_field_whose_original_is_already_there() -> None:
    row = {"api_key_id": "key_ck1", "api_key_id_original": "key_older", "project_id": "proj_m"}
    replace_ids(row, NAMES)
    assert list(row.items()) == [("api_key_id", "key_ck1"), ("api_key_id_original", "key_older"),
                                 ("project_id", "mobile"), ("project_id_original", "proj_m")]


def test_replace_ids_ignores_ids_in_other_fields_and_lists() -> None:
    row = {"owner_id": "key_ck1", "api_key_ids": ["key_ck1"], "api_key_id": None}
    replace_ids(row, NAMES)
    assert row == {"owner_id": "key_ck1", "api_key_ids": ["key_ck1"], "api_key_id": None}


# names_grouped_by -----------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    (b"group_by=api_key_name", {"api_key_id"}),
    (b"group_by[]=project_name&group_by[]=model", {"project_id"}),
    (b"group_by%5B%5D=user_name", {"user_id"}),
    (b"group_by=model,user_name,api_key_name", {"user_id", "api_key_id"}),
    (b"group_by=api_key%5Fname&group_by=project%5fn%61me", {"api_key_id", "project_id"}),
    (b"group_by=api_key_name&group_by=api_key_id", {"api_key_id"}),
    (b"group_by=api_key_id&group_by=project_id", set()),
    (b"api_key_names=checkout&project_name=web", set()),
    (b"", set()),
])
def test_names_grouped_by(query: bytes, expected: set[str]) -> None:
    assert names_grouped_by(query) == frozenset(expected)


# rewrite_name_filters -------------------------------------------------------------------------

IDS_BY_NAME = NAMES.ids_by_name
CHECKOUT = IDS_BY_NAME["api_key_id"]["checkout"]
FILTERS = {"api_key_names": ("api_key_ids", "api_key_id"), "project_names": ("project_ids", "project_id"),
           "user_names": ("user_ids", "user_id")}
IDS_PARAMS = {ids for ids, _ in FILTERS.values()}


def id_filters(query: bytes) -> dict[str, list[str]]:
    """Every id sent per id filter, in order, as the upstream reads the query."""
    found: dict[str, list[str]] = {p: [] for p in IDS_PARAMS}
    for key, value in parse_qsl(query.decode("ascii"), keep_blank_values=True):
        base = key.removesuffix("[]")
        assert base not in FILTERS, f"a name filter went upstream: {key}"
        if base in found:
            found[base] += value.split(",")
    return found


def test_repeated_bracket_spelling_becomes_ids() -> None:
    out = rewrite_name_filters(b"api_key_names[]=checkout&api_key_names[]=search", IDS_BY_NAME)
    assert out == b"&".join(b"api_key_ids[]=" + i.encode() for i in (*CHECKOUT, "key_srch"))


def test_repeated_plain_spelling_becomes_ids() -> None:
    out = rewrite_name_filters(b"api_key_names=checkout&api_key_names=search", IDS_BY_NAME)
    assert out == b"&".join(b"api_key_ids=" + i.encode() for i in (*CHECKOUT, "key_srch"))


def test_comma_spelling_stays_one_part() -> None:
    out = rewrite_name_filters(b"api_key_names=checkout,search", IDS_BY_NAME)
    assert out == b"api_key_ids=" + ",".join((*CHECKOUT, "key_srch")).encode()


def test_encoded_key_keeps_its_encoded_brackets() -> None:
    out = rewrite_name_filters(b"limit=3&api_key_names%5B%5D=search&page=x%3D", IDS_BY_NAME)
    assert out == b"limit=3&api_key_ids%5B%5D=key_srch&page=x%3D"
    out = rewrite_name_filters(b"api_key_n%61mes%5b%5d=search", IDS_BY_NAME)
    assert id_filters(out)["api_key_ids"] == ["key_srch"]


def test_encoded_names_are_decoded() -> None:
    for spelled in (b"ops+team", b"ops%20team", quote("équipe").encode(), quote_plus("équipe").encode()):
        out = rewrite_name_filters(b"api_key_names=" + spelled, IDS_BY_NAME)
        name = unquote_to_bytes(spelled.replace(b"+", b" ")).decode()
        assert id_filters(out)["api_key_ids"] == list(IDS_BY_NAME["api_key_id"][name])


def test_a_name_with_several_ids_sends_them_all() -> None:
    out = rewrite_name_filters(b"project_names=web", IDS_BY_NAME)
    assert out == b"project_ids=proj_w1&project_ids=proj_w2"


def test_project_and_user_names() -> None:
    out = rewrite_name_filters(b"project_names[]=mobile&user_names=alice,bob&start_time=1", IDS_BY_NAME)
    assert out == b"project_ids[]=proj_m&user_ids=user_a1,user_a2,user_a3,user_b&start_time=1"
    assert set(id_filters(out)["user_ids"]) == {*IDS_BY_NAME["user_id"]["alice"], "user_b"}


@pytest.mark.parametrize("caller", [b"api_key_ids=key_ck2", b"api_key_ids[]=key_ck2", b"api_key_ids%5B%5D=key_ck2",
                                    b"api_key_ids=key_ck2,key_other", b"api_key_ids[]=key_other&api_key_ids[]=key_ck2"])
@pytest.mark.parametrize("names_part", [b"api_key_names=checkout", b"api_key_names[]=checkout",
                                        b"api_key_names=checkout,search", b"api_key_names%5B%5D=checkout"])
@pytest.mark.parametrize("caller_first", [True, False])
def test_caller_ids_are_kept_and_no_id_is_sent_twice(caller: bytes, names_part: bytes, caller_first: bool) -> None:
    query = caller + b"&" + names_part if caller_first else names_part + b"&" + caller
    out = rewrite_name_filters(query, IDS_BY_NAME)
    sent = id_filters(out)["api_key_ids"]
    assert len(sent) == len(set(sent)), sent
    caller_ids = set(id_filters(caller)["api_key_ids"])
    named = set(CHECKOUT) | ({"key_srch"} if b"search" in names_part else set())
    assert set(sent) == caller_ids | named
    assert caller in out  # the caller's own part, byte for byte


def test_every_id_already_asked_for_drops_the_name_part() -> None:
    out = rewrite_name_filters(b"limit=1&api_key_names=search&api_key_ids=key_srch", IDS_BY_NAME)
    assert out == b"limit=1&api_key_ids=key_srch"


@pytest.mark.parametrize(("query", "param", "name"), [
    (b"api_key_names=nobody", "api_key_names", "nobody"),
    (b"api_key_names=checkout,nobody", "api_key_names", "nobody"),
    (b"limit=2&project_names[]=web&project_names[]=no%20such", "project_names", "no such"),
    (b"user_names%5B%5D=carol", "user_names", "carol"),
    (b"user_names=", "user_names", ""),
    (b"api_key_names=web", "api_key_names", "web"),  # a project's name is not a key's
])
def test_an_unknown_name_raises(query: bytes, param: str, name: str) -> None:
    with pytest.raises(UnknownName) as raised:
        rewrite_name_filters(query, IDS_BY_NAME)
    assert (raised.value.param, raised.value.name) == (param, name)


@pytest.mark.parametrize("query", [b"", b"limit=7", b"group_by=api_key_name&start_time=1",
                                   b"team_names=x&api_key_names_old=1", b"page=a%5Fnames", b"api_key_ids=key_ck1"])
def test_a_query_without_name_filters_is_returned_as_is(query: bytes) -> None:
    copy_of = bytes(bytearray(query))
    assert rewrite_name_filters(copy_of, IDS_BY_NAME) is copy_of


def test_other_params_keep_their_bytes_and_order() -> None:
    query = b"start_time=1730419200&page=cGFn%3D%3D&api_key_names=search&group_by%5B%5D=api_key_name&x=a+b%2Bc"
    out = rewrite_name_filters(query, IDS_BY_NAME)
    assert out == b"start_time=1730419200&page=cGFn%3D%3D&api_key_ids=key_srch&group_by%5B%5D=api_key_name&x=a+b%2Bc"


NAME_POOL = {"api_key_names": ["checkout", "search", "ops team", "équipe"], "project_names": ["web", "mobile"],
             "user_names": ["alice", "bob"]}
CALLER_POOL = {"api_key_ids": ["key_ck1", "key_srch", "key_other", "key_ops2"], "project_ids": ["proj_w2", "proj_x"],
               "user_ids": ["user_b", "user_a3", "user_x"]}
OTHER_PARTS = [b"start_time=1730419200", b"limit=7", b"group_by=api_key_name", b"group_by%5B%5D=project_id",
               b"page=cGFnZQ%3D%3D", b"models=gpt-4o,gpt-4o-mini", b"bucket_width=1d", b"team_names=x",
               b"api_key_names_old=1", b"end_time=", b"flag", b"q=a+b"]
KEY_SPELLINGS = [b"", b"[]", b"%5B%5D", b"%5b%5d"]


@st.composite
def name_queries(draw: st.DrawFn) -> tuple[bytes, list[bytes], dict[str, set[str]]]:
    """A query mixing name filters, caller id filters and other parts; the parts that must
    stay as they are, in order; and the ids each id filter must hold."""
    parts: list[tuple[str, bytes]] = []
    expected: dict[str, set[str]] = {p: set() for p in IDS_PARAMS}
    for ids_param, pool in CALLER_POOL.items():
        ids = draw(st.lists(st.sampled_from(pool), unique=True))
        expected[ids_param] |= set(ids)
        while ids:
            take = draw(st.integers(1, len(ids)))
            key = ids_param.encode() + draw(st.sampled_from(KEY_SPELLINGS))
            parts.append(("keep", key + b"=" + ",".join(ids[:take]).encode()))
            ids = ids[take:]
    for _ in range(draw(st.integers(0, 4))):
        param = draw(st.sampled_from(sorted(NAME_POOL)))
        names = draw(st.lists(st.sampled_from(NAME_POOL[param]), min_size=1, max_size=3))
        ids_param, id_field = FILTERS[param]
        for name in names:
            expected[ids_param] |= set(IDS_BY_NAME[id_field][name])
        encode = draw(st.sampled_from([quote, quote_plus]))
        key = param.encode() + draw(st.sampled_from(KEY_SPELLINGS))
        parts.append(("name", key + b"=" + b",".join(encode(n).encode() for n in names)))
    for part in draw(st.lists(st.sampled_from(OTHER_PARTS), max_size=4)):
        parts.append(("keep", part))
    parts = draw(st.permutations(parts))
    query = b"&".join(p for _, p in parts)
    return query, [p for kind, p in parts if kind == "keep"], expected


def is_subsequence(needles: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


@property_settings
@given(name_queries())
def test_name_filters_become_exactly_the_named_and_caller_ids(
        case: tuple[bytes, list[bytes], dict[str, set[str]]]) -> None:
    query, kept, expected = case
    out = rewrite_name_filters(query, IDS_BY_NAME)
    if len(kept) == len(query.split(b"&")) or not query:
        assert out is query
    sent = id_filters(out)  # also: no name filter left
    for ids_param, ids in sent.items():
        assert len(ids) == len(set(ids)), f"{ids_param} repeats an id: {ids}"
        assert set(ids) == expected[ids_param], ids_param
    out_parts = out.split(b"&") if out else []
    assert is_subsequence(kept, out_parts), (kept, out_parts)
    # Anything not kept from the input is a new id filter part.
    kept_left = list(kept)
    for part in out_parts:
        if kept_left and part == kept_left[0]:
            kept_left.pop(0)
            continue
        key = unquote_to_bytes(part.partition(b"=")[0]).decode().removesuffix("[]")
        assert key in IDS_PARAMS, part


# --- Anthropic: its fields, and amounts as decimal strings of cents --------------------------

ANTHROPIC_NAMES = Names.build({"workspaces": {"wrkspc_a": "Billing", "wrkspc_b": "Billing", "wrkspc_c": "Research"},
                               "api_keys": {"apikey_1": "batch", "apikey_2": "batch"}})


def cost_row(workspace: str | None, amount: Any, currency: str = "USD") -> dict[str, Any]:
    return {"amount": amount, "currency": currency, "description": None, "workspace_id": workspace,
            "workspace_name": ANTHROPIC_NAMES.by_field["workspace_id"].get(workspace, None if workspace is None
                                                                           else "unknown")}


@property_settings
@given(st.lists(st.tuples(st.sampled_from(["wrkspc_a", "wrkspc_b", "wrkspc_c", "wrkspc_x", None]),
                          st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False)),
                max_size=12))
def test_cost_amounts_are_summed_exactly_and_stay_decimal_strings(rows: list[tuple[str | None, Decimal]]) -> None:
    page = [cost_row(workspace, format(amount, "f")) for workspace, amount in rows]
    merged = merge_rows(copy.deepcopy(page), ["workspace_id"], ANTHROPIC_NAMES, ANTHROPIC_FIELDS)
    total = {}
    for workspace, amount in rows:
        name = ("named", ANTHROPIC_NAMES.by_field["workspace_id"][workspace]) if workspace in (
            ANTHROPIC_NAMES.by_field["workspace_id"]) else ("alone", workspace, id(amount))
        total[name] = total.get(name, Decimal(0)) + amount
    assert sum(Decimal(row["amount"]) for row in merged) == sum((amount for _, amount in rows), Decimal(0))
    for row in merged:
        assert isinstance(row["amount"], str) and "e" not in row["amount"].lower()
        if row["workspace_name"] in ("Billing", "Research"):
            assert Decimal(row["amount"]) == total[("named", row["workspace_name"])]
    # One row per name (the Default Workspace's null too); an unknown id never merges.
    assert sum(1 for row in merged if row["workspace_name"] == "Billing") <= 1
    assert sum(1 for row in merged if row["workspace_id"] == "wrkspc_x") == sum(1 for w, _ in rows if w == "wrkspc_x")


def test_amounts_are_summed_as_written_not_as_floats() -> None:
    merged = merge_rows([cost_row("wrkspc_a", "0.1"), cost_row("wrkspc_b", "0.2"), cost_row("wrkspc_a", "1520.4417")],
                        ["workspace_id"], ANTHROPIC_NAMES, ANTHROPIC_FIELDS)
    assert [(row["amount"], row["workspace_ids"]) for row in merged] == [("1520.7417", ["wrkspc_a", "wrkspc_b"])]


@pytest.mark.parametrize("odd", ["amount", "1e3", "NaN", "", "12.", "1" * 101])
def test_an_amount_that_is_no_plain_decimal_merges_only_with_its_equal(odd: str) -> None:
    rows = [cost_row("wrkspc_a", odd), cost_row("wrkspc_b", "5"), cost_row("wrkspc_b", odd)]
    merged = merge_rows(copy.deepcopy(rows), ["workspace_id"], ANTHROPIC_NAMES, ANTHROPIC_FIELDS)
    assert [(row["amount"], row["workspace_ids"]) for row in merged] == [
        (odd, ["wrkspc_a", "wrkspc_b"]), ("5", ["wrkspc_b"])]


def test_currencies_are_never_added_together() -> None:
    merged = merge_rows([cost_row("wrkspc_a", "1", "USD"), cost_row("wrkspc_b", "2", "EUR")],
                        ["workspace_id"], ANTHROPIC_NAMES, ANTHROPIC_FIELDS)
    assert [row["amount"] for row in merged] == ["1", "2"]


def test_openai_s_grouping_reads_no_decimal_strings() -> None:
    rows = [{"api_key_id": "key_ck1", "amount": "1.5"}, {"api_key_id": "key_ck2", "amount": "2.5"}]
    merged = merge_rows(copy.deepcopy(rows), ["api_key_id"], NAMES)
    assert [row["amount"] for row in merged] == ["1.5", "2.5"]  # as before: unequal strings stay apart
