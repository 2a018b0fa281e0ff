"""Where an entry of an alias file is written: its line (and, in JSON, its column), for
the messages about it.

``tomllib`` and ``json`` say where a syntax error is, but nothing about where a value they
parsed came from, so a wrong entry (a name that is an integer, an id under the wrong
table) would be reported by its key path alone. The scanners here walk text that has
already parsed, statement by statement (TOML) or token by token (JSON), and tell each key
path's position; a key inside a string, a comment or a multi-line array is never taken
for one. Pure: standard library only.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping

__all__ = ["Lines", "Position", "entry_lines", "json_keys", "locate", "toml_keys"]

Path = tuple[str, ...]
Position = tuple[int, int | None]  # line, column (both from 1; no column for TOML)
Lines = dict[tuple[str, str], int]  # (table, id) -> line

_TOML_TOKEN = re.compile(r'''
    (?P<string>"""(?:[^"\\]|\\.|"(?!""))*"{3,5}     # multi-line basic: up to two quotes end its text
      |'\'\'(?:[^']|'(?!''))*'{3,5}                   # multi-line literal
      |"(?:[^"\\\n]|\\.)*"                            # basic
      |'[^'\n]*')                                     # literal
    |(?P<comment>\#[^\n]*)
    |(?P<newline>\n)
    |(?P<open>[\[{])
    |(?P<close>[\]}])
    |(?P<equals>=)
    |(?P<blank>[ \t\r]+)
    |(?P<other>[^\s\[\]{}=\#"']+)                    # bare keys, dots, commas, numbers, dates
''', re.VERBOSE | re.DOTALL)
_SIMPLE_STATEMENT = re.compile(r'([A-Za-z0-9_-]+)[ \t]*=[ \t]*"(?:[^"\\\n]|\\.)*"[ \t]*(?:\#[^\n]*)?(?:\r?\n|\Z)')
_BARE_PATH = re.compile(r"[A-Za-z0-9_-]+(?:[ \t]*\.[ \t]*[A-Za-z0-9_-]+)*")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]', re.DOTALL)


def locate(source: str, is_json: bool, path: Path, occurrence: int = 0) -> Position | None:
    """Where the entry at ``path`` is written (the ``occurrence``-th time, from 0, for a
    key given more than once): the statement or key that sets it, else the first one
    below it (a dotted key ``u.first`` is where ``u`` is), else the statement that holds
    it (an inline table); the empty path is the text's first key; None if nowhere."""
    keys = json_keys(source) if is_json else toml_keys(source)
    below: Position | None = None
    holder: Position | None = None
    seen = 0
    for key, position in keys:
        if key == path:
            if seen == occurrence:
                return position
            seen += 1
        elif key[:len(path)] == path:
            below = below or position
        elif holder is None and path[:len(key)] == key:
            holder = position
    return below or holder


def entry_lines(source: str, is_json: bool, aliases: Mapping[str, Mapping[str, str]]) -> Lines:
    """The line of each entry of ``aliases``, what ``source`` parsed to (one scan, for
    /orgproxy/names): an entry of an inline table at its table's statement, the flat JSON
    form's under ``api_keys``."""
    lines: dict[Path, int] = {}
    for key, (line, _) in (json_keys(source) if is_json else toml_keys(source)):
        lines.setdefault(key, line)
    flat = is_json and not any(len(key) == 2 for key in lines)
    found: Lines = {}
    for table, entries in aliases.items():
        for ident in entries:
            line = lines.get((ident,)) if flat else (lines.get((table, ident)) or lines.get((table,)))
            if line is not None:
                found[(table, ident)] = line
    return found


def toml_keys(source: str) -> Iterator[tuple[Path, Position]]:
    """Every table header's path and every key/value statement's whole path (the table's
    and its own dotted key), with its line, in the order written."""
    table: Path = ()
    line = 1
    tokens = _TOML_TOKEN.finditer(source)
    while (token := next(tokens, None)) is not None:
        kind = token.lastgroup
        if kind == "newline":
            line += 1
            continue
        if kind in ("blank", "comment"):
            continue
        start = line
        # Most statements, a bare id and a one-line name, read at once rather than by token:
        # every load of a file of a million entries scans it (for /orgproxy/names).
        simple = _SIMPLE_STATEMENT.match(source, token.start()) if kind == "other" else None
        if simple is not None:
            yield table + (simple.group(1),), (start, None)
            line += simple.group().endswith("\n")
            tokens = _TOML_TOKEN.finditer(source, simple.end())
            continue
        if kind == "open":  # a header: [table] or [[array]]
            key_text, line = _until(tokens, "close", line, skip_open=True)
            table = _key_path(key_text)
            yield table, (start, None)
            line = _rest_of_line(tokens, line)
        else:  # key = value
            key_text, line = _until(tokens, "equals", line, first=token.group())
            yield table + _key_path(key_text), (start, None)
            line = _value(tokens, line)


def _until(tokens: Iterator[re.Match[str]], end: str, line: int, first: str = "",
           skip_open: bool = False) -> tuple[str, int]:
    """The text of the tokens before the next ``end`` token (a key), and the line after."""
    text = [first]
    for token in tokens:
        kind = token.lastgroup
        if kind == end:
            break
        if kind == "open" and skip_open:
            continue  # the second bracket of [[array]]
        if kind == "newline":
            line += 1
        text.append(token.group())
    return "".join(text), line


def _rest_of_line(tokens: Iterator[re.Match[str]], line: int) -> int:
    for token in tokens:
        if token.lastgroup == "newline":
            return line + 1
    return line


def _value(tokens: Iterator[re.Match[str]], line: int) -> int:
    """Skip a value (arrays may span lines; strings may hold anything), to the line after."""
    depth = 0
    for token in tokens:
        kind = token.lastgroup
        if kind == "string":
            line += token.group().count("\n")
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif kind == "newline":
            line += 1
            if depth <= 0:
                return line
    return line


def _key_path(text: str) -> Path:
    """A TOML key (``a.b``, ``"a b".'c'``) as its path of names."""
    text = text.strip()
    if _BARE_PATH.fullmatch(text):
        return tuple(part.strip() for part in text.split("."))
    path: list[str] = []
    node = tomllib.loads(text + " = 0")
    while isinstance(node, dict) and len(node) == 1:
        name, node = next(iter(node.items()))
        path.append(name)
    return tuple(path)


def json_keys(source: str) -> Iterator[tuple[Path, Position]]:
    """Every object key's path with its line and column, in the order written; the empty
    path first, at the document's first token."""
    stack: list[tuple[str, Path]] = []  # each open container: its kind and its path
    expecting_key = False
    last_key: Path = ()
    line, line_start, counted_to = 1, 0, 0
    first = re.search(r"\S", source)
    if first is not None:
        line, line_start = _line_of(source, first.start(), line, line_start, counted_to)
        counted_to = first.start()
        yield (), (line, first.start() - line_start + 1)
    for token in _JSON_TOKEN.finditer(source):
        text, at = token.group(), token.start()
        if text == "{" or text == "[":
            stack.append((text, last_key if stack and stack[-1][0] == "{" else (stack[-1][1] if stack else ())))
            expecting_key = text == "{"
        elif text == "}" or text == "]":
            stack.pop()
            expecting_key = False
        elif text == ",":
            expecting_key = bool(stack) and stack[-1][0] == "{"
        elif text == ":":
            expecting_key = False
        elif expecting_key:  # a string where a key goes
            line, line_start = _line_of(source, at, line, line_start, counted_to)
            counted_to = at
            last_key = stack[-1][1] + (json.loads(text),)
            yield last_key, (line, at - line_start + 1)
            expecting_key = False


def _line_of(source: str, at: int, line: int, line_start: int, counted_to: int) -> tuple[int, int]:
    """The line of ``at`` and where it starts, counting on from a known line."""
    newlines = source.count("\n", counted_to, at)
    if newlines:
        line += newlines
        line_start = source.rfind("\n", counted_to, at) + 1
    return line, line_start
