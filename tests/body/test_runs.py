"""Tests for body/runs.py and the array route of the fast path (body/fast_path.py): the route large pages take.

The route must give exactly what the other two give (the regex pass and the exact walk),
to the byte and in every count, or decline (None) and leave the body to them.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgproxy.body.amend import RUNS_MIN_BYTES, amend_json
from orgproxy.body.exact import amend_exact
from orgproxy.body.fast_path import amend_fast, amend_runs
from orgproxy.body.insertion import Amended, spelling_for
from orgproxy.body.validate import is_json
from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.infra.memory import keep_large_buffers
from orgproxy.snapshot import Names
from orgproxy.body.runs import id_member_runs
from tests.body.test_amend import (
    ALIASES,
    NAMES,
    Layout,
    alias_maps,
    headline_settings,
    json_values,
    layouts,
    render,
)


def same_result(a: Amended, b: Amended) -> None:
    assert a.body == b.body
    assert (a.named, a.unknown) == (b.named, b.unknown)
    assert a.unknown_ids == b.unknown_ids
    assert a.occurrences == b.occurrences
    assert a.by_field == b.by_field


@headline_settings
@given(value=json_values(with_name_fields=True), layout=layouts, aliases=alias_maps)
def test_the_array_route_gives_what_the_exact_walk_gives_or_declines(
        value: Any, layout: Layout, aliases: dict[str, dict[str, str]]) -> None:
    body = render(value, layout, aliases).body_in
    if b"\\" in body:
        return  # the route's precondition: amend_json never sends such a body here
    names = Names.from_aliases(aliases)

    routed = amend_runs(body, names)

    if routed is not None:
        exact = amend_exact(body, names.members)
        assert routed.body == exact.body
        assert (routed.named, routed.unknown) == (exact.named, exact.unknown)
        assert routed.unknown_ids == exact.unknown_ids
        assert routed.occurrences == exact.occurrences
        assert routed.by_field == exact.by_field


def usage_page(rows: int, seed: int = 7, **dumps: Any) -> bytes:
    """A page shaped like the benchmark's: ids repeat, token counts do not."""
    rnd = random.Random(seed)
    keys = ["key_abc", "key_é", "key_unknown", *(f"key_{i:04x}" for i in range(40))]
    results = [{"object": "organization.usage.completions.result",
                "input_tokens": rnd.randint(0, 10**7), "num_model_requests": rnd.randint(1, 99),
                "project_id": rnd.choice(["proj_abc", "proj_other"]), "user_id": None,
                "api_key_id": rnd.choice(keys), "model": "gpt-4o-mini", "batch": None}
               for _ in range(rows)]
    page = {"object": "page", "data": [{"object": "bucket", "results": results}],
            "has_more": False, "next_page": None}
    return json.dumps(page, ensure_ascii=False, **dumps).encode()


@pytest.mark.parametrize("dumps", [{}, {"separators": (",", ":")}, {"indent": 2}],
                         ids=["json.dumps", "compact", "pretty"])
