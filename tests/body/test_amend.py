"""Tests for amending (body/amend.py, fast_path.py, exact.py) with a names snapshot: names
beside ids, every other byte kept.

The headline property renders random JSON values in random layouts with an independent
oracle (``render`` below) that knows, for every id member, where its name member must be
inserted and with which bytes, so the amended body can be checked byte for byte: the
output is the input plus exactly the expected insertions, and nothing else.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgproxy.body.amend import amend_json
from orgproxy.body.exact import amend_exact
from orgproxy.body.fast_path import amend_fast, fast_path_applies
from orgproxy.body.insertion import UNKNOWN, Amended, NeedsExactPath
from orgproxy.body.validate import is_json
from orgproxy.fields import ALIAS_TABLE_FOR_ID, NAME_FIELD_FOR_ID
from orgproxy.snapshot import NO_NAMES, Names
from tests.support.fake_openai import EXAMPLES
from tests.support.properties import property_settings as examples_of

ID_FIELDS = tuple(NAME_FIELD_FOR_ID)
NAME_FIELDS = tuple(NAME_FIELD_FOR_ID.values())


ALIASES = {
    "api_keys": {"key_abc": "checkout-service-production", "key_é": "clé 日本"},
    "projects": {"proj_abc": "storefront"},
    "users": {"user_abc": 'Ada "the" Lovelace\\'},
}
NAMES = Names.from_aliases(ALIASES)

# No example database: running the tests must not leave files in the working tree.
property_settings = examples_of(250)
headline_settings = examples_of(600)


# The oracle ---------------------------------------------------------------------------------


class Layout:
    """How a JSON value is spelled: the whitespace in each slot, string and number spellings."""

    ensure_ascii: bool = False

    def ws(self, slot: str, level: int) -> str:
        raise NotImplementedError

    def string(self, s: str) -> str:
        return json.dumps(s, ensure_ascii=self.ensure_ascii)

    def number(self, n: int | float) -> str:
        return json.dumps(n)

    def stdlib_spelling(self, value: Any) -> str | None:
        """What json.dumps gives for this layout, when it is one of its layouts."""
        return None


@dataclass(frozen=True)
class DumpsLayout(Layout):
    """The layouts json.dumps produces (plus whitespace around the whole text)."""

    indent: int | str | None = None
    separators: tuple[str, str] | None = None
    ensure_ascii: bool = False
    lead: str = ""
    trail: str = ""

    def _indent(self) -> str | None:
        return " " * self.indent if isinstance(self.indent, int) else self.indent

    def ws(self, slot: str, level: int) -> str:
        indent = self._indent()
        newline = "" if indent is None else "\n" + indent * level
        item_sep, key_sep = self.separators or ((", " if indent is None else ","), ": ")
        before_comma, _, after_comma = item_sep.partition(",")
        before_colon, _, after_colon = key_sep.partition(":")
        return {
            "lead": self.lead,
            "trail": self.trail,
            "empty": "",
            "open": newline,  # level is the members' level
            "close": newline,  # level is the container's level
            "before_comma": before_comma,
            "after_comma": after_comma + newline,
            "before_colon": before_colon,
            "after_colon": after_colon,
        }[slot]

    def stdlib_spelling(self, value: Any) -> str | None:
        return self.lead + json.dumps(value, indent=self.indent, separators=self.separators,
                                      ensure_ascii=self.ensure_ascii) + self.trail


@dataclass
class IrregularLayout(Layout):
    """Random whitespace in every slot, \\u escapes in strings and keys, odd number spellings."""

    seed: int = 0
    ensure_ascii: bool = False
    escape_rate: float = 0.0
    rng: random.Random = field(init=False, repr=False)

    WHITESPACE = ("", "", " ", "  ", "\n", "\t", "\r\n    ", " \n\t")

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def ws(self, slot: str, level: int) -> str:
        return self.rng.choice(self.WHITESPACE)

    def string(self, s: str) -> str:
        pieces = []
        for c in s:
            if self.rng.random() < self.escape_rate:
                code = ord(c)
                form = self.rng.choice(("\\u%04x", "\\u%04X"))
                if code > 0xFFFF:
                    code -= 0x10000
                    pieces.append(form % (0xD800 + (code >> 10)) + form % (0xDC00 + (code & 0x3FF)))
                else:
                    pieces.append(form % code)
            elif c == "/" and self.rng.random() < 0.5:
                pieces.append("\\/")
            else:
                pieces.append(json.dumps(c, ensure_ascii=self.ensure_ascii)[1:-1])
        return '"' + "".join(pieces) + '"'

    def number(self, n: int | float) -> str:
        if isinstance(n, float):
            return self.rng.choice((repr(n), "%.20e" % n, "%.20E" % n))
        return str(n)


@dataclass
class Expected:
    """A value spelled in a layout, before and after amending, per the contract."""

    body_in: bytes
    body_out: bytes
    inserts: list[tuple[int, bytes]]  # (byte offset in body_in, bytes inserted there)
    named: int = 0
    unknown: int = 0
    unknown_ids: set[str] = field(default_factory=set)


def name_for(id_field: str, id_value: Any, aliases: Mapping[str, Mapping[str, str]]) -> Any:
    """The name the contract asks for, as a Python value."""
    if not isinstance(id_value, str):
        return None
    return aliases.get(ALIAS_TABLE_FOR_ID[id_field], {}).get(id_value, UNKNOWN)


def render(value: Any, layout: Layout, aliases: Mapping[str, Mapping[str, str]]) -> Expected:
    """Spell value in layout, and work out independently what amend_json must make of it."""
    expected = Expected(b"", b"", [])

    def name_json(id_field: str, id_value: Any) -> str:
        if not isinstance(id_value, str):
            return "null"
        table = aliases.get(ALIAS_TABLE_FOR_ID[id_field], {})
        if id_value not in table:
            expected.unknown += 1
            expected.unknown_ids.add(id_value)
            return '"unknown"'
        expected.named += 1
        return json.dumps(table[id_value], ensure_ascii=False)

    return _spell(value, layout, expected, name_json)


def _spell(value: Any, layout: Layout, expected: Expected,
           name_json: Callable[[str, Any], str]) -> Expected:
    """Spell value chunk by chunk, marking the chunks amend_json must insert."""
    chunks: list[tuple[str, bool]] = []  # (text, inserted?)

    def emit(v: Any, level: int) -> None:
        if isinstance(v, dict):
            if not v:
                chunks.append(("{" + layout.ws("empty", level) + "}", False))
                return
            chunks.append(("{" + layout.ws("open", level + 1), False))
            items = list(v.items())
            # The separator after each member, drawn up front: where a name member goes
            # depends on whether a comma follows its id member directly.
            separators = [(layout.ws("before_comma", level + 1), layout.ws("after_comma", level + 1))
                          for _ in items[1:]]
            pending: str | None = None
            for index, (key, member_value) in enumerate(items):
                if index:
                    before_comma, after_comma = separators[index - 1]
                    chunks.append((before_comma + "," + after_comma, False))
                    if pending is not None:
                        chunks.append((pending, True))
                        pending = None
                before_colon = layout.ws("before_colon", level + 1)
                after_colon = layout.ws("after_colon", level + 1)
                chunks.append((layout.string(key) + before_colon + ":" + after_colon, False))
                emit(member_value, level + 1)
                if key in NAME_FIELD_FOR_ID and NAME_FIELD_FOR_ID[key] not in v:
                    member = '"%s"%s:%s%s' % (NAME_FIELD_FOR_ID[key], before_colon, after_colon,
                                              name_json(key, member_value))
                    if index < len(items) - 1 and separators[index][0] == "":
                        # A comma right after the id member: the name member goes after
                        # the comma and its whitespace, and repeats them.
                        pending = member + "," + separators[index][1]
                    else:
                        # The object's last member (or whitespace before the comma):
                        # right after the id's value, on the same line.
                        chunks.append(("," + after_colon + member, True))
            chunks.append((layout.ws("close", level) + "}", False))
        elif isinstance(v, list):
            if not v:
                chunks.append(("[" + layout.ws("empty", level) + "]", False))
                return
            chunks.append(("[" + layout.ws("open", level + 1), False))
            for index, item in enumerate(v):
                if index:
                    chunks.append((layout.ws("before_comma", level + 1) + ","
                                   + layout.ws("after_comma", level + 1), False))
                emit(item, level + 1)
            chunks.append((layout.ws("close", level) + "]", False))
        elif v is None:
            chunks.append(("null", False))
        elif isinstance(v, bool):
            chunks.append(("true" if v else "false", False))
        elif isinstance(v, (int, float)):
            chunks.append((layout.number(v), False))
        else:
            chunks.append((layout.string(v), False))

    chunks.append((layout.ws("lead", 0), False))
    emit(value, 0)
    chunks.append((layout.ws("trail", 0), False))
    body_in = bytearray()
    for text, inserted in chunks:
        encoded = text.encode("utf-8")
        if inserted:
            expected.inserts.append((len(body_in), encoded))
        else:
            body_in += encoded
    expected.body_in = bytes(body_in)
    expected.body_out = "".join(text for text, _ in chunks).encode("utf-8")
    return expected


# Checks --------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal as parsed JSON: same types, same key order, -0.0 and 0.0 told apart as parsed."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def added_names(obj: Mapping[str, Any]) -> set[str]:
    """The name fields the contract adds to this (original) object."""
    return {NAME_FIELD_FOR_ID[f] for f in obj if f in NAME_FIELD_FOR_ID
            and NAME_FIELD_FOR_ID[f] not in obj}


def without_added(out: Any, original: Any) -> Any:
    """The parsed output with the name fields the original lacked taken out again."""
    if isinstance(original, dict):
        assert isinstance(out, dict)
        added = added_names(original)
        assert set(out) == set(original) | added
        return {k: without_added(out[k], original[k]) for k in out if k not in added}
    if isinstance(original, list):
        assert isinstance(out, list) and len(out) == len(original)
        return [without_added(o, i) for o, i in zip(out, original)]
    return out


def check_names(out: Any, original: Any, aliases: Mapping[str, Mapping[str, str]]) -> None:
    """Every object with an id has its name per the contract; names already there are kept."""
    if isinstance(original, dict):
        for id_field, name_field in NAME_FIELD_FOR_ID.items():
            if id_field not in original:
                continue
            if name_field in original:
                # kept as it was (objects inside it are amended like any others)
                kept = without_added(out[name_field], original[name_field])
                assert same(kept, original[name_field]), (id_field, original)
            else:
                assert out[name_field] == name_for(id_field, original[id_field], aliases), (
                    id_field, original[id_field], out[name_field])
        for key in original:
            check_names(out[key], original[key], aliases)
    elif isinstance(original, list):
        for o, i in zip(out, original):
            check_names(o, i, aliases)


def assert_only_insertions(body_in: bytes, body_out: bytes, inserts: list[tuple[int, bytes]]) -> None:
    """body_out is body_in with exactly these texts inserted: deleting them gives body_in."""
    assert len(body_out) - len(body_in) == sum(len(text) for _, text in inserts)
    pieces = []
    shift = done = 0
    for at, text in sorted(inserts, key=lambda insert: insert[0]):
        start = at + shift
        assert body_out[start:start + len(text)] == text, (at, text, body_out[start - 20:start + 40])
        pieces.append(body_out[done:start])
        done = start + len(text)
        shift += len(text)
    pieces.append(body_out[done:])
    assert b"".join(pieces) == body_in


def check_amended(result: Amended | None, expected: Expected,
                  aliases: Mapping[str, Mapping[str, str]]) -> None:
    assert result is not None
    assert_only_insertions(expected.body_in, result.body, expected.inserts)
    assert result.body == expected.body_out
    original = json.loads(expected.body_in)
    out = json.loads(result.body)
    assert same(without_added(out, original), original)
    check_names(out, original, aliases)
    assert (result.named, result.unknown) == (expected.named, expected.unknown)
    assert set(result.unknown_ids) == expected.unknown_ids


# Strategies ----------------------------------------------------------------------------------

ALPHABET = 'az_-/ :,{}[]é日😀"\\\n\t\x00\x1f\x7f\u2028\u2029'
texts = st.text(alphabet=ALPHABET, max_size=8)
ID_POOL = ("key_abc", "key_def", "proj_abc", "user_abc", "key_é", "日", "😀", 'q"uote',
           "back\\slash", "", "unknown", "null", "api_key_id", "nl\nx", "a/b")
TRICKY_KEYS = ('x"api_key_id', '"api_key_id"', 'api_key_id"', " api_key_id", "API_KEY_ID",
               "my_api_key_id", "api_key_ids", "api_key_name_", "project_id ", "_name", "id",
               'x"api_key_name', "user")
pool_ids = st.sampled_from(ID_POOL)
id_strings = st.one_of(pool_ids, texts)
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.integers(min_value=-10**40, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False), texts,
)


def json_values(with_name_fields: bool) -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        id_values = st.one_of(pool_ids, pool_ids, pool_ids, texts, st.none(), children)
        members = [
            st.tuples(st.sampled_from(ID_FIELDS), id_values),
            st.tuples(st.sampled_from(ID_FIELDS), id_values),
            st.tuples(st.one_of(st.sampled_from(TRICKY_KEYS), texts), children),
        ]
        if with_name_fields:
            members.append(st.tuples(st.sampled_from(NAME_FIELDS), children))
        return st.one_of(st.lists(children, max_size=4),
                         st.lists(st.one_of(*members), max_size=6).map(dict))

    return st.recursive(leaves, extend, max_leaves=20)


name_texts = st.text(alphabet=ALPHABET + "éü日本😀", max_size=10)
alias_tables = st.one_of(
    st.dictionaries(pool_ids, name_texts, min_size=len(ID_POOL) // 2),
    st.dictionaries(id_strings, name_texts, max_size=6),
)
alias_maps = st.one_of(
    st.fixed_dictionaries({table: alias_tables for table in ALIAS_TABLE_FOR_ID.values()}),
    st.fixed_dictionaries({}, optional={table: alias_tables
                                        for table in ALIAS_TABLE_FOR_ID.values()}),
)
dumps_layouts = st.builds(
    DumpsLayout,
    indent=st.sampled_from([None, 0, 2, 4, "\t"]),
    separators=st.sampled_from([None, (",", ":"), (", ", ": "), (",", ": "), (" , ", " : "),
                                (",\t", "\t:\r\n")]),
    ensure_ascii=st.booleans(),
    lead=st.sampled_from(["", " ", "\n", "\r\n\t"]),
    trail=st.sampled_from(["", " ", "\n", "\r\n\t"]),
)
irregular_layouts = st.builds(
    IrregularLayout, seed=st.integers(0, 2**32 - 1), ensure_ascii=st.booleans(),
    escape_rate=st.sampled_from([0.0, 0.0, 0.3]),
)
layouts = st.one_of(dumps_layouts, irregular_layouts)


# The headline properties ---------------------------------------------------------------------


@headline_settings
@given(value=json_values(with_name_fields=True), layout=layouts, aliases=alias_maps)
def test_any_json_gets_names_per_contract_and_keeps_every_byte(
        value: Any, layout: Layout, aliases: dict[str, dict[str, str]]) -> None:
    expected = render(value, layout, aliases)
    spelled = layout.stdlib_spelling(value)
    if spelled is not None:  # the oracle spells like json.dumps where it should
        assert expected.body_in == spelled.encode("utf-8")
    assert same(json.loads(expected.body_in), json.loads(json.dumps(value)))

    result = amend_json(expected.body_in, Names.from_aliases(aliases))

    check_amended(result, expected, aliases)


@headline_settings
@given(value=json_values(with_name_fields=False), layout=layouts, aliases=alias_maps)
def test_fast_and_exact_paths_give_identical_results(
        value: Any, layout: Layout, aliases: dict[str, dict[str, str]]) -> None:
    body = render(value, layout, aliases).body_in
    names = Names.from_aliases(aliases)
    exact = amend_exact(body, names.members)
    if not fast_path_applies(body):
        return
    try:
        fast = amend_fast(body, names.members)
    except NeedsExactPath:
        return
    assert fast.body == exact.body
    assert (fast.named, fast.unknown) == (exact.named, exact.unknown)
    assert set(fast.unknown_ids) == set(exact.unknown_ids)


@property_settings
@given(value=json_values(with_name_fields=True), layout=dumps_layouts)
def test_objects_that_already_have_a_name_field_keep_it_untouched(value: Any, layout: Layout) -> None:
    body = render(value, layout, ALIASES).body_in
    result = amend_json(body, NAMES)
    assert result is not None
    original, out = json.loads(body), json.loads(result.body)

    def walk(o: Any, i: Any) -> None:
        if isinstance(i, dict):
            for name_field in NAME_FIELDS:
                if name_field in i:
                    assert same(without_added(o[name_field], i[name_field]), i[name_field])
            for key in i:
                walk(o[key], i[key])
        elif isinstance(i, list):
            for x, y in zip(o, i):
                walk(x, y)

    walk(out, original)


@property_settings
@given(body=st.binary(max_size=40) | st.text(alphabet='{}[]",: 0-1e.\\ntrufalsNI' + "é", max_size=20)
       .map(lambda s: s.encode()))
def test_whatever_the_bytes_the_answer_is_none_exactly_when_not_json(body: bytes) -> None:
    try:
        json.loads(body.decode("utf-8"), parse_constant=lambda c: 1 / 0)
        valid = True
    except (UnicodeDecodeError, ValueError, ZeroDivisionError):
        valid = False
    result = amend_json(body, NAMES)
    assert (result is not None) == valid
    if result is not None:
        assert result.body == amend_exact(body, NAMES.members).body


# The upstream's own examples -----------------------------------------------------------------

FIXTURES = sorted(EXAMPLES.glob("*.json"))
# The spec's audit-log example has trailing commas: it is not JSON (and is tested as such).
JSON_FIXTURES = [path for path in FIXTURES if is_json(path.read_bytes())]


def test_the_upstream_examples_are_there() -> None:
    assert len(JSON_FIXTURES) >= 20, f"too few examples in {EXAMPLES}"


def layout_of(body: bytes, value: Any) -> DumpsLayout:
    """The json.dumps layout the example file is written in (all of them are)."""
    for indent in (2, 4):
        layout = DumpsLayout(indent=indent, lead="", trail="\n" if body.endswith(b"\n") else "")
        if layout.stdlib_spelling(value).encode() == body:  # type: ignore[union-attr]
            return layout
    raise AssertionError("example not in a json.dumps layout")


def first_ids(value: Any, found: dict[str, str] | None = None) -> dict[str, str]:
    """The first string id of each id field, walking the document in order."""
    found = {} if found is None else found
    if isinstance(value, dict):
        for key, member in value.items():
            if key in NAME_FIELD_FOR_ID and isinstance(member, str):
                found.setdefault(key, member)
            first_ids(member, found)
    elif isinstance(value, list):
        for member in value:
            first_ids(member, found)
    return found


def with_string_ids(value: Any, counter: list[int]) -> Any:
    """The example with its ids set, in turn, to a named id, an unknown id and null."""
    if isinstance(value, dict):
        out = {}
        for key, member in value.items():
            if key in NAME_FIELD_FOR_ID:
                turn = counter[0] % 3
                counter[0] += 1
                prefix = key.removesuffix("_id")
                out[key] = (f"{prefix}_named", f"{prefix}_unlisted", None)[turn]
            else:
                out[key] = with_string_ids(member, counter)
        return out
    if isinstance(value, list):
        return [with_string_ids(member, counter) for member in value]
    return value


EXAMPLE_ALIASES = {
    "api_keys": {"api_key_named": "checkout-service-production"},
    "projects": {"project_named": "storefront"},
    "users": {"user_named": "Ada Lovelace"},
}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_upstream_example_gets_names_and_keeps_every_byte(path: Path) -> None:
    body = path.read_bytes()
    try:
        value = json.loads(body)
    except ValueError:
        assert amend_json(body, NAMES) is None
        return
    # (The examples' ids are all null today; then the map is empty and every name is null.)
    aliases = {ALIAS_TABLE_FOR_ID[f]: {i: f"checkout-service-production ({f})"}
               for f, i in first_ids(value).items()}
    expected = render(value, layout_of(body, value), aliases)
    assert expected.body_in == body

    check_amended(amend_json(body, Names.from_aliases(aliases)), expected, aliases)


@pytest.mark.parametrize("path", JSON_FIXTURES, ids=lambda p: p.name)
def test_upstream_example_with_string_ids_gets_named_unknown_and_null(path: Path) -> None:
    body = path.read_bytes()
    value = json.loads(body)
    layout = layout_of(body, value)
    counter = [0]
    value = with_string_ids(value, counter)
    expected = render(value, layout, EXAMPLE_ALIASES)

    result = amend_json(expected.body_in, Names.from_aliases(EXAMPLE_ALIASES))

    check_amended(result, expected, EXAMPLE_ALIASES)
    assert result is not None
    assert result.named + result.unknown == counter[0] - counter[0] // 3


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def test_completions_example_null_ids_get_null_names_on_their_own_lines() -> None:
    body = example("get_organization_usage_completions.response.json")
    pad = b" " * 20

    result = amend_json(body, Names.from_aliases({"api_keys": {"key_abc": "checkout"}}))

    assert result is not None
    assert (b'"num_model_requests": 5,\n'
            + pad + b'"project_id": null,\n' + pad + b'"project_name": null,\n'
            + pad + b'"user_id": null,\n' + pad + b'"user_name": null,\n'
            + pad + b'"api_key_id": null,\n' + pad + b'"api_key_name": null,\n'
            + pad + b'"model": null,\n') in result.body
    added = (pad + b'"project_name": null,\n', pad + b'"user_name": null,\n',
             pad + b'"api_key_name": null,\n')
    assert result.body.replace(added[0], b"").replace(added[1], b"").replace(added[2], b"") == body
    row = json.loads(result.body)["data"][0]["results"][0]
    assert row["project_name"] is None and row["user_name"] is None and row["api_key_name"] is None
    assert (result.named, result.unknown, result.unknown_ids) == (0, 0, {})


def test_completions_example_with_ids_gets_names_unknown_and_counts() -> None:
    body = (example("get_organization_usage_completions.response.json")
            .replace(b'"project_id": null', b'"project_id": "proj_abc"')
            .replace(b'"user_id": null', b'"user_id": "user-unlisted"')
            .replace(b'"api_key_id": null', b'"api_key_id": "key_abc"'))
    pad = b" " * 20

    result = amend_json(body, NAMES)

    assert result is not None
    assert (pad + b'"project_id": "proj_abc",\n' + pad + b'"project_name": "storefront",\n'
            + pad + b'"user_id": "user-unlisted",\n' + pad + b'"user_name": "unknown",\n'
            + pad + b'"api_key_id": "key_abc",\n'
            + pad + b'"api_key_name": "checkout-service-production",\n'
            + pad + b'"model": null,\n') in result.body
    assert (result.named, result.unknown, result.unknown_ids) == (
        2, 1, {"user-unlisted": "user_id"})
    row = json.loads(result.body)["data"][0]["results"][0]
    at = list(row).index("num_model_requests")
    assert list(row)[at:at + 8] == ["num_model_requests", "project_id", "project_name", "user_id",
                                "user_name", "api_key_id", "api_key_name", "model"]


def test_costs_example_gets_project_and_api_key_names_only() -> None:
    body = example("get_organization_costs.response.json")
    pad = b" " * 20

    result = amend_json(body, NAMES)

    assert result is not None
    assert (pad + b'"line_item": null,\n'
            + pad + b'"project_id": null,\n' + pad + b'"project_name": null,\n'
            + pad + b'"api_key_id": null,\n' + pad + b'"api_key_name": null,\n'
            + pad + b'"quantity": null,\n') in result.body
    assert b"user_name" not in result.body
    assert b'"value": 0.06,' in result.body
    assert len(result.body) - len(body) == 2 * len(pad + b'"project_name": null,\n')
    assert (result.body.replace(pad + b'"project_name": null,\n', b"")
            .replace(pad + b'"api_key_name": null,\n', b"")) == body


def test_cookbook_excerpt_every_result_row_gets_null_names_and_empty_bucket_is_untouched() -> None:
    body = example("REAL_cookbook_usage_completions_output_excerpt.json")
    pad = b" " * 8

    result = amend_json(body, NAMES)

    assert result is not None
    for field_name in NAME_FIELDS:
        assert result.body.count(pad + b'"%s": null,\n' % field_name.encode()) == 3
    assert b'"results": []' in result.body
    buckets = json.loads(result.body)
    assert [len(b["results"]) for b in buckets] == [1, 1, 0, 1]
    for bucket in buckets:
        for row in bucket["results"]:
            assert {row[n] for n in NAME_FIELDS} == {None}
    stripped = result.body
    for field_name in NAME_FIELDS:
        stripped = stripped.replace(pad + b'"%s": null,\n' % field_name.encode(), b"")
    assert stripped == body


def test_cookbook_excerpt_rows_with_known_unknown_and_null_ids() -> None:
    body = example("REAL_cookbook_usage_completions_output_excerpt.json")
    for id_field, known, unlisted in (("project_id", b"proj_abc", b"proj_gone"),
                                      ("user_id", b"user_abc", b"user_gone"),
                                      ("api_key_id", b"key_abc", b"key_gone")):
        null_member = b'"%s": null' % id_field.encode()
        body = body.replace(null_member, b'"%s": "%s"' % (id_field.encode(), known), 1)
        body = body.replace(null_member, b'"%s": "%s"' % (id_field.encode(), unlisted), 1)

    result = amend_json(body, NAMES)

    assert result is not None
    rows = [row for bucket in json.loads(result.body) for row in bucket["results"]]
    assert [(r["project_name"], r["user_name"], r["api_key_name"]) for r in rows] == [
        ("storefront", 'Ada "the" Lovelace\\', "checkout-service-production"),
        ("unknown", "unknown", "unknown"),
        (None, None, None),
    ]
    assert (result.named, result.unknown) == (3, 3)
    assert result.unknown_ids == {"proj_gone": "project_id", "user_gone": "user_id",
                                  "key_gone": "api_key_id"}
    assert b'        "user_name": "Ada \\"the\\" Lovelace\\\\",\n' in result.body


def test_audit_logs_example_with_trailing_commas_is_not_json() -> None:
    assert amend_json(example("get_organization_audit_logs.response.json"), NAMES) is None


# Byte-exact examples -------------------------------------------------------------------------


def amended(body: bytes, names: Names = NAMES) -> bytes:
    result = amend_json(body, names)
    assert result is not None
    return result.body


def test_pretty_page_gets_each_name_on_its_own_line_with_the_same_indent() -> None:
    page = {"object": "page", "data": [
        {"api_key_id": "key_abc", "project_id": "proj_abc", "input_tokens": 10},
        {"input_tokens": 5, "api_key_id": None},
    ]}
    body = json.dumps(page, indent=2).encode()

    assert amended(body) == (
        b'{\n'
        b'  "object": "page",\n'
        b'  "data": [\n'
        b'    {\n'
        b'      "api_key_id": "key_abc",\n'
        b'      "api_key_name": "checkout-service-production",\n'
        b'      "project_id": "proj_abc",\n'
        b'      "project_name": "storefront",\n'
        b'      "input_tokens": 10\n'
        b'    },\n'
        b'    {\n'
        b'      "input_tokens": 5,\n'
        b'      "api_key_id": null, "api_key_name": null\n'
        b'    }\n'
        b'  ]\n'
        b'}'
    )


def test_compact_json_gets_compact_name_members() -> None:
    assert amended(b'{"api_key_id":"key_abc","n":1}') == (
        b'{"api_key_id":"key_abc","api_key_name":"checkout-service-production","n":1}')
    assert amended(b'{"n":1,"api_key_id":"key_abc"}') == (
        b'{"n":1,"api_key_id":"key_abc","api_key_name":"checkout-service-production"}')
    assert amended(b'[{"user_id":"nobody"}]') == b'[{"user_id":"nobody","user_name":"unknown"}]'


def test_number_spellings_are_kept_to_the_byte() -> None:
    body = (b'{"a":1e-7,"b":0.10,"c":123456789012345678901234567890,"d":-0,"e":1E+2,'
            b'"f":-0.0,"g":1e400,"api_key_id":"key_abc"}')
    assert amended(body) == body[:-1] + b',"api_key_name":"checkout-service-production"}'


def test_escapes_in_other_strings_are_kept_to_the_byte() -> None:
    body = b'{"note":"caf\\u00e9 \\/ \\"q\\" \\ud83d\\ude00","api_key_id":"key_abc"}'
    assert amended(body) == body[:-1] + b',"api_key_name":"checkout-service-production"}'


def test_escaped_id_is_looked_up_by_its_value() -> None:
    assert amended(b'{"api_key_id": "key_\\u0061bc"}') == (
        b'{"api_key_id": "key_\\u0061bc", "api_key_name": "checkout-service-production"}')
    assert amended(b'{"api_key_id": "key_\\u00e9"}') == (
        '{"api_key_id": "key_\\u00e9", "api_key_name": "clé 日本"}'.encode())
    assert amended('{"api_key_id": "key_é"}'.encode()) == (
        '{"api_key_id": "key_é", "api_key_name": "clé 日本"}'.encode())


def test_id_key_text_inside_a_string_is_not_a_key() -> None:
    for body in (b'{"note": "say \\"api_key_id\\": \\"key_abc\\"", "x": 1}',
                 b'{"x\\"api_key_id": "key_abc"}',
                 b'{"\\"api_key_id\\"": "key_abc"}',
                 b'{"\\"api_key_id": "key_abc"}',
                 b'{"k": "api_key_id", "v": "key_abc"}',
                 b'["api_key_id", "key_abc"]',
                 b'{"api_key_ids": "key_abc", "my_api_key_id": "key_abc"}'):
        result = amend_json(body, NAMES)
        assert result is not None
        assert (result.body, result.named, result.unknown) == (body, 0, 0)


def test_id_key_text_inside_a_key_beside_a_real_id() -> None:
    body = b'{"x\\"api_key_id": "key_abc", "api_key_id": "key_abc"}'
    assert amended(body) == body[:-1] + b', "api_key_name": "checkout-service-production"}'


def test_id_key_spelled_with_an_escape_is_an_id_key() -> None:
    assert amended(b'{"api_key_\\u0069d": "key_abc"}') == (
        b'{"api_key_\\u0069d": "key_abc", "api_key_name": "checkout-service-production"}')


def test_object_that_already_has_the_name_keeps_it_and_gets_nothing() -> None:
    for body in (b'{"api_key_id": "key_abc", "api_key_name": "mine"}',
                 b'{"api_key_name": null, "api_key_id": "key_abc"}',
                 b'{"api_key_id": "key_abc", "api_key_n\\u0061me": 7}'):
        result = amend_json(body, NAMES)
        assert result is not None
        assert (result.body, result.named, result.unknown) == (body, 0, 0)


def test_existing_name_field_blocks_only_its_own_id_in_its_own_object() -> None:
    assert amended(b'{"api_key_id":"key_abc","api_key_name":null,"project_id":"proj_abc"}') == (
        b'{"api_key_id":"key_abc","api_key_name":null,"project_id":"proj_abc",'
        b'"project_name":"storefront"}')
    assert amended(b'{"api_key_id":"key_abc","child":{"api_key_name":"x"}}') == (
        b'{"api_key_id":"key_abc","api_key_name":"checkout-service-production",'
        b'"child":{"api_key_name":"x"}}')


@pytest.mark.parametrize("escape", [b"", b', "e": "\\u00e9"'], ids=["fast path", "exact path"])
def test_duplicate_id_keys_parse_to_the_name_of_the_last(escape: bytes) -> None:
    for body in (b'{"api_key_id": "key_abc", "api_key_id": "key_zzz"',
                 b'{"api_key_id": "key_zzz", "api_key_id": "key_abc", "n": 1',
                 b'{"api_key_id": "key_abc", "api_key_id": null'):
        body += escape + b"}"
        last = json.loads(body)["api_key_id"]
        assert json.loads(amended(body))["api_key_name"] == name_for("api_key_id", last, ALIASES)


def test_duplicate_id_keys_each_get_a_name_member_on_both_paths() -> None:
    # A name beside every id member: parsers keep the last of each, so the name read
    # belongs to the id read, and both paths write the same bytes.
    body = b'{"api_key_id": "key_abc", "api_key_id": "key_zzz"}'
    expected = (b'{"api_key_id": "key_abc", "api_key_name": "checkout-service-production",'
                b' "api_key_id": "key_zzz", "api_key_name": "unknown"}')

    result = amend_json(body, NAMES)
    exact = amend_exact(body, NAMES.members)

    assert result is not None
    assert result.body == exact.body == expected
    assert (result.named, result.unknown, result.unknown_ids) == (1, 1, {"key_zzz": "api_key_id"})
    assert (exact.named, exact.unknown) == (1, 1)


def test_duplicate_id_keys_fast_and_exact_paths_agree() -> None:
    body = b'{"api_key_id":"key_abc","api_key_id":"key_abc","n":1}'
    assert fast_path_applies(body)
    exact = amend_exact(body, NAMES.members)
    try:
        fast = amend_fast(body, NAMES.members)
    except NeedsExactPath:
        return
    assert (fast.body, fast.named, fast.unknown) == (exact.body, exact.named, exact.unknown)


def test_non_string_id_gets_null() -> None:
    assert amended(b'{"api_key_id": 12, "project_id": {"user_id": "user_abc"}, "user_id": [1],'
                   b' "n": 0}') == (
        b'{"api_key_id": 12, "api_key_name": null, "project_id": {"user_id": "user_abc",'
        b' "user_name": "Ada \\"the\\" Lovelace\\\\"}, "project_name": null, "user_id": [1],'
        b' "user_name": null, "n": 0}')
    assert amended(b'{"api_key_id":true}') == b'{"api_key_id":true,"api_key_name":null}'
    assert amended(b'{"api_key_id":1.5e3}') == b'{"api_key_id":1.5e3,"api_key_name":null}'


def test_nested_objects_inside_arrays_inside_objects() -> None:
    assert amended(b'{"data":[{"results":[{"project_id":"proj_abc"},{"project_id":"p2"}]}]}') == (
        b'{"data":[{"results":[{"project_id":"proj_abc","project_name":"storefront"},'
        b'{"project_id":"p2","project_name":"unknown"}]}]}')


def test_top_level_array_and_scalars_and_empty_containers() -> None:
    assert amended(b'[{"user_id":"user_abc"},{"user_id":"nobody"}]') == (
        b'[{"user_id":"user_abc","user_name":"Ada \\"the\\" Lovelace\\\\"},'
        b'{"user_id":"nobody","user_name":"unknown"}]')
    for body in (b'"api_key_id"', b"42", b"-0", b"null", b"true", b'"x"', b"{}", b"[]",
                 b"{ }", b"[ \n]", b" {} ", b'[{}, [], {"a": {}}]'):
        assert amended(body) == body


def test_whitespace_everywhere() -> None:
    assert amended(b'{ "api_key_id" : "key_abc" , "x" : 1 }') == (
        b'{ "api_key_id" : "key_abc", "api_key_name" : "checkout-service-production" , "x" : 1 }')
    assert amended(b'{\r\n\t"api_key_id"\t:\r\n "key_abc",\r\n\t"x": 1}') == (
        b'{\r\n\t"api_key_id"\t:\r\n "key_abc",\r\n\t"api_key_name"\t:\r\n '
        b'"checkout-service-production",\r\n\t"x": 1}')
    assert amended(b' { "api_key_id":null } \n') == b' { "api_key_id":null,"api_key_name":null } \n'


def test_names_with_json_special_characters_are_valid_json() -> None:
    names = Names.from_aliases({"users": {"u": 'q"b\\s\n\u2028\x00é😀'}})
    out = amended(b'{"user_id":"u"}', names)
    assert json.loads(out) == {"user_id": "u", "user_name": 'q"b\\s\n\u2028\x00é😀'}


def test_lone_surrogate_escape_in_an_id_is_valid_json() -> None:
    result = amend_json(b'{"api_key_id": "\\ud800"}', NAMES)
    assert result is not None
    assert result.body == b'{"api_key_id": "\\ud800", "api_key_name": "unknown"}'
    assert result.unknown_ids == {"\ud800": "api_key_id"}


def test_deep_nesting_on_the_exact_path() -> None:
    nested = b"[" * 200 + b'{"user_id":"user_abc"}' + b"]" * 200
    body = b'{"api_key_id":"key_\\u0061bc","d":' + nested + b"}"
    assert amended(body) == (
        b'{"api_key_id":"key_\\u0061bc","api_key_name":"checkout-service-production","d":'
        + nested.replace(b'"user_abc"', b'"user_abc","user_name":"Ada \\"the\\" Lovelace\\\\"')
        + b"}")


def test_fast_path_hands_over_what_it_cannot_handle() -> None:
    for body in (b'{"api_key_id": 5}', b'{"api_key_id": "k\\"x"}', b'{"api_key_id": "k\\nx"}',
                 b'{"api_key_id": {"a": 1}}', b'{"api_key_id": ["key_abc"]}'):
        with pytest.raises(NeedsExactPath):
            amend_fast(body, NAMES.members)


def test_fast_path_does_not_apply_where_it_could_be_fooled() -> None:
    assert fast_path_applies(b'{"api_key_id": "key_abc", "n": "a\\nb"}')
    for body in (b'{"x\\"api_key_id": "k"}', b'{"api_key_\\u0069d": "k"}'):
        assert not fast_path_applies(body)
    # A field the proxy adds, already in the body: the fast pass itself refuses it.
    for body in (b'{"api_key_id": "k", "api_key_name": "n"}', b'{"user_id": "u", "user_name": 1}',
                 b'{"user_email": "e@x", "user_id": "u"}', b'[{"project_name" : "p"}, {"project_id": "q"}]'):
        with pytest.raises(NeedsExactPath):
            amend_fast(body, NAMES.members)


# Not JSON --------------------------------------------------------------------------------------

NOT_JSON = {
    "empty": b"",
    "whitespace only": b" \n",
    "words": b"not json",
    "open brace": b"{",
    "truncated page": json.dumps({"object": "page", "data": [{"api_key_id": "key_abc"}]},
                                 indent=2).encode()[:-7],
    "invalid utf-8 in a string": b'{"api_key_id": "key_\xffabc"}',
    "overlong utf-8": b'{"api_key_id": "\xc0\xae"}',
    "encoded surrogate": b'{"api_key_id": "\xed\xa0\x80"}',
    "NaN": b"NaN",
    "Infinity": b'{"a": Infinity}',
    "-Infinity": b"[-Infinity]",
    "BOM": b"\xef\xbb\xbf" + b'{"api_key_id": "key_abc"}',
    "two texts": b"{} {}",
    "trailing comma": b'{"api_key_id": "key_abc",}',
    "single quotes": b"{'api_key_id': 'key_abc'}",
    "leading zero": b'{"a": 01}',
    "raw control char": b'{"api_key_id": "a\tb"}',
    "bad escape": b'{"a": "\\x41"}',
    "form feed around": b"\x0c{}",
    "nul after": b"{}\x00",
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_not_json_is_none(body: bytes) -> None:
    assert amend_json(body, NAMES) is None
    assert not is_json(body)


def test_integer_longer_than_4300_digits_is_still_json() -> None:
    # RFC 8259 puts no limit on the digits of a number; Python's int(str) does (4300).
    body = b'{"api_key_id": "key_abc", "n": 1' + b"0" * 5000 + b"}"

    result = amend_json(body, NAMES)

    assert result is not None
    assert result.body == body.replace(b'"key_abc", ', b'"key_abc", "api_key_name": "checkout-service-production", ')
    assert amend_exact(body, NAMES.members).body == result.body


# Counts ------------------------------------------------------------------------------------


def test_counts_for_a_page_with_repeated_ids() -> None:
    rows = [{"api_key_id": "key_abc", "project_id": "proj_zzz", "user_id": None},
            {"api_key_id": "key_zzz", "project_id": "proj_abc", "user_id": "user_abc"},
            {"api_key_id": "key_abc", "project_id": None, "user_id": 7},
            {"api_key_id": "key_zzz", "project_id": "proj_zzz", "user_id": "key_zzz"},
            {"api_key_id": "key_abc", "api_key_name": "given", "project_id": "proj_new"}]
    body = json.dumps({"data": rows}, indent=2).encode()

    result = amend_json(body, NAMES)

    assert result is not None
    assert result.named == 4  # key_abc 2x (the third has its name), proj_abc, user_abc
    assert result.unknown == 6  # proj_zzz 2x, key_zzz 2x + once as a user id, proj_new
    assert result.unknown_ids == {"proj_zzz": "project_id", "key_zzz": "api_key_id",
                                  "proj_new": "project_id"}
    assert list(result.unknown_ids) == ["proj_zzz", "key_zzz", "proj_new"]
    assert result.by_field == {("api_key_id", "named"): 2, ("api_key_id", "unknown"): 2,
                               ("project_id", "named"): 1, ("project_id", "unknown"): 3,
                               ("user_id", "named"): 1, ("user_id", "unknown"): 1}


def test_counts_on_the_exact_path() -> None:
    body = (b'[{"api_key_id":"key_\\u0061bc","user_id":null},{"api_key_id":"key_abc"},'
            b'{"api_key_id":"nope","project_id":"nope"},{"api_key_id":"nope"},{"user_id":{}}]')
    assert not fast_path_applies(body)

    result = amend_json(body, NAMES)

    assert result is not None
    assert (result.named, result.unknown) == (2, 3)
    assert set(result.unknown_ids) == {"nope"}


def test_no_ids_no_counts_and_the_same_body_object() -> None:
    body = b'{"object": "list", "data": []}'
    result = amend_json(body, NAMES)
    assert result == Amended(body)


# Names -------------------------------------------------------------------------------------


def test_names_are_encoded_as_json_utf8_strings() -> None:
    name = 'He said "hi" \\ é 日 😀\n\u2028'
    names = Names.from_aliases({"api_keys": {"k": name}, "projects": {"p": ""}})
    ((key, encoded),) = names.members["api_key_id"]["k"]
    assert key == b"api_key_name"
    assert json.loads(encoded) == name
    assert "é 日 😀".encode() in encoded  # not \u-escaped
    assert names.members["project_id"]["p"] == ((b"project_name", b'""'),)
    assert names.by_field["api_key_id"] == {"k": name}
    assert dict(names.members["user_id"]) == {}


@examples_of(100)
@given(name=st.text(alphabet=ALPHABET, max_size=20))
def test_any_name_round_trips_through_its_encoding(name: str) -> None:
    names = Names.from_aliases({"users": {"u": name}})
    assert json.loads(names.members["user_id"]["u"][0][1]) == name
    assert json.loads(amended(b'{"user_id":"u"}', names))["user_name"] == name


def test_name_with_a_lone_surrogate_is_encoded_as_valid_json() -> None:
    # A JSON alias file may hold "\ud800" (valid JSON); json.loads gives a lone surrogate.
    names = Names.from_aliases({"api_keys": {"k": "a\ud800b"}})
    assert json.loads(names.members["api_key_id"]["k"][0][1]) == "a\ud800b"


def test_count_and_counts() -> None:
    names = Names.from_aliases({"api_keys": {"a": "A", "b": "B"}, "projects": {"p": "P"},
                                "other": {"x": "X"}})
    assert names.count() == 3
    assert names.counts() == {"api_key_id": 2, "project_id": 1, "user_id": 0, "workspace_id": 0, "account_id": 0,
                              "service_account_id": 0}
    assert NO_NAMES.count() == 0
    assert set(NO_NAMES.counts().values()) == {0}


def test_names_snapshot_does_not_follow_later_changes_to_its_source() -> None:
    source = {"api_keys": {"a": "A"}}
    names = Names.from_aliases(source)
    source["api_keys"]["b"] = "B"
    assert names.count() == 1
    with pytest.raises(TypeError):
        names.by_field["api_key_id"]["c"] = "C"  # type: ignore[index]
