"""Where each entry of an alias file is written: the line of its id.

``/orgproxy/names`` says which file and line gave an id its name, and neither ``tomllib``
nor ``json`` tells where a value was. The text read here has already been parsed by
``aliasfile`` (the maintained parsers decide what the file means; this only finds where),
so it is valid, and valid alias files hold few shapes: entries under a ``[table]`` header,
dotted keys at the top (``api_keys.key_abc = "..."``), inline tables at the top
(``api_keys = {key_abc = "..."}``), and names that are strings, which may span lines.
JSON is walked with the ``json`` module's own scanner. An entry found in no known shape
simply has no line: the file is still named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from orgproxy.names.aliasfile import _is_json

__all__ = ["alias_lines"]

Lines = dict[tuple[str, str], int]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\\n]|\\.)*"'
_LITERAL = r"'[^'\n]*'"
_KEY = f"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_KEY}(?:[ \t]*\.[ \t]*{_KEY})*"
_KEY_PART = re.compile(_KEY)
_HEADER = re.compile(rf"[ \t]*\[[ \t]*({_DOTTED})[ \t]*\]")
_KEY_VALUE = re.compile(rf"[ \t]*({_DOTTED})[ \t]*=[ \t]*")
_ONE_LINE_STRING = re.compile(f"{_BASIC}|{_LITERAL}")
_SIMPLE_ENTRY = re.compile(rf"[ \t]*({_BARE})[ \t]*=[ \t]*{_BASIC}[ \t]*(?:#.*)?\r?")
_BLANK = re.compile(r"[ \t]*")
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|x([0-9A-Fa-f]{2})|(.))")
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


def alias_lines(text: bytes, path: str) -> Lines:
    """(table, id) -> the 1-based line of its entry, for an alias file ``aliasfile``
    parsed (``path`` picks the format, as it does there)."""
    source = text.decode("utf-8").removeprefix("\ufeff")
    if not source.strip():
        return {}
    return _json_lines(source) if _is_json(path, source) else _toml_lines(source)


# --- TOML ---------------------------------------------------------------------------


def _toml_lines(source: str) -> Lines:
    found: Lines = {}
    table: str | None = None  # the [table] the lines are in; None at the top or in a table of no entries
    at_top = True
    open_string: str | None = None  # the delimiter of a multi-line string the last line left open
    open_inline: str | None = None  # the table of the inline table that string is in, if it is in one
    for number, line in enumerate(source.split("\n"), 1):
        if table is not None and open_string is None:
            simple = _SIMPLE_ENTRY.fullmatch(line)  # most lines: a bare id, a one-line name
            if simple is not None:
                found.setdefault((table, simple.group(1)), number)
                continue
        line = line.removesuffix("\r")
        if open_string is not None:
            end = _string_end(line, 0, open_string)
            if end is None:
                continue
            open_string = None
            if open_inline is not None:  # the inline table goes on after the string
                open_string = _inline_table(line, end, open_inline, number, found, after_value=True)
                open_inline = open_inline if open_string is not None else None
            continue
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            header = _HEADER.match(line)
            parts = _key_parts(header.group(1)) if header is not None and not stripped.startswith("[[") else []
            table, at_top = (parts[0] if len(parts) == 1 else None), False
            continue
        pair = _KEY_VALUE.match(line)
        if pair is None:
            continue
        parts = _key_parts(pair.group(1))
        if not at_top:
            if table is not None and len(parts) == 1:
                found.setdefault((table, parts[0]), number)
            open_string = _skip_string(line, pair.end())[1]
        elif len(parts) == 2:
            found.setdefault((parts[0], parts[1]), number)
            open_string = _skip_string(line, pair.end())[1]
        elif len(parts) == 1 and line.startswith("{", pair.end()):
            open_string = _inline_table(line, pair.end() + 1, parts[0], number, found)
            open_inline = parts[0] if open_string is not None else None
    return found


def _inline_table(line: str, pos: int, table: str, number: int, found: Lines, after_value: bool = False
                  ) -> str | None:
    """Record the keys of ``table``'s inline table from ``pos`` on line ``number`` (just after
    one of its values, if ``after_value``); the delimiter of a multi-line string it leaves
    open at the line's end, if any."""
    while True:
        if after_value:
            pos = _BLANK.match(line, pos).end()  # type: ignore[union-attr]
            if not line.startswith(",", pos):  # "}": the table ends
                return None
            pos += 1
        pair = _KEY_VALUE.match(line, pos)
        if pair is None:
            return None
        parts = _key_parts(pair.group(1))
        if len(parts) == 1:
            found.setdefault((table, parts[0]), number)
        pos, open_string = _skip_string(line, pair.end())
        if open_string is not None:
            return open_string
        after_value = True