def test_a_usage_page_takes_the_array_route_with_one_run_per_row(dumps: dict[str, Any]) -> None:
    body = usage_page(3000, **dumps)
    assert len(body) >= RUNS_MIN_BYTES

    runs = id_member_runs(body)
    routed = amend_runs(body, NAMES)

    # project_id, user_id and api_key_id follow one another in each row: one run.
    assert runs is not None and len(runs) == 2 * 3000
    assert all(body[start:start + 1] == b'"' for start in runs[0::2].tolist())
    assert routed is not None
    same_result(routed, amend_fast(body, NAMES.members))
    same_result(amend_json(body, NAMES) or Amended(b""), routed)
    assert routed.named == sum(1 for r in json.loads(body)["data"][0]["results"]
                               if r["api_key_id"] in ALIASES["api_keys"]) + body.count(b'"proj_abc"')


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_a_page_searched_in_blocks_gives_what_one_search_gives(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from orgproxy.body import runs

    body = usage_page(300 if block > 100 else 20)  # (a search per byte or seven: a short page)
    data = np.frombuffer(body, np.uint8)
    whole = np.flatnonzero(data == ord('"'))
    assert len(body) > block and runs.quote_positions(data).tolist() == whole.tolist()
    expected = id_member_runs(body)
    monkeypatch.setattr(runs, "QUOTE_BLOCK", block)
    found = runs.quote_positions(data)
    assert found.dtype == np.int32 and found.tolist() == whole.tolist()
    assert expected is not None and np.array_equal(id_member_runs(body), expected)
    routed = amend_runs(body, NAMES)
    assert routed is not None
    same_result(routed, amend_exact(body, NAMES.members))


def test_a_page_of_distinct_rows_counts_each_id_once_per_object() -> None:
    # Every run distinct: counted by the other of the route's two ways.
    rows = [{"project_id": f"proj_{i}", "api_key_id": "key_abc", "n": i} for i in range(2000)]
    body = json.dumps(rows).encode()

    routed = amend_runs(body, NAMES)

    assert routed is not None
    same_result(routed, amend_fast(body, NAMES.members))
    assert routed.occurrences[("api_key_id", "key_abc")] == 2000
    assert routed.unknown == 2000 and routed.named == 2000


@pytest.mark.parametrize("body", [
    b'[{"api_key_id" : "key_abc"}]',  # whitespace before the colon
    b'[{"api_key_id":  "key_abc"}]',  # two spaces after it
    b'[{"api_key_id":\n"key_abc"}]',  # a line break after it
    b'[{"api_key_id": 17}]',  # a number as the id
    b'[{"api_key_id": {"x": 1}}]',  # an object as the id
    b'[{"api_key_id": "key_abc", "api_key_name": "given"}]',  # a name already there
    b'[{"user_id": "u", "user_email": "given@example.com"}]',
    b'"api_key_id"',  # the body is the string
], ids=["space-before-colon", "two-spaces", "newline", "number", "object", "name-there",
        "email-there", "bare-string"])
def test_layouts_the_array_route_leaves_to_the_other_routes(body: bytes) -> None:
    assert id_member_runs(body) is None
    assert amend_runs(body, NAMES) is None
    padded = b'{"pad": "%s", "rows": %s}' % (b"x" * RUNS_MIN_BYTES, body)
    result = amend_json(padded, NAMES)
    assert result is not None
    same_result(result, amend_exact(padded, NAMES.members))


def test_an_id_field_name_used_as_a_value_is_not_a_member() -> None:
    body = b'{"fields": ["api_key_id", "user_id"], "row": {"api_key_id": "key_abc", "x": "user_id"}}'

    runs = id_member_runs(body)
    assert runs is not None
    assert runs.tolist() == [body.index(b'"api_key_id": "key'), body.index(b'"x"')]
    routed = amend_runs(body, NAMES)
    assert routed is not None
    same_result(routed, amend_exact(body, NAMES.members))


def test_an_id_member_at_the_very_end_of_the_body() -> None:
    for body in (b'{"a": [1], "user_id": null}', b'{"a": "b", "api_key_id": "key_abc"}',
                 b'{"api_key_id":null,"user_id":null}'):
        routed = amend_runs(body, NAMES)
        assert routed is not None
        same_result(routed, amend_exact(body, NAMES.members))


def test_a_body_without_ids_is_returned_as_it_is() -> None:
    body = json.dumps({"data": [{"n": i, "model": "gpt"} for i in range(3000)]}).encode()
    runs = id_member_runs(body)
    assert runs is not None and runs.size == 0
    result = amend_json(body, NAMES)
    assert result is not None and result.body is body and result.occurrences == {}


def test_a_large_body_with_a_backslash_skips_the_array_route_and_stays_exact() -> None:
    body = usage_page(2000).replace(b'"gpt-4o-mini"', b'"gpt-\\u0034o"', 1)
    result = amend_json(body, NAMES)
    assert result is not None
    same_result(result, amend_exact(body, NAMES.members))


# Validation: simdjson first, the strict parsers for what it refuses -------------------------------


@pytest.mark.parametrize("body, valid", [
    (b'\xef\xbb\xbf{}', False),  # a byte order mark: simdjson skips it, JSON has none
    (b'[1e400]', True),  # beyond a double: valid JSON all the same
    (b'[123456789012345678901234567890]', True),  # beyond 64 bits
    (b'["\\ud800"]', True),  # a lone surrogate escape
    (b'[NaN]', False), (b'{"a":1,}', False), (b'[1] x', False), (b'"\xff"', False), (b'', False),
])
def test_is_json_where_the_parsers_differ(body: bytes, valid: bool) -> None:
    assert is_json(body) is valid


@given(st.lists(st.integers(), max_size=5))
def test_is_json_can_be_asked_again_and_again(items: list[int]) -> None:
    # The validating parser is reused: a document it returned must never keep it busy.
    body = json.dumps(items).encode()
    assert is_json(body) and is_json(body + b" ") and not is_json(body + b"]")


def test_a_large_body_is_validated_by_a_parser_of_its_own_which_keeps_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from orgproxy.body import validate

    class Reused:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def parse(self, body: bytes) -> None:
            self.sizes.append(len(body))

    reused = Reused()
    monkeypatch.setattr(validate, "_VALIDATOR", reused)
    monkeypatch.setattr(validate, "OWN_PARSER_BYTES", 1000)
    small, large = b'{"a": [1, 2]}', b'{"a": [%s]}' % b",".join([b"1"] * 1000)
    assert is_json(small) and is_json(large) and not is_json(large[:-1])
    assert reused.sizes == [len(small)]  # the large one (valid or not) never went through it


def test_the_allocator_keeps_large_buffers_on_glibc() -> None:
    assert keep_large_buffers() is True


@pytest.mark.parametrize("bounds", [[], [0], [3], [1, 2], [0, 10], [2, 2, 5], [9, 10]])
def test_cut_gives_the_pieces_slicing_gives(bounds: list[int]) -> None:
    import numpy as np

    from orgproxy.body.runs import cut

    body = b"0123456789"
    edges = [0, *bounds, len(body)]
    assert cut(body, np.array(bounds, np.int64)) == [body[a:b] for a, b in zip(edges, edges[1:])]


def test_cut_spells_lengths_of_many_digits_and_slices_beyond_them() -> None:
    import numpy as np

    from orgproxy.body import runs

    body = bytes(range(256)) * 500
    bounds = np.array([1, 99_999, 100_000, 127_999], np.int64)
    expected = [body[:1], body[1:99_999], body[99_999:100_000], body[100_000:127_999], body[127_999:]]
    assert runs.cut(body, bounds) == expected
    digits = runs._DIGITS
    try:
        runs._DIGITS = 4  # so that 99,998 bytes are too many to spell: sliced instead
        assert runs.cut(body, bounds) == expected
    finally:
        runs._DIGITS = digits


# --- another provider's field set -----------------------------------------------------------

ANTHROPIC_NAMES = Names.from_aliases({"api_keys": {"apikey_a": "billing"}, "workspaces": {"wrkspc_a": "Billing"},
                                      "users": {"user_a": "Jane"}, "service_accounts": {"svac_a": "bot"}})


def anthropic_page(rows: int, near_miss: str, **dumps: Any) -> bytes:
    """A messages report page (Anthropic's field order) whose rows carry a near miss of
    ``service_account_id`` beside it."""
    rnd = random.Random(3)
    results = [{"account_id": rnd.choice(["user_a", "user_b", None]), "api_key_id": rnd.choice(["apikey_a", None]),
                near_miss: "svac_a", "output_tokens": rnd.randint(0, 999),
                "service_account_id": rnd.choice(["svac_a", "svac_b", None]),
                "workspace_id": rnd.choice(["wrkspc_a", None])} for _ in range(rows)]
    page = {"data": [{"ending_at": "2026-08-02T00:00:00Z", "results": results,
                      "starting_at": "2026-08-01T00:00:00Z"}], "has_more": False, "next_page": None}
    return json.dumps(page, **dumps).encode()


@pytest.mark.parametrize("near_miss", ["service_XXcount_id", "service_accounX_id", "sErvice_account_id"])
@pytest.mark.parametrize("named_nulls", [frozenset(), frozenset({"workspace_id", "api_key_id"})])
def test_anthropic_fields_take_the_array_route_exactly_a_long_id_field_included(
        near_miss: str, named_nulls: frozenset[str]) -> None:
    # service_account_id has 18 letters: past the two 8-byte words, its middle is checked
    # too, so a string differing only there (service_XXcount_id) is no id member.
    spelling = spelling_for(ANTHROPIC_FIELDS, named_nulls)
    body = anthropic_page(500, near_miss, indent=2)
    assert len(body) >= RUNS_MIN_BYTES

    runs = id_member_runs(body, spelling.table)
    routed = amend_runs(body, ANTHROPIC_NAMES, spelling)

    assert runs is not None and routed is not None
    assert not any(near_miss.encode() in body[start:end]
                   for start, end in zip(runs[0::2].tolist(), runs[1::2].tolist()))
    known = ANTHROPIC_NAMES.members_for(ANTHROPIC_FIELDS)
    same_result(routed, amend_exact(body, known, spelling))
    same_result(routed, amend_fast(body, known, None, spelling))
    assert routed.body.count(b'"service_account_name": "bot"') == body.count(b'"service_account_id": "svac_a"')
    defaults = routed.body.count(b'"workspace_name": "Default"')
    assert defaults == (body.count(b'"workspace_id": null') if named_nulls else 0)


def test_openai_s_spelling_names_only_openai_s_fields_in_the_same_page() -> None:
    body = anthropic_page(500, "service_XXcount_id")
    routed = amend_runs(body, ANTHROPIC_NAMES)  # OpenAI's spelling, the default
    assert routed is not None
    assert routed.body.count(b'"api_key_name"') == body.count(b'"api_key_id"')
    assert not any(name in routed.body for name in (b"workspace_name", b"account_name", b"service_account_name"))
