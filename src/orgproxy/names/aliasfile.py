"""Parse the operator's alias file, which maps OpenAI and Anthropic ids to human names.

Three formats are accepted, all producing the same result:

* TOML with ``[api_keys]``, ``[projects]``, ``[users]``, ``[workspaces]`` and
  ``[service_accounts]`` tables (the default); Anthropic's ids go in the same tables as
  OpenAI's where the kind matches (``apikey_...`` in ``[api_keys]``, ``user_...`` in
  ``[users]``), their prefixes never colliding;
* JSON with the same structure;
* flat JSON ``{"key_abc": "name", ...}``, kept for an older tool, whose entries
  are all API key names.

Every problem is reported as an :class:`AliasFileError` naming the file and the line
(and, in JSON, the column): syntax errors (and text that is not UTF-8) where the parser
says; a wrong entry where ``aliaslines`` finds it written, with its key path
(``aliases.toml:7: api_keys.key_abc: name must be a string, not integer``).  A name is
text a person reads: one holding a lone surrogate or a control character other than TAB
is refused (``orgproxy.text``). An id whose prefix says it belongs in another table
(``key_...`` under ``[projects]``) is refused, naming that table.  This module is pure:
standard library only, no I/O except in :func:`read_alias_bytes` and :func:`load_aliases`.

A file is read only if it is a regular file, and only up to ``MAX_BYTES``: the path
may name a FIFO (whose ``open`` would wait for a writer forever), a device
(``/dev/zero`` never ends), or a file of gigabytes.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import tomllib
from typing import Any, TypeAlias

from orgproxy.fields import ALIAS_TABLE_FOR_ID_PREFIX, ALIAS_TABLES
from orgproxy.names.aliaslines import Lines, entry_lines, locate
from orgproxy.text import escaped, not_text_because

__all__ = ["FIELDS", "MAX_BYTES", "AliasFileError", "Aliases", "alias_entry_lines", "entry_error", "key_path", "load_alias_file",
           "load_aliases", "parse_alias_file", "parse_aliases", "read_alias_bytes",
           "decode_text", "toml_syntax_error"]

FIELDS = ALIAS_TABLES
# The most an alias file (or a directory of them, together) may hold: a million
# entries take about 35 MiB, far beyond any organization's keys.
MAX_BYTES = 16 * 1024 * 1024

Aliases: TypeAlias = dict[str, dict[str, str]]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")
_ID_PREFIX = re.compile("|".join(map(re.escape, ALIAS_TABLE_FOR_ID_PREFIX)))
_EXPECTED = "expected " + ", ".join(FIELDS[:-1]) + " or " + FIELDS[-1]


class AliasFileError(Exception):
    """A problem with the alias file, located by path, line and (where the parser gives
    one: JSON, TOML syntax) column; a file that cannot be read has neither."""

    path: str
    line: int | None
    reason: str
    column: int | None

    def __init__(self, path: str, line: int | None, reason: str, column: int | None = None) -> None:
        # Passing them all to Exception keeps the error picklable and its repr useful.
        super().__init__(path, line, reason, column)
        self.path = path
        self.line = line
        self.reason = reason
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        if self.column is None:
            return f"{self.path}:{self.line}: {self.reason}"
        return f"{self.path}:{self.line}:{self.column}: {self.reason}"


class _Invalid(Exception):
    """Well-formed content that is not a valid alias map; the message names the key path,
    ``at`` is that path (where to find it written) and ``occurrence`` which of its
    writings (from 0) is at fault, for a key written more than once."""

    def __init__(self, message: str, at: tuple[str, ...] = (), occurrence: int = 0) -> None:
        super().__init__(message)
        self.at = at
        self.occurrence = occurrence


def read_alias_bytes(path: str, limit: int = MAX_BYTES, what: str = "alias files") -> bytes:
    """The bytes of the regular file at ``path`` (through symlinks), at most ``limit``
    (the most ``what`` may hold, an error says).

    Never blocks: opened non-blocking, so a FIFO is refused rather than waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise AliasFileError(path, None, f"cannot read: {e.strerror or e}") from e
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise AliasFileError(path, None, f"cannot read: not a regular file ({_file_kind(status.st_mode)})")
        if status.st_size > limit:
            raise AliasFileError(path, None, f"larger than {_in_mib(limit)}, the most {what} may hold")
        chunks: list[bytes] = []
        size = 0
        # Read to the end, not to the size stat gave: the file may grow meanwhile.
        while chunk := os.read(fd, min(1024 * 1024, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise AliasFileError(path, None, f"larger than {_in_mib(limit)}, the most {what} may hold")
        return b"".join(chunks)
    except OSError as e:
        raise AliasFileError(path, None, f"cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def _in_mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def load_alias_file(path: str, limit: int = MAX_BYTES) -> tuple[Aliases, bool]:
    """Read the alias file at ``path`` and parse it: its map, and whether it is blank
    (see ``parse_alias_file``)."""
    return parse_alias_file(read_alias_bytes(path, limit), path)


def load_aliases(path: str) -> Aliases:
    """Read the alias file at ``path`` and parse it."""
    return load_alias_file(path)[0]


def parse_aliases(text: bytes, path: str) -> Aliases:
    """Parse alias file contents; ``path`` only names the file and picks the format."""
    return parse_alias_file(text, path)[0]


def parse_alias_file(text: bytes, path: str) -> tuple[Aliases, bool]:
    """The alias map in ``text``, and whether the file is blank: nothing but whitespace
    and comments, no table at all. (A file with its tables and no entries is not blank:
    it says on purpose that there are no names.)"""
    source = decode_text(text, path)
    if not source.strip():
        # An empty file is a valid "no aliases yet", in either format.
        return _empty(), True
    is_json = _is_json(path, source)
    try:
        if is_json:
            return _from_json(_load_json(source, path)), False
        data = _load_toml(source, path)
        return _from_toml(data), not data
    except _Invalid as e:
        raise _located(source, is_json, path, str(e), e.at, e.occurrence) from None


def entry_error(text: bytes, path: str, table: str, ident: str, reason: str) -> AliasFileError:
    """An error about the entry ``table.ident`` of the file ``path`` (whose ``text`` has
    parsed), at the line (and column) where it is written: ``reason`` names it."""
    source = decode_text(text, path)
    return _located(source, _is_json(path, source), path, reason, (table, ident), 0)


def alias_entry_lines(text: bytes, path: str, aliases: Aliases) -> Lines:
    """The line of each entry of ``aliases``, what the file ``path``'s ``text`` parsed to."""
    source = decode_text(text, path)
    return entry_lines(source, _is_json(path, source), aliases) if source.strip() else {}


def _located(source: str, is_json: bool, path: str, reason: str, at: tuple[str, ...],
             occurrence: int) -> AliasFileError:
    try:
        position = locate(source, is_json, at, occurrence)
    except ValueError:  # (tomllib's and json's errors are ValueErrors) never hide the reason
        position = None
    line, column = position if position is not None else (None, None)
    return AliasFileError(path, line, reason, column)


# --- shared helpers ---------------------------------------------------------


def _empty() -> Aliases:
    return {field: {} for field in FIELDS}


def decode_text(text: bytes, path: str) -> str:
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


def key_path(table: str, ident: str) -> str:
    """How an error names an entry: ``api_keys.key_abc``, or ``users."a b"``."""
    return f"{table}.{_render_key(ident)}"


def _render_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _quote(key)


def _quote(text: str) -> str:
    # An id may hold what a log line or /health must not show as it is (a lone surrogate,
    # an ESC): as its escape.
    return escaped(json.dumps(text, ensure_ascii=False))


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


def _check_table_name(table: str, occurrence: int = 0) -> None:
    if table not in FIELDS:
        raise _Invalid(f"unknown table {_quote(table)} ({_EXPECTED})", (table,), occurrence)


def _checked_name(table: str, ident: str, name: object, *, json_names: bool) -> str:
    """Return ``name`` if it is a usable name for ``ident`` in ``table``."""
    label = key_path(table, ident)
    at = (table, ident)
    if not ident.strip():
        raise _Invalid(f"{label}: id must not be empty", at)
    prefix = _ID_PREFIX.match(ident)
    if prefix is not None and (owner := ALIAS_TABLE_FOR_ID_PREFIX[prefix.group()]) != table:
        raise _Invalid(f"{label}: an id starting {prefix.group()!r} belongs in [{owner}], not [{table}]", at)
    if not isinstance(name, str):
        kind = _type_name(name, json_names=json_names)
        raise _Invalid(f"{label}: name must be a string, not {kind}", at)
    if not name.strip():
        raise _Invalid(f"{label}: name must not be empty", at)
    why = not_text_because(name)
    if why is not None:
        raise _Invalid(f"{label}: name {why}", at)
    return name


# --- TOML -------------------------------------------------------------------


def _load_toml(source: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        raise toml_syntax_error(str(e), source, path) from None
    except RecursionError:
        raise AliasFileError(path, None, "nested too deeply") from None


def toml_syntax_error(message: str, source: str, path: str) -> AliasFileError:
    # Python 3.11's TOMLDecodeError has no line attribute: the line is in its message.
    match = _TOML_POSITION.search(message)
    if match:
        return AliasFileError(path, int(match.group(1)), message[: match.start()], int(match.group(2)))
    match = _TOML_AT_END.search(message)
    if match:
        # A final newline ends the last line rather than starting an empty one.
        last_line = max(1, source.count("\n") + (0 if source.endswith("\n") else 1))
        return AliasFileError(path, last_line, message[: match.start()])
    return AliasFileError(path, None, message)


def _from_toml(data: dict[str, Any]) -> Aliases:
    result = _empty()
    for table, entries in data.items():
        _check_table_name(table)
        if not isinstance(entries, dict):
            kind = _type_name(entries, json_names=False)
            raise _Invalid(f"{table}: must be a table, not {kind}", (table,))
        for ident, name in entries.items():
            result[table][ident] = _checked_name(table, ident, name, json_names=False)
    return result


# --- JSON -------------------------------------------------------------------


class _JSONObject(dict[str, Any]):
    """A decoded JSON object that remembers its pairs, duplicates included."""

    pairs: list[tuple[str, Any]]

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _load_json(source: str, path: str) -> object:
    try:
        # Keep every pair: an id given twice with two names is an error, not "last wins".
        return json.loads(source, object_pairs_hook=_JSONObject)
    except json.JSONDecodeError as e:
        raise AliasFileError(path, e.lineno, e.msg, e.colno) from None
    except RecursionError:
        raise AliasFileError(path, None, "nested too deeply") from None


def _from_json(data: object) -> Aliases:
    if not isinstance(data, _JSONObject):
        kind = _type_name(data, json_names=True)
        raise _Invalid(f"top level must be an object, not {kind}", ())
    if not data.pairs:
        return _empty()
    first_key, first_value = data.pairs[0]
    if isinstance(first_value, dict) or (
        not isinstance(first_value, str) and first_key in FIELDS
    ):
        return _structured_json(data)
    return _flat_json(data)


def _structured_json(data: _JSONObject) -> Aliases:
    first_key = data.pairs[0][0]
    result = _empty()
    seen_tables: set[str] = set()
    for table, entries in data.pairs:
        occurrence = 1 if table in seen_tables else 0
        if isinstance(entries, str):
            raise _Invalid(
                f"mixes tables and flat entries ({_quote(first_key)} is an object,"
                f" {_quote(table)} is a string)", (table,), occurrence
            )
        _check_table_name(table, occurrence)
        if table in seen_tables:
            raise _Invalid(f"duplicate table {_quote(table)}", (table,), occurrence)
        seen_tables.add(table)
        if not isinstance(entries, _JSONObject):
            kind = _type_name(entries, json_names=True)
            raise _Invalid(f"{table}: must be an object, not {kind}", (table,))
        _add_json_entries(result[table], table, entries.pairs, (table,))
    return result


def _flat_json(data: _JSONObject) -> Aliases:
    first_key = data.pairs[0][0]
    for ident, name in data.pairs:
        if isinstance(name, dict):
            raise _Invalid(
                f"mixes tables and flat entries ({_quote(first_key)} is a string,"
                f" {_quote(ident)} is an object)", (ident,)
            )
    result = _empty()
    _add_json_entries(result["api_keys"], "api_keys", data.pairs, ())
    return result


def _add_json_entries(into: dict[str, str], table: str, pairs: list[tuple[str, Any]],
                      written_under: tuple[str, ...]) -> None:
    """Validate a table's id/name pairs and add them to ``into``, its entries;
    ``written_under``: where they are in the file (a flat file's are at its top level)."""
    written: dict[str, int] = {}  # each id's writings so far, to locate a faulty one
    for ident, name in pairs:
        occurrence = written[ident] = written.get(ident, -1) + 1
        at = written_under + (ident,)
        try:
            name = _checked_name(table, ident, name, json_names=True)
        except _Invalid as e:
            raise _Invalid(str(e), at, occurrence) from None
        if into.get(ident, name) != name:
            # Repeating an id with the same name is harmless; two names is a mistake. The
            # names stay out of the message: it is shown on /health, which shows no names.
            raise _Invalid(f"{table}.{_render_key(ident)} is given two different names", at, occurrence)
        into[ident] = name
