"""The line of every entry of an alias file (``aliasfile.alias_entry_lines``, by
``aliaslines``' scanners), what /orgproxy/names says, checked against the maintained parsers
(tomllib and json, through aliasfile): for alias files written in every shape TOML and JSON
allow, it gives exactly the entries they parse, each at the line it was written on (an entry
of an inline table, at the line its table starts)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from orgproxy.fields import ALIAS_TABLE_FOR_ID_PREFIX, ALIAS_TABLES
from orgproxy.names.aliasfile import Aliases, alias_entry_lines, parse_alias_file
from tests.support.properties import property_settings as examples_of

# Text with what TOML must escape (quotes, backslashes), what it need not (non-ASCII, spaces,
# dots, #, =, braces), and no control character but TAB nor lone surrogate (an alias file
# may not name with them, and TOML has no spelling for a lone surrogate).
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\t"), min_size=1,
               max_size=12).filter(lambda t: t.strip())
# What the string scanning is about: runs of quotes, backslashes, what looks like keys.
QUOTY = st.text(st.sampled_from(['"', "'", "\\", " ", "x", "#", "=", "}", "[", "]"]), min_size=1,
                max_size=12).filter(lambda t: t.strip())
# Ids without a provider's prefix, which any table may hold (an id with the prefix of another
# table is refused: tests/names/test_aliasfile.py).
IDS = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True), TEXT, QUOTY).filter(
    lambda i: not i.startswith(tuple(ALIAS_TABLE_FOR_ID_PREFIX)))
TABLE = st.dictionaries(IDS, st.one_of(TEXT, QUOTY), min_size=1, max_size=4)


def basic(text: str, multi_line: bool = False, continued: bool = False) -> str:
    """``text`` as a TOML basic string. Multi-line: a quote escaped only where it would make
    a third in a row (TOML's closing delimiter), and the text on the next line, after a
    newline TOML trims or (``continued``) a line-ending backslash."""
    out: list[str] = []
    raw_quotes = 0  # the quotes just written unescaped
    for c in text:
        if c == '"' and multi_line and raw_quotes < 2:
            out.append(c)
            raw_quotes += 1
            continue
        raw_quotes = 0
        out.append("\\" + c if c in '"\\' else c if (c.isprintable() or (multi_line and c == "\n"))
                   else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
    escaped = "".join(out)
    if not multi_line:
        return f'"{escaped}"'
    return f'"""\\\n{escaped}"""' if continued else f'"""\n{escaped}"""'


def literal_allowed(text: str, multi_line: bool = False) -> bool:
    return ("'''" not in text and not text.endswith("'") if multi_line
            else "'" not in text) and all(c.isprintable() or c == "\t" for c in text)


@dataclass
class Written:
    """A TOML text as it is written, and the line each entry went on."""

    lines: list[str] = field(default_factory=list)
    expected: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def line(self) -> int:
        return len(self.lines) + 1

    def add(self, text: str) -> None:
        self.lines.extend(text.split("\n"))


@st.composite
def toml_alias_files(draw: st.DrawFn) -> tuple[bytes, dict[tuple[str, str], int]]:
    tables = draw(st.dictionaries(st.sampled_from(ALIAS_TABLES), TABLE, min_size=1, max_size=4))
    styles = {table: draw(st.sampled_from(["header", "dotted", "inline"])) for table in tables}
    written = Written()

    def key(text: str) -> str:
        if all(c.isascii() and (c.isalnum() or c in "_-") for c in text) and draw(st.booleans()):
            return text
        if literal_allowed(text) and draw(st.booleans()):
            return f"'{text}'"
        return basic(text)

    def value(text: str) -> str:
        spellings = [basic(text), basic(text, multi_line=True), basic(text, multi_line=True, continued=True)]
        spellings += [f"'{text}'"] if literal_allowed(text) else []
        spellings += [f"'''{text}'''"] if literal_allowed(text, multi_line=True) else []
        return draw(st.sampled_from(spellings))

    def filler() -> None:
        for _ in range(draw(st.integers(0, 2))):
            written.add(draw(st.sampled_from(["", "# a comment", "   ", "# [api_keys] = 'not a table'"])))

    # What is at the top (dotted keys, inline tables) comes before every [table].
    for table, entries in tables.items():
        if styles[table] == "dotted":
            for ident, name in entries.items():
                filler()
                written.expected[(table, ident)] = written.line
                written.add(f"{key(table)} . {key(ident)} = {value(name)}")
        elif styles[table] == "inline":
            filler()
            parts = []
            for ident, name in entries.items():
                written.expected[(table, ident)] = written.line
                parts.append(f"{key(ident)} = {value(name)}")
            written.add(f"{key(table)} = {{ " + ", ".join(parts) + " }")
    for table, entries in tables.items():
        if styles[table] == "header":
            filler()
            written.add(f"[ {key(table)} ]  # the table" if draw(st.booleans()) else f"[{key(table)}]")
            for ident, name in entries.items():
                filler()
                written.expected[(table, ident)] = written.line
                written.add(f"{key(ident)} = {value(name)}" + draw(st.sampled_from(["", "  # the name"])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(written.lines).encode(), written.expected


def parsed_entries(text: bytes, path: str) -> set[tuple[str, str]]:
    aliases, _ = parse_alias_file(text, path)
    return {(table, ident) for table, entries in aliases.items() for ident in entries}


def alias_lines(text: bytes, path: str) -> dict[tuple[str, str], int]:
    aliases: Aliases = parse_alias_file(text, path)[0]
    return alias_entry_lines(text, path, aliases)


@examples_of(200)
@given(toml_alias_files())
def test_every_toml_entry_is_found_on_the_line_it_was_written(written: tuple[bytes, dict[tuple[str, str], int]]
                                                              ) -> None:
    text, expected = written
    assert parsed_entries(text, "aliases.toml") == set(expected)  # the generator writes valid alias files
    assert alias_lines(text, "aliases.toml") == expected


@st.composite
def json_alias_files(draw: st.DrawFn) -> tuple[bytes, dict[tuple[str, str], int]]:
    flat = draw(st.booleans())
    tables = {"api_keys": draw(TABLE)} if flat else draw(
        st.dictionaries(st.sampled_from(ALIAS_TABLES), TABLE, min_size=1, max_size=4))
    ascii_only = draw(st.booleans())
    out: list[str] = []
    expected: dict[tuple[str, str], int] = {}

    def blank() -> None:
        out.append(draw(st.sampled_from(["", " ", "\n", "\n  ", "\r\n\t"])))

    def string(text: str) -> str:
        return json.dumps(text, ensure_ascii=ascii_only)

    def pairs(entries: dict[str, str], table: str) -> None:
        out.append("{")
        for n, (ident, name) in enumerate(entries.items()):
            blank()
            expected[(table, ident)] = "".join(out).count("\n") + 1
            out.append(string(ident))
            blank()
            out.append(":")
            blank()
            out.append(string(name))
            blank()
            out.append("," if n < len(entries) - 1 else "")
        out.append("}")

    blank()
    if flat:
        pairs(tables["api_keys"], "api_keys")
    else:
        out.append("{")
        for n, (table, entries) in enumerate(tables.items()):
            blank()
            out.append(string(table) + ":")
            blank()
            pairs(entries, table)
            out.append("," if n < len(tables) - 1 else "")
        out.append("}")
    blank()
    return "".join(out).encode(), expected


@examples_of(150)
@given(json_alias_files())
def test_every_json_entry_is_found_on_the_line_it_was_written(written: tuple[bytes, dict[tuple[str, str], int]]
                                                              ) -> None:
    text, expected = written
    assert parsed_entries(text, "aliases.json") == set(expected)
    assert alias_lines(text, "aliases.json") == expected


def test_an_entry_named_twice_in_json_keeps_its_first_line() -> None:
    assert alias_lines(b'{"key_a": "A",\n"key_a": "A"}', "aliases.json") == {("api_keys", "key_a"): 1}


def test_the_example_alias_file_has_a_line_for_every_entry() -> None:
    from tests.conftest import ROOT

    text = (ROOT / "etc" / "aliases.toml").read_bytes()
    lines = alias_lines(text, "aliases.toml")
    assert set(lines) == parsed_entries(text, "aliases.toml")
    for (table, ident), number in lines.items():
        assert text.decode().splitlines()[number - 1].startswith((ident, f'"{ident}"')), (table, ident)


def test_lines_inside_a_multi_line_name_are_not_entries() -> None:
    # An escaped quote before two more does not end the name (\"""), nor does a line inside
    # it (after a line-ending backslash) that looks like an entry or a table make one.
    text = "\n".join(['[api_keys]', 'key_a = """a\\"""\\', 'key_fake = "inside the name" \\', '[projects] \\',
                      '"""', "key_b = '''x'''", 'key_c = "C"', '']).encode()
    assert parsed_entries(text, "aliases.toml") == {("api_keys", "key_a"), ("api_keys", "key_b"), ("api_keys", "key_c")}
    assert alias_lines(text, "aliases.toml") == {("api_keys", "key_a"): 2, ("api_keys", "key_b"): 6,
                                                 ("api_keys", "key_c"): 7}