def _skip_string(line: str, pos: int) -> tuple[int, str | None]:
    """Where the string value at ``pos`` ends, and the delimiter of a multi-line one that
    does not end on this line (then the position is the line's end)."""
    for delimiter in ('"""', "'''"):
        if line.startswith(delimiter, pos):
            end = _string_end(line, pos + 3, delimiter)
            return (len(line), delimiter) if end is None else (end, None)
    one_line = _ONE_LINE_STRING.match(line, pos)
    return (one_line.end() if one_line is not None else len(line)), None


def _string_end(line: str, pos: int, delimiter: str) -> int | None:
    """Where a multi-line string closed by ``delimiter`` ends on this line (after its run of
    up to five quotes: one or two may be the string's own), or None if it goes on."""
    while True:
        at = line.find(delimiter, pos)
        if at < 0:
            return None
        if delimiter == '"""' and _escaped(line, at):
            pos = at + 1
            continue
        end = at + 3
        while end < len(line) and line[end] == delimiter[0] and end - at < 5:
            end += 1
        return end


def _escaped(line: str, at: int) -> bool:
    backslashes = 0
    while at - backslashes > 0 and line[at - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _key_parts(dotted: str) -> list[str]:
    return [_key_text(m.group(0)) for m in _KEY_PART.finditer(dotted)]


def _key_text(key: str) -> str:
    if key.startswith("'"):
        return key[1:-1]
    if key.startswith('"'):
        return _ESCAPE.sub(_unescaped, key[1:-1])
    return key


def _unescaped(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2) or match.group(3)
    return chr(int(code, 16)) if code else _SIMPLE_ESCAPES.get(match.group(4), match.group(0))


# --- JSON ---------------------------------------------------------------------------


class _JsonWalk:
    """The keys of an alias file's JSON and where they are, by the json module's scanner."""

    def __init__(self, source: str):
        self.source = source
        self.decoder = json.JSONDecoder()
        self.found: Lines = {}
        self.counted_to = 0  # the position lines are counted to
        self.line = 1

    def line_at(self, pos: int) -> int:
        self.line += self.source.count("\n", self.counted_to, pos)
        self.counted_to = pos
        return self.line

    def blank(self, pos: int) -> int:
        while pos < len(self.source) and self.source[pos] in " \t\n\r":
            pos += 1
        return pos

    def walk_object(self, pos: int, on_member: Callable[[str, int, int], int]) -> int:
        """The members of the object at ``pos``: ``on_member(key, where, value_at)`` returns
        where the value ends. Returns where the object ends."""
        pos = self.blank(pos + 1)
        if self.source.startswith("}", pos):
            return pos + 1
        while True:
            key, after = json.decoder.scanstring(self.source, pos + 1)  # type: ignore[attr-defined]
            value_at = self.blank(self.blank(after) + 1)  # past the colon
            pos = self.blank(on_member(key, pos, value_at))
            if not self.source.startswith(",", pos):
                return pos + 1
            pos = self.blank(pos + 1)

    def skip_value(self, pos: int) -> int:
        return int(self.decoder.raw_decode(self.source, pos)[1])

    def top_member(self, key: str, where: int, value_at: int) -> int:
        if self.source.startswith("{", value_at):  # a table: {"api_keys": {"key_abc": "name"}}
            def entry(ident: str, at: int, name_at: int) -> int:
                self.found.setdefault((key, ident), self.line_at(at))
                return self.skip_value(name_at)
            return self.walk_object(value_at, entry)
        self.found.setdefault(("api_keys", key), self.line_at(where))  # the flat form: API keys
        return self.skip_value(value_at)


def _json_lines(source: str) -> Lines:
    walk = _JsonWalk(source)
    start = walk.blank(0)
    if source.startswith("{", start):
        walk.walk_object(start, walk.top_member)
    return walk.found
