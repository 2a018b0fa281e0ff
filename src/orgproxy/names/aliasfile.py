"""Parse the operator's alias file, which maps OpenAI ids to human names.

Three formats are accepted, all producing the same result:

* TOML with ``[api_keys]``, ``[projects]`` and ``[users]`` tables (the default);
* JSON with the same structure;
* flat JSON ``{"key_abc": "name", ...}``, kept for an older tool, whose entries
  are all API key names.

Every problem is reported as an :class:`AliasFileError` carrying the 1-based
line of the offending text whenever one can be found, so the operator can go
straight to it.  Neither ``tomllib`` nor ``json`` gives positions for values,
so the lines of semantic errors come from a small scan of the source text.
This module is pure: standard library only, no I/O except in
:func:`load_aliases`.
"""

from __future__ import annotations

import bisect
import datetime
import json
import re
import tomllib
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["FIELDS", "AliasFileError", "Aliases", "parse_aliases", "load_aliases"]

FIELDS = ("api_keys", "projects", "users")

Aliases: TypeAlias = dict[str, dict[str, str]]

# Where a key path (("api_keys",), ("api_keys", "key_a"), ...) is defined:
# every occurrence's line, in document order.
_KeyLines: TypeAlias = dict[tuple[str, ...], list[int]]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")
# Valid scalars (numbers, booleans, dates) contain none of these characters.
_TOML_SCALAR = re.compile(r"[^,\]}#\n]*")
_EXPECTED = "expected " + ", ".join(FIELDS[:-1]) + " or " + FIELDS[-1]


class AliasFileError(Exception):
    """A problem with the alias file, located by path and (when known) line."""

    path: str
    line: int | None
    reason: str

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        # Passing all three to Exception keeps the error picklable and its repr useful.
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


