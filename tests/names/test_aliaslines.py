"""Where an alias file's entry is written (names/aliaslines.py), checked on files built
entry by entry, so that the line of each is known: whatever the keys' spelling, strings
holding what looks like keys, comments and blank lines, the faulty entry is found at its
own line (and, in JSON, column)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from orgproxy.names.aliasfile import AliasFileError, parse_aliases
from tests.support.properties import property_settings as examples_of

IDS = st.text(alphabet=st.sampled_from("abcxyz019_-. =#[]\"'\\é"), min_size=1, max_size=8).filter(str.strip)
NAMES = st.text(alphabet=st.sampled_from("ab =#[]{}\"',.\\é"), min_size=1, max_size=8).filter(str.strip)


def toml_key(ident: str, style: int) -> str:
    """``ident`` as a TOML key: bare where it can be, else basic or literal quoted."""
    if style == 0 and ident.replace("_", "").replace("-", "").isalnum() and ident.isascii():
        return ident
    if style == 1 and "'" not in ident:
        return f"'{ident}'"
    return json.dumps(ident)


def toml_value(name: str, style: int) -> str:
    """``name`` as a TOML string: basic, literal, or multi-line with a line continuation
    (spanning lines without holding a newline)."""
    if style == 1 and "'" not in name:
        return f"'{name}'"
    if style == 2:
        return '"""\\\n' + json.dumps(name)[1:-1] + '"""'
    return json.dumps(name)


entries = st.lists(st.tuples(IDS, NAMES, st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
                   min_size=1, max_size=8, unique_by=lambda entry: entry[0])


@examples_of(300)
@given(entries=entries, bad=st.integers(0, 7), dotted=st.booleans())
def test_a_wrong_toml_entry_is_found_at_its_own_line(entries: list[tuple[str, str, int, int, int]], bad: int,
                                                    dotted: bool) -> None:
    bad %= len(entries)
    lines = [] if dotted else ["[users]"]
    wanted = 0
    for i, (ident, name, key_style, value_style, extra) in enumerate(entries):
        if extra == 1:
            lines.append("# users.x = 1  [api_keys]")
        elif extra == 2:
            lines.append("")
        key = ("users . " if dotted else "") + toml_key(ident, key_style)
        if i == bad:
            wanted = len(lines) + 1
            lines.append(f"{key} = 5  # not a string")
        else:
            lines.extend(f"{key} = {toml_value(name, value_style)}".split("\n"))
    try:
        parse_aliases("\n".join(lines).encode(), "aliases.toml")
    except AliasFileError as e:
        assert (e.line, e.column) == (wanted, None), e
        assert e.reason.endswith("name must be a string, not integer")
    else:
        raise AssertionError("the integer name was accepted")


@examples_of(300)
@given(entries=entries, bad=st.integers(0, 7), indent=st.sampled_from([None, 0, 2]))
def test_a_wrong_json_entry_is_found_at_its_line_and_column(entries: list[tuple[str, str, int, int, int]], bad: int,
                                                           indent: int | None) -> None:
    bad %= len(entries)
    table = {ident: (5 if i == bad else name) for i, (ident, name, *_) in enumerate(entries)}
    text = json.dumps({"projects": {"p": "P"}, "users": table}, indent=indent, ensure_ascii=False)
    key = json.dumps(entries[bad][0], ensure_ascii=False) + ":"
    at = text.index(key, text.index('"users"') + 1)
    while text[at - 1] not in "{ \n,":  # a match inside another key's text
        at = text.index(key, at + 1)
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    try:
        parse_aliases(text.encode(), "aliases.json")
    except AliasFileError as e:
        assert (e.line, e.column) == (line, column), e
    else:
        raise AssertionError("the number name was accepted")
