"""Tests for orgproxy.query: group_by names are rewritten to ids, all else is left alone."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.providers import ANTHROPIC
from orgproxy.query import (
    GROUP_BY_NAME_TO_ID,
    UnknownName,
    bracket_arrays,
    ids_grouped_by,
    name_filters,
    names_grouped_by,
    rewrite_group_by,
    rewrite_name_filters,
)
from tests.support.properties import property_settings as examples_of

NAMES = list(GROUP_BY_NAME_TO_ID)
IDS = list(GROUP_BY_NAME_TO_ID.values())
GROUP_BY_KEYS = {"group_by", "group_by[]"}

# No example database: running the tests must not leave files in the working tree.
# No deadline: timing never decides pass or fail (a loaded machine is slow, not wrong).
property_settings = examples_of(300)


# Examples ---------------------------------------------------------------------------------


def test_mapping_is_the_three_names_to_their_ids() -> None:
    assert dict(GROUP_BY_NAME_TO_ID) == {
        "api_key_name": "api_key_id",
        "project_name": "project_id",
        "user_name": "user_id",
    }


def test_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        GROUP_BY_NAME_TO_ID["model_name"] = "model"  # type: ignore[index]


def test_plain_spelling_is_rewritten() -> None:
    assert rewrite_group_by(b"group_by=api_key_name") == b"group_by=api_key_id"


def test_repeated_plain_spelling_is_rewritten() -> None:
    assert (
        rewrite_group_by(b"group_by=project_name&group_by=model")
        == b"group_by=project_id&group_by=model"
    )


def test_bracket_spelling_is_rewritten() -> None:
    assert (
        rewrite_group_by(b"group_by[]=user_name&group_by[]=model")
        == b"group_by[]=user_id&group_by[]=model"
    )


def test_comma_spelling_is_rewritten_and_keeps_literal_commas() -> None:
    assert (
        rewrite_group_by(b"group_by=model,api_key_name,project_name")
        == b"group_by=model,api_key_id,project_id"
    )


def test_mixed_spellings_are_all_rewritten() -> None:
    query = b"group_by[]=api_key_name&group_by=model,project_name&group_by=user_name"
    assert rewrite_group_by(query) == (
        b"group_by[]=api_key_id&group_by=model,project_id&group_by=user_id"
    )


def test_encoded_bracket_key_is_recognised_and_its_bytes_kept() -> None:
    assert (
        rewrite_group_by(b"group_by%5B%5D=api_key_name&group_by%5b%5d=user_name")
        == b"group_by%5B%5D=api_key_id&group_by%5b%5d=user_id"
    )


def test_encoded_plain_key_is_recognised_and_its_bytes_kept() -> None:
    assert rewrite_group_by(b"group%5Fby=project_name") == b"group%5Fby=project_id"


def test_encoded_value_is_rewritten() -> None:
    assert rewrite_group_by(b"group_by=api%5Fkey%5Fname") == b"group_by=api_key_id"


def test_fully_encoded_value_is_rewritten() -> None:
    value = "".join(f"%{byte:02x}" for byte in b"user_name").encode()
    assert rewrite_group_by(b"group_by=" + value) == b"group_by=user_id"


def test_encoded_comma_splits_values_and_comes_back_literal() -> None:
    assert rewrite_group_by(b"group_by=api_key_name%2Cmodel") == b"group_by=api_key_id,model"


def test_other_values_of_a_rewritten_part_are_reencoded_equivalently() -> None:
    out = rewrite_group_by(b"group_by=api_key_name,a+b,%E5%90%8D")
    assert out == b"group_by=api_key_id,a%20b,%E5%90%8D"
    assert parse_qsl(out.decode()) == [("group_by", "api_key_id,a b,名")]


def test_name_then_its_id_in_separate_parts_is_deduplicated() -> None:
    assert rewrite_group_by(b"group_by=api_key_name&group_by=api_key_id") == b"group_by=api_key_id"


def test_id_then_its_name_keeps_the_first_occurrence() -> None:
    assert (
        rewrite_group_by(b"group_by[]=api_key_id&group_by[]=api_key_name&start_time=1")
        == b"group_by[]=api_key_id&start_time=1"
    )


def test_name_and_id_in_one_comma_value_are_deduplicated() -> None:
    assert (
        rewrite_group_by(b"group_by=api_key_name,model,api_key_id") == b"group_by=api_key_id,model"
    )


def test_deduplication_spans_spellings_and_removes_emptied_parts_with_their_ampersand() -> None:
    query = b"a=1&group_by[]=project_name&group_by=project_id,model&group_by=model&b=2"
    assert rewrite_group_by(query) == b"a=1&group_by[]=project_id&group_by=model&b=2"


def test_removing_a_leading_part_leaves_no_stray_ampersand() -> None:
    assert (
        rewrite_group_by(b"group_by=model&group_by=model,user_name")
        == b"group_by=model&group_by=user_id"
    )


def test_duplicates_without_any_rewrite_are_left_alone() -> None:
    query = b"group_by=model&group_by=model,api_key_id,api_key_id"
    assert rewrite_group_by(query) is query


def test_all_three_names_together_are_rewritten() -> None:
    assert (
        rewrite_group_by(b"group_by=api_key_name,project_name,user_name")
        == b"group_by=api_key_id,project_id,user_id"
    )


def test_query_without_group_by_is_returned_as_the_same_object() -> None:
    query = b"start_time=1730419200&end_time=1733011200&bucket_width=1d&limit=7"
    assert rewrite_group_by(query) is query


def test_query_with_names_outside_group_by_is_returned_as_the_same_object() -> None:
    query = b"project_name=api_key_name&api%5Fkey%5Fname=user_name&user_name"
    assert rewrite_group_by(query) is query


def test_group_by_of_ids_only_is_returned_as_the_same_object() -> None:
    query = b"group_by[]=api_key_id&group_by[]=project_id&group_by=user_id,model"
    assert rewrite_group_by(query) is query


def test_near_miss_values_are_returned_as_the_same_object() -> None:
    query = b"group_by=API_KEY_NAME&group_by=api_key_name+&group_by=api_key_names&group_by=my_name"
    assert rewrite_group_by(query) is query


def test_empty_query_is_returned_as_the_same_object() -> None:
    query = b""
    assert rewrite_group_by(query) is query


def test_page_cursor_with_equals_signs_is_kept_exactly() -> None:
    cursor = b"page=cGFnZV8xMjM0NQ==&after=YWJj%3D%3D"
    assert rewrite_group_by(cursor + b"&group_by=user_name") == cursor + b"&group_by=user_id"


def test_parts_order_is_preserved() -> None:
    query = b"z=1&group_by[]=api_key_name&a=2&api_key_ids[]=key_1&group_by[]=model&m=3"
    assert rewrite_group_by(query) == (
        b"z=1&group_by[]=api_key_id&a=2&api_key_ids[]=key_1&group_by[]=model&m=3"
    )


def test_everything_outside_rewritten_values_is_kept_byte_for_byte() -> None:
    untouched = (
        b"start_time=1730419200&&api_key_ids[]=key_abc&api_key_ids%5B%5D=key_def"
        b"&q=a+b%20c&unicode=\xe5\x90\x8d&bare&unknown=x=y&group_by=model"
    )
    assert rewrite_group_by(untouched + b"&group_by=project_name") == (
        untouched + b"&group_by=project_id"
    )


def test_bare_group_by_key_is_kept_as_an_empty_value() -> None:
    assert rewrite_group_by(b"group_by&group_by=user_name") == b"group_by&group_by=user_id"


def test_invalid_utf8_in_a_rewritten_part_survives_as_the_same_bytes() -> None:
    assert rewrite_group_by(b"group_by=user_name,%FF") == b"group_by=user_id,%FF"


# Properties -------------------------------------------------------------------------------

# Keys as clients spell them: every way a group_by key may arrive, and others besides.
GROUP_BY_KEY_SPELLINGS = [
    "group_by",
    "group_by[]",
    "group_by%5B%5D",
    "group_by%5b%5d",
    "group%5Fby",
    "%67roup_by%5B%5D",
]
OTHER_KEYS = [
    "start_time",
    "end_time",
    "page",
    "api_key_ids[]",
    "api_key_ids%5B%5D",
    "project_ids",
    "group_by_x",
    "groupby",
    "api_key_name",
    "user%5Fname",
]
# Values that look like names but are not, so that the slow path is exercised too.
OTHER_WORDS = ["model", "line_item", "batch", "my_name", "api_key_names", "API_KEY_NAME", "名前", "a b"]

# A small fixed alphabet: the characters that matter to query syntax, the letters of the
# names, and some non-ASCII.  (Not st.characters(): building its Unicode tables on a cold
# cache is slow enough to trip Hypothesis's health check on a fresh clone.)
safe_text = st.text(alphabet="abegmnruy_5DFdf%&=+,;#[]?/ \t\u00e9\u540d\U0001f600", max_size=8)


@st.composite
def encoded(draw: st.DrawFn, text: str) -> str:
    """``text`` in one of the spellings a client might use for a query value."""
    how = draw(st.sampled_from(["quote", "quote_plus", "every_byte", "raw"]))
    if how == "quote":
        return quote(text, safe="")
    if how == "quote_plus":
        return quote_plus(text, safe="")
    if how == "every_byte":
        return "".join(f"%{byte:02{draw(st.sampled_from('xX'))}}" for byte in text.encode())
    # Raw only when it would not change meaning; raw non-ASCII is sent as UTF-8 bytes.
    if any(c in text for c in "&=+%,#") or any(c.isspace() for c in text):
        return quote(text, safe="")
    return text


@st.composite
def other_part(draw: st.DrawFn) -> str:
    """One part that is not a group_by parameter."""
    kind = draw(st.sampled_from(["pair", "bare", "empty", "cursor"]))
    if kind == "empty":
        return ""
    if kind == "cursor":
        return draw(st.sampled_from(["page=cGFnZV8x==", "after=YWJj%3D%3D", "x=a=b"]))
    key = draw(st.one_of(st.sampled_from(OTHER_KEYS), safe_text.map(lambda t: quote_plus(t, safe=""))))
    assume(key and parse_qsl(key + "=", keep_blank_values=True)[0][0] not in GROUP_BY_KEYS)
    if kind == "bare":
        return key
    value = draw(st.one_of(st.sampled_from(NAMES + IDS + OTHER_WORDS), safe_text))
    return key + "=" + draw(encoded(value))


@st.composite
def group_by_part(draw: st.DrawFn, words: list[str]) -> str:
    """One group_by parameter in any spelling, with one or more comma-separated values."""
    key = draw(st.sampled_from(GROUP_BY_KEY_SPELLINGS))
    values = draw(st.lists(st.sampled_from(words), min_size=1, max_size=3))
    comma = draw(st.sampled_from([",", "%2C", "%2c"]))
    return key + "=" + comma.join(draw(encoded(value)) for value in values)


def query_of(words: list[str]) -> st.SearchStrategy[bytes]:
    parts = st.lists(st.one_of(other_part(), group_by_part(words)), max_size=8)
    return parts.map(lambda ps: "&".join(ps).encode())


queries_with_names = query_of(NAMES + IDS + OTHER_WORDS + [""])
queries_without_names = query_of(IDS + OTHER_WORDS + [""])


def pairs(query: bytes) -> list[tuple[str, str]]:
    return parse_qsl(query.decode(), keep_blank_values=True)


def group_by_values(query: bytes) -> list[str]:
    return [v for k, v in pairs(query) if k in GROUP_BY_KEYS for v in v.split(",")]


def non_group_by_pairs(query: bytes) -> list[tuple[str, str]]:
    return [(k, v) for k, v in pairs(query) if k not in GROUP_BY_KEYS]


def dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


@property_settings
@given(queries_without_names)
def test_queries_without_name_values_come_back_as_identical_bytes(query: bytes) -> None:
    out = rewrite_group_by(query)
    assert out == query
    assert out is query


@property_settings
@given(st.binary(max_size=40))
def test_arbitrary_bytes_without_name_values_come_back_as_identical_bytes(query: bytes) -> None:
    # latin-1 maps every byte to one character, so any input can be decoded for the check.
    decoded = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    assume(not any(k in GROUP_BY_KEYS and set(v.split(",")) & set(NAMES) for k, v in decoded))
    assert rewrite_group_by(query) is query


@property_settings
@given(queries_with_names)
def test_rewrite_maps_names_to_ids_dedupes_and_keeps_other_pairs_in_order(query: bytes) -> None:
    out = rewrite_group_by(query)
    before = group_by_values(query)
    after = group_by_values(out)

    assert non_group_by_pairs(out) == non_group_by_pairs(query)
    if set(before) & set(NAMES):
        assert after == dedupe([GROUP_BY_NAME_TO_ID.get(v, v) for v in before])
    else:
        assert out is query
    assert not set(after) & set(NAMES)


@property_settings
@given(queries_with_names)
def test_parts_that_are_not_group_by_keep_their_exact_bytes_and_order(query: bytes) -> None:
    def raw_others(q: bytes) -> list[bytes]:
        return [p for p in q.split(b"&") if not (pairs(p) and pairs(p)[0][0] in GROUP_BY_KEYS)]

    assert raw_others(rewrite_group_by(query)) == raw_others(query)


@property_settings
@given(st.one_of(queries_with_names, st.binary(max_size=40)))
def test_rewriting_is_idempotent(query: bytes) -> None:
    once = rewrite_group_by(query)
    assert rewrite_group_by(once) == once


# Anthropic: its names, its filters, arrays in brackets -----------------------------------

ARRAYS = ANTHROPIC.array_params


def test_anthropic_s_names_are_its_ids_and_openai_s_are_not() -> None:
    query = b"group_by=workspace_name,account_name&group_by[]=service_account_name&group_by[]=project_name"
    assert rewrite_group_by(query, ANTHROPIC_FIELDS) == (
        b"group_by=workspace_id,account_id&group_by[]=service_account_id&group_by[]=project_name")
    assert names_grouped_by(query, ANTHROPIC_FIELDS) == {"workspace_id", "account_id", "service_account_id"}
    assert rewrite_group_by(b"group_by=workspace_name") == b"group_by=workspace_name"  # not OpenAI's


def test_anthropic_s_filters_by_name_are_its_documented_id_filters() -> None:
    assert dict(name_filters(ANTHROPIC_FIELDS)) == {
        "api_key_names": ("api_key_ids", "api_key_id"), "workspace_names": ("workspace_ids", "workspace_id"),
        "account_names": ("account_ids", "account_id"),
        "service_account_names": ("service_account_ids", "service_account_id"),
        "user_names": ("actor_ids", "user_id")}  # the analytics API's filter by actor
    ids = {"workspace_id": {"Billing": ("wrkspc_a", "wrkspc_b")}, "user_id": {"Jane": ("user_01a",)}}
    assert rewrite_name_filters(b"workspace_names[]=Billing&x=1", ids, ANTHROPIC_FIELDS) == (
        b"workspace_ids[]=wrkspc_a&workspace_ids[]=wrkspc_b&x=1")
    assert rewrite_name_filters(b"user_names=Jane&actor_ids=svac_1", ids, ANTHROPIC_FIELDS) == (
        b"actor_ids=user_01a&actor_ids=svac_1")
    with pytest.raises(UnknownName) as raised:
        rewrite_name_filters(b"project_names=shop&workspace_names=Nobody", ids, ANTHROPIC_FIELDS)
    assert (raised.value.param, raised.value.name) == ("workspace_names", "Nobody")


@pytest.mark.parametrize(("query", "expected"), [
    (b"group_by=a", b"group_by[]=a"),
    (b"group_by=a,b&limit=7", b"group_by[]=a&group_by[]=b&limit=7"),
    (b"group_by=a&group_by=b", b"group_by[]=a&group_by[]=b"),
    (b"group_by%5B%5D=a,b", b"group_by%5B%5D=a&group_by%5B%5D=b"),
    (b"models=claude%20x%2Cclaude%20y", b"models[]=claude%20x&models[]=claude%20y"),
    (b"group_by", b"group_by[]="),
    (b"page=page_MjAy%3D&starting_at=2026-08-01T00%3A00%3A00Z&group_by[]=a",
     b"page=page_MjAy%3D&starting_at=2026-08-01T00%3A00%3A00Z&group_by[]=a"),
])
def test_array_parameters_go_in_brackets_one_value_a_part(query: bytes, expected: bytes) -> None:
    assert bracket_arrays(query, ARRAYS) == expected


def test_a_query_with_arrays_in_brackets_already_is_the_same_object() -> None:
    query = b"starting_at=x&group_by[]=a&group_by%5B%5D=b&api_key_ids[]=apikey_1&limit=3"
    assert bracket_arrays(query, ARRAYS) is query
    assert bracket_arrays(b"group_by=a", frozenset()) == b"group_by=a"  # OpenAI: as sent


@examples_of(100)
@given(st.lists(st.tuples(st.sampled_from(["group_by", "group_by[]", "models", "limit", "page", "x"]),
                          st.lists(st.text(alphabet="ab_-.:=+/%&é ", min_size=0, max_size=6), min_size=1,
                                   max_size=3)), max_size=6))
def test_bracketing_keeps_every_value_in_order_and_changes_no_other_part(
        pairs: list[tuple[str, list[str]]]) -> None:
    parts = [f"{key}={','.join(quote(v, safe='') for v in values)}" for key, values in pairs]
    query = "&".join(parts).encode()
    bracketed = bracket_arrays(query, ARRAYS)
    decoded = parse_qsl(bracketed.decode(), keep_blank_values=True)
    expected = []
    for key, values in pairs:
        name = key.removesuffix("[]")
        if name.encode() in ARRAYS:
            expected += [(name + "[]", v) for v in ",".join(values).split(",")]
        else:
            expected.append((key, ",".join(values)))
    assert decoded == expected
    assert bracket_arrays(bracketed, ARRAYS) == bracketed  # once is enough


def test_the_fields_a_query_groups_by_are_found_in_every_spelling() -> None:
    wanted = {"workspace_id", "api_key_id"}
    assert ids_grouped_by(b"group_by[]=workspace_id&group_by[]=model", wanted) == {"workspace_id"}
    assert ids_grouped_by(b"group_by=model,api_key_id&x=workspace_id", wanted) == {"api_key_id"}
    assert ids_grouped_by(b"group_by%5B%5D=workspace%5Fid", wanted) == {"workspace_id"}
    assert ids_grouped_by(b"workspace_ids[]=workspace_id&starting_at=1", wanted) == frozenset()
