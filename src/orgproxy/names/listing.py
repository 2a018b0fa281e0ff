"""Every id's name in effect and where it comes from, a page at a time (``/orgproxy/names``).

Pure: the names in force (``CurrentNames``) in, a page of entries out. An entry is one id
of one alias table (``[users]`` names OpenAI's ``user_id`` and Anthropic's ``account_id``
alike: one entry, both fields), so that a page pastes back as an alias file. The ids are
put in order (by alias table, then id) once per snapshot and kept with it, so a page costs
a bisection to its cursor and at most ``SCAN_BUDGET`` ids looked at, however many ids there
are and however few a filter keeps.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orgproxy.fields import ALIAS_TABLES, ID_FIELDS_FOR_TABLE
from orgproxy.names.snapshot import CurrentNames, Names
from orgproxy.names.tomltext import comment_text, has_surrogate, toml_key, toml_string
from orgproxy.times import iso

__all__ = ["MAX_LIMIT", "SCAN_BUDGET", "Entry", "Page", "as_alias_file", "page"]

MAX_LIMIT = 1000  # entries a page holds at most
SCAN_BUDGET = 50_000  # ids a page looks at at most (with a filter, a page may then hold fewer)

_CACHE_KEY = "names_listing"


@dataclass(frozen=True, slots=True)
class Entry:
    table: str
    id: str
    name: str
    fields: tuple[str, ...]  # the id fields it names
    source: str  # "alias", "discovery" or "history"
    provider: str | None = None  # whose discovery learned it (not for an alias)
    file: str | None = None  # an alias's file
    line: int | None = None  # and line, where known
    at: float | None = None  # discovery: when it learned the name; history: when a discovery last did

    def as_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"table": self.table, "fields": list(self.fields), "id": self.id,
                                    "name": self.name, "source": self.source}
        if self.source == "alias":
            shown.update(file=self.file, line=self.line)
        else:
            shown.update({"provider": self.provider,
                          "learned_at" if self.source == "discovery" else "last_seen": iso(self.at)})
        return shown

    def said(self) -> str:
        """Where the name comes from, in words, for a comment."""
        if self.source == "alias":
            return f"alias, {self.file}" + (f":{self.line}" if self.line is not None else "")
        when = iso(self.at) if self.at is not None else "time unknown"
        return f"{self.source} ({self.provider}), " + ("learned " if self.source == "discovery" else "last seen ") + when


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    after: tuple[str, str] | None  # (table, id) the next page starts after; None: this is the last


def _ordered(names: Names) -> Mapping[str, tuple[str, ...]]:
    """Each alias table's ids, in order: made once per snapshot."""
    made = names.cache.get(_CACHE_KEY)
    if made is None:
        made = names.cache[_CACHE_KEY] = {
            table: tuple(sorted({i for f in ID_FIELDS_FOR_TABLE[table] for i in names.by_field.get(f, {})}))
            for table in ALIAS_TABLES}
    return made  # type: ignore[no-any-return]


def page(current: CurrentNames, *, field: str | None = None, text: str | None = None,
         after: tuple[str, str] | None = None, limit: int = MAX_LIMIT, budget: int = SCAN_BUDGET) -> Page:
    """The entries after ``after``, at most ``limit`` of them, having ``field`` among their
    fields (if given) and ``text`` in their id or name, case aside (if given)."""
    names = current.names
    ordered = _ordered(names)
    wanted = text.casefold() if text else None
    tables = [t for t in ALIAS_TABLES if field is None or field in ID_FIELDS_FOR_TABLE[t]]
    if after is not None:
        tables = [t for t in tables if ALIAS_TABLES.index(t) >= ALIAS_TABLES.index(after[0])]
    entries: list[Entry] = []
    looked = 0
    last = after  # the last id looked at: where the next page starts after
    for table in tables:
        ids = ordered[table]
        start = bisect_right(ids, after[1]) if after is not None and after[0] == table else 0
        for position in range(start, len(ids)):
            if looked == budget or len(entries) == limit:
                return Page(entries, last)  # with ids left to look at
            looked += 1
            ident = ids[position]
            last = (table, ident)
            fields = tuple(f for f in ID_FIELDS_FOR_TABLE[table] if ident in names.by_field.get(f, {}))
            if field is not None and field not in fields:
                continue
            name = names.by_field[field or fields[0]][ident]
            if wanted is not None and wanted not in ident.casefold() and wanted not in name.casefold():
                continue
            entries.append(_entry(current, table, ident, name, fields))
    return Page(entries, None)


def _entry(current: CurrentNames, table: str, ident: str, name: str, fields: tuple[str, ...]) -> Entry:
    if ident in current.aliases.get(table, {}):
        file, line = current.alias_origin(table, ident) or (None, None)
        return Entry(table, ident, name, fields, "alias", file=file, line=line)
    for f in fields:
        record = current.names.records.get(f, {}).get(ident)
        if record is not None:
            # (The record's own field: Anthropic's user_id is named by an account_id record.)
            key = (record.provider, record.id_field, ident)
            source = "discovery" if key in current.discovered else "history"
            return Entry(table, ident, name, fields, source, record.provider, at=current.learned_at.get(key))
    return Entry(table, ident, name, fields, "history")  # not reached: a name comes from one of the three


def as_alias_file(entries: Sequence[Entry], more: str | None) -> str:
    """A page as an alias file: each entry's comment says where its name comes from;
    ``more`` is where the next page is, if there is one."""
    lines = ["# The names orgproxy has in effect, as an alias file. Each entry's comment says where",
             "# its name comes from: alias (the file and line), discovery (when it was learned),",
             "# history (when a discovery last listed it). Saved into the alias directory",
             "# (--aliases), the names of discovery and history become your own; an id may be",
             "# named in one file of the directory only."]
    if more is not None:
        lines += ["# This is one page: the next is at", f"#   {comment_text(more)}",
                  "# (save each page as a file of its own)."]
    for table in ALIAS_TABLES:
        in_table = [e for e in entries if e.table == table]
        if not in_table:
            continue
        lines += ["", f"[{table}]"]
        for entry in in_table:
            said = comment_text(entry.said())
            if has_surrogate(entry.id) or has_surrogate(entry.name):
                lines.append(f"# {json.dumps(entry.id)} cannot be written in TOML (its id or name holds a lone"
                             f" surrogate): name it in a .json alias file instead; {said}")
            else:
                lines.append(f"{toml_key(entry.id)} = {toml_string(entry.name)}  # {said}")
    return "\n".join(lines) + "\n"