def load_aliases(path: str) -> Aliases:
    """Read the alias file at ``path`` and parse it."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise AliasFileError(path, None, f"cannot read: {e.strerror or e}") from e
    return parse_aliases(text, path)


def parse_aliases(text: bytes, path: str) -> Aliases:
    """Parse alias file contents; ``path`` only names the file and picks the format."""
    source = _decode(text, path)
    if not source.strip():
        # An empty file is a valid "no aliases yet", in either format.
        return _empty()
    if _is_json(path, source):
        return _parse_json(source, path)
    return _parse_toml(source, path)


# --- shared helpers ---------------------------------------------------------


def _empty() -> Aliases:
    return {field: {} for field in FIELDS}


def _decode(text: bytes, path: str) -> str:
    try:
        source = text.decode("utf-8")
    except UnicodeDecodeError as e:
        line = text.count(b"\n", 0, e.start) + 1
        reason = f"not UTF-8 text (byte 0x{text[e.start]:02x} at line {line})"
        raise AliasFileError(path, line, reason) from None
    # Editors on Windows like to add a BOM; it is not part of the first key.
    return source.removeprefix("\ufeff")


def _is_json(path: str, source: str) -> bool:
    lowered = path.lower()
    if lowered.endswith(".toml"):
        return False
    if lowered.endswith(".json"):
        return True
    return source.lstrip().startswith("{")


def _line_of(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _last_line(source: str) -> int:
    # A final newline ends the last line rather than starting an empty one.
    return max(1, source.count("\n") + (0 if source.endswith("\n") else 1))


def _render_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _quote(key)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _type_name(value: object, *, json_names: bool) -> str:
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        if json_names:
            return "number"
        return "integer" if isinstance(value, int) else "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object" if json_names else "table"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    # datetime before date: datetime is a subclass of date.
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    return type(value).__name__


class _Checker:
    """Validates entries and turns problems into located AliasFileErrors."""

    def __init__(
        self, path: str, find_lines: Callable[[], _KeyLines], *, json_names: bool
    ) -> None:
        self.path = path
        # Scanning for lines costs as much as parsing again: only errors pay for it.
        self.find_lines = find_lines
        self.json_names = json_names

    def error(self, key: tuple[str, ...], reason: str, occurrence: int = 0) -> AliasFileError:
        found = self.find_lines().get(key, [])
        line = found[occurrence] if occurrence < len(found) else None
        return AliasFileError(self.path, line, reason)

    def check_table_name(self, table: str) -> None:
        if table not in FIELDS:
            raise self.error((table,), f"unknown table {_quote(table)} ({_EXPECTED})")

    def check_entry(
        self,
        table: str,
        ident: str,
        name: object,
        *,
        where: tuple[str, ...],
        occurrence: int = 0,
    ) -> str:
        """Return ``name`` if it is a usable name for ``ident``; ``where`` locates it."""
        label = f"{table}.{_render_key(ident)}"
        if not ident.strip():
            raise self.error(where, f"{label}: id must not be empty", occurrence)
        if not isinstance(name, str):
            kind = _type_name(name, json_names=self.json_names)
            raise self.error(where, f"{label}: name must be a string, not {kind}", occurrence)
        if not name.strip():
            raise self.error(where, f"{label}: name must not be empty", occurrence)
        return name


# --- TOML -------------------------------------------------------------------


def _parse_toml(source: str, path: str) -> Aliases:
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        raise _toml_syntax_error(str(e), source, path) from None
    except RecursionError:
        raise AliasFileError(path, None, "nested too deeply") from None

    checker = _Checker(path, lambda: _toml_key_lines(source), json_names=False)
    result = _empty()
    for table, entries in data.items():
        checker.check_table_name(table)
        if not isinstance(entries, dict):
            kind = _type_name(entries, json_names=False)
            raise checker.error((table,), f"{table}: must be a table, not {kind}")
        for ident, name in entries.items():
            result[table][ident] = checker.check_entry(
                table, ident, name, where=(table, ident)
            )
    return result


def _toml_syntax_error(message: str, source: str, path: str) -> AliasFileError:
    match = _TOML_POSITION.search(message)
    if match:
        return AliasFileError(path, int(match.group(1)), message[: match.start()])
    match = _TOML_AT_END.search(message)
    if match:
        return AliasFileError(path, _last_line(source), message[: match.start()])
    return AliasFileError(path, None, message)


def _toml_key_lines(source: str) -> _KeyLines:
    """Map each key path defined in (already valid) TOML to the line defining it.

    Anything the scanner does not understand just ends the scan: a missing
    line is reported as None, which beats a wrong one.
    """
    scanner = _TomlScanner(source)
    try:
        scanner.scan()
    except (_ScanError, IndexError, RecursionError):
        pass
    return scanner.lines


class _ScanError(Exception):
    """The scanner met text it does not understand."""


class _TomlScanner:
    """Just enough of a TOML lexer to know where each key is defined.

    It must skip strings, arrays and inline tables properly so that text like
    ``key_a = "x"`` inside a multi-line string is never taken for a key.
    """

    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0
        self.lines: _KeyLines = {}
        self._newlines = [i for i, c in enumerate(source) if c == "\n"]

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def record(self, base: tuple[str, ...], key: tuple[str, ...], line: int) -> None:
        # Dotted keys and headers define their parent tables implicitly; the
        # first definition is the one to point at.
        for n in range(1, len(key) + 1):
            self.lines.setdefault(base + key[:n], [line])

    def skip_blank(self, *, newlines: bool) -> None:
        """Skip spaces and tabs, and also newlines and comments when asked."""
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t":
                self.i += 1
            elif newlines and c in "\r\n":
                self.i += 1
            elif newlines and c == "#":
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            else:
                return

    def expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise _ScanError(token)
        self.i += len(token)

    def scan(self) -> None:
        s = self.s
        current: tuple[str, ...] = ()
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(s):
                return
            start = self.i
            if s[start] == "[":
                is_array = s.startswith("[[", start)
                self.i += 2 if is_array else 1
                current = self.key()
                self.skip_blank(newlines=False)
                self.expect("]]" if is_array else "]")
                self.record((), current, self.line(start))
            else:
                key = self.key()
                self.record(current, key, self.line(start))
                self.skip_blank(newlines=False)
                self.expect("=")
                self.value(current + key, record=True)

    def key(self) -> tuple[str, ...]:
        """Read a possibly dotted key, returning its decoded parts."""
        parts: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            parts.append(self.simple_key())
            self.skip_blank(newlines=False)
            if not self.s.startswith(".", self.i):
                return tuple(parts)
            self.i += 1

    def simple_key(self) -> str:
        s, start = self.s, self.i
        if start >= len(s):
            raise _ScanError("key")
        if s[start] in "\"'":
            self.string()
            raw = s[start : self.i]
            if raw.startswith("'") or "\\" not in raw:
                return raw[1:-1]
            # Let tomllib decode escapes exactly as it did for the real parse.
            return tomllib.loads(f"k = {raw}")["k"]
        match = _BARE_KEY.match(s, start)
        if not match:
            raise _ScanError("key")
        self.i = match.end()
        return match.group()

    def value(self, key: tuple[str, ...], *, record: bool) -> None:
        """Skip one value; inside inline tables, record the keys when asked."""
        self.skip_blank(newlines=False)
        s = self.s
        if self.i >= len(s):
            raise _ScanError("value")
        c = s[self.i]
        if c in "\"'":
            self.string()
        elif c == "[":
            self.i += 1
            self.sequence("]", lambda: self.value(key, record=False))
        elif c == "{":
            self.i += 1
            self.sequence("}", lambda: self.inline_entry(key, record=record))
        else:
            # Numbers, booleans and dates (which may contain a space) end here.
            match = _TOML_SCALAR.match(s, self.i)
            assert match is not None
            if match.end() == self.i:
                raise _ScanError("value")
            self.i = match.end()

    def inline_entry(self, base: tuple[str, ...], *, record: bool) -> None:
        start = self.i
        key = self.key()
        if record:
            self.record(base, key, self.line(start))
        self.skip_blank(newlines=False)
        self.expect("=")
        self.value(base + key, record=record)

    def sequence(self, close: str, item: Callable[[], None]) -> None:
        """Skip comma-separated items up to ``close`` (arrays and inline tables)."""
        while True:
            self.skip_blank(newlines=True)
            if self.s.startswith(close, self.i):
                self.i += 1
                return
            item()
            self.skip_blank(newlines=True)
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith(close, self.i):
                raise _ScanError(close)

    def string(self) -> None:
        s, i = self.s, self.i
        quote = s[i]
        if s.startswith(quote * 3, i):
            end = self._find_close(i + 3, quote * 3, escapes=quote == '"')
            # Up to two quotes may sit just before the closing delimiter.
            extra = 0
            while extra < 2 and s.startswith(quote, end + 3):
                end += 1
                extra += 1
            self.i = end + 3
        else:
            self.i = self._find_close(i + 1, quote, escapes=quote == '"') + 1

    def _find_close(self, i: int, delimiter: str, *, escapes: bool) -> int:
        s = self.s
        while i < len(s):
            if escapes and s[i] == "\\":
                i += 2
            elif s.startswith(delimiter, i):
                return i
            else:
                i += 1
        raise _ScanError(delimiter)


# --- JSON -------------------------------------------------------------------


class _JSONObject(dict[str, Any]):
    """A decoded JSON object that remembers its pairs, duplicates included."""

    pairs: list[tuple[str, Any]]

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _parse_json(source: str, path: str) -> Aliases:
    try:
        data = json.loads(source, object_pairs_hook=_JSONObject)
    except json.JSONDecodeError as e:
        raise AliasFileError(path, e.lineno, e.msg) from None
    except RecursionError:
        raise AliasFileError(path, None, "nested too deeply") from None

    if not isinstance(data, _JSONObject):
        line = _line_of(source, len(source) - len(source.lstrip()))
        kind = _type_name(data, json_names=True)
        raise AliasFileError(path, line, f"top level must be an object, not {kind}")

    checker = _Checker(path, lambda: _json_key_lines(source), json_names=True)
    if not data.pairs:
        return _empty()
    first_key, first_value = data.pairs[0]
    if isinstance(first_value, dict) or (
        not isinstance(first_value, str) and first_key in FIELDS
    ):
        return _structured_json(data, checker)
    return _flat_json(data, checker)


def _structured_json(data: _JSONObject, checker: _Checker) -> Aliases:
    first_key = data.pairs[0][0]
    result = _empty()
    seen_tables: dict[str, int] = {}
    for table, entries in data.pairs:
        occurrence = seen_tables.get(table, 0)
        seen_tables[table] = occurrence + 1
        if isinstance(entries, str):
            raise checker.error(
                (table,),
                f"mixes tables and flat entries ({_quote(first_key)} is an object,"
                f" {_quote(table)} is a string)",
                occurrence,
            )
        checker.check_table_name(table)
        if occurrence:
            raise checker.error((table,), f"duplicate table {_quote(table)}", occurrence)
        if not isinstance(entries, _JSONObject):
            kind = _type_name(entries, json_names=True)
            raise checker.error((table,), f"{table}: must be an object, not {kind}")
        seen_ids: dict[str, int] = {}
        for ident, name in entries.pairs:
            _add_json_entry(result[table], table, ident, name, (table,), seen_ids, checker)
    return result


def _flat_json(data: _JSONObject, checker: _Checker) -> Aliases:
    first_key = data.pairs[0][0]
    result = _empty()
    seen_ids: dict[str, int] = {}
    for ident, name in data.pairs:
        if isinstance(name, dict):
            raise checker.error(
                (ident,),
                f"mixes tables and flat entries ({_quote(first_key)} is a string,"
                f" {_quote(ident)} is an object)",
                seen_ids.get(ident, 0),
            )
        _add_json_entry(result["api_keys"], "api_keys", ident, name, (), seen_ids, checker)
    return result


def _add_json_entry(
    into: dict[str, str],
    table: str,
    ident: str,
    name: object,
    base: tuple[str, ...],
    seen: dict[str, int],
    checker: _Checker,
) -> None:
    """Validate one id/name pair and add it; ``seen`` counts repeats of each id."""
    occurrence = seen.get(ident, 0)
    seen[ident] = occurrence + 1
    name = checker.check_entry(table, ident, name, where=base + (ident,), occurrence=occurrence)
    if ident in into and into[ident] != name:
        # Repeating an id with the same name is harmless; two names is a mistake. The
        # names stay out of the message: it is shown on /health, which shows no names.
        raise checker.error(
            base + (ident,),
            f"{table}.{_render_key(ident)} is given two different names",
            occurrence,
        )
    into[ident] = name


def _json_key_lines(source: str) -> _KeyLines:
    """Map the keys of the top object and of its member objects to their lines.

    The source is known to be valid JSON; any surprise just ends the scan.
    """
    scanner = _JSONScanner(source)
    try:
        scanner.skip_blank()
        scanner.value((), depth=0)
    except (_ScanError, IndexError, ValueError, RecursionError):
        pass
    return scanner.lines


class _JSONScanner:
    """Walks valid JSON noting the line of each key of the first two levels."""

    _BLANK = re.compile(r"[ \t\n\r]*")

    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0
        self.lines: _KeyLines = {}
        self._decoder = json.JSONDecoder()
        self._newlines = [i for i, c in enumerate(source) if c == "\n"]

    def skip_blank(self) -> None:
        match = self._BLANK.match(self.s, self.i)
        assert match is not None
        self.i = match.end()

    def value(self, key: tuple[str, ...], depth: int) -> None:
        if depth < 2 and self.s.startswith("{", self.i):
            self.obj(key, depth)
        else:
            # Deeper levels hold no ids: let the real decoder skip them.
            _, self.i = self._decoder.raw_decode(self.s, self.i)

    def obj(self, base: tuple[str, ...], depth: int) -> None:
        self.i += 1
        while True:
            self.skip_blank()
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return
            if c == ",":
                self.i += 1
                continue
            if c != '"':
                raise _ScanError(c)
            line = bisect.bisect_left(self._newlines, self.i) + 1
            key, self.i = json.decoder.scanstring(self.s, self.i + 1)
            self.lines.setdefault(base + (key,), []).append(line)
            self.skip_blank()
            if not self.s.startswith(":", self.i):
                raise _ScanError(":")
            self.i += 1
            self.skip_blank()
            self.value(base + (key,), depth + 1)
