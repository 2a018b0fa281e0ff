"""The names the proxy puts beside ids: one immutable snapshot, swapped whole.

Names come from three sources, in order of precedence: the operator's alias file, what
discovery learned from the Admin API this run, and the history of everything ever
learned (which keeps deleted keys named). A request takes the snapshot current when it
starts and keeps it to the end, so a rebuild never shows it a half-built map, and a
failed rebuild simply never swaps.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orgproxy.fields import ALIAS_TABLE_FOR_ID, EXTRA_FIELDS, FLAG_FIELDS, NAME_FIELD_FOR_ID, SOURCES
from orgproxy.names.history import Learned

# The members inserted beside one id: (field name, its value as JSON), in order.
Members = tuple[tuple[bytes, bytes], ...]


def encode_json_string(text: str) -> bytes:
    """``text`` as a JSON string, in UTF-8 (or with a \\u escape where UTF-8 has no form)."""
    try:
        return json.dumps(text, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a JSON alias file may spell one as "\ud800") has no UTF-8
        # form; its \u escape is still valid JSON.
        return json.dumps(text).encode("ascii")


@dataclass(frozen=True)
class Names:
    """id -> name for each id field, and the members to insert for each, prepared once."""

    by_field: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    members: Mapping[str, Mapping[str, Members]] = field(default_factory=dict, repr=False)
    by_source: Mapping[str, int] = field(default_factory=dict)  # names each source supplied
    # id field -> name -> every id known by that name, for filters by name
    ids_by_name: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)
    # Work derived from this snapshot and kept with it (the amender's insertions), so
    # that it is done once per snapshot rather than once per request.
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_aliases(cls, aliases: Mapping[str, Mapping[str, str]]) -> Names:
        """A snapshot from an alias map alone, keyed by table (api_keys, projects, users)."""
        return cls.build(aliases)

    @classmethod
    def build(cls, aliases: Mapping[str, Mapping[str, str]] | None = None,
              discovered: Iterable[Learned] = (), history: Iterable[Learned] = (),
              listed_keys: Collection[str] | None = None) -> Names:
        """Merge the sources: the alias file's names win over discovery's, which win
        over history's; extra fields (redacted values, emails) come from the most
        recent source that has them. ``listed_keys``: the API keys the last whole
        discovery listed (None: not known), the others being marked deleted."""
        learned: dict[str, dict[str, Learned]] = {id_field: {} for id_field in NAME_FIELD_FOR_ID}
        name_source: dict[str, dict[str, str]] = {id_field: {} for id_field in NAME_FIELD_FOR_ID}
        for source, records in (("history", history), ("discovered", discovered)):
            for record in records:
                if record.id_field in learned:
                    learned[record.id_field][record.id] = _merged(learned[record.id_field].get(record.id), record)
                    name_source[record.id_field][record.id] = source
        by_field: dict[str, dict[str, str]] = {
            id_field: {i: record.name for i, record in records.items()} for id_field, records in learned.items()
        }
        for id_field, table in ALIAS_TABLE_FOR_ID.items():
            for i, name in (aliases or {}).get(table, {}).items():
                by_field[id_field][i] = name
                name_source[id_field][i] = "aliases"
        members = {
            id_field: MappingProxyType({
                i: _members(id_field, name, learned[id_field].get(i),
                            deleted=id_field == "api_key_id" and listed_keys is not None and i not in listed_keys)
                for i, name in names.items()
            })
            for id_field, names in by_field.items()
        }
        by_source = {source: 0 for source in SOURCES}
        for sources in name_source.values():
            for source in sources.values():
                by_source[source] += 1
        ids_by_name: dict[str, dict[str, tuple[str, ...]]] = {}
        for id_field, names in by_field.items():
            grouped: dict[str, list[str]] = {}
            for i, name in names.items():
                grouped.setdefault(name, []).append(i)
            ids_by_name[id_field] = {name: tuple(ids) for name, ids in grouped.items()}
        return cls(MappingProxyType({f: MappingProxyType(n) for f, n in by_field.items()}),
                   MappingProxyType(members), MappingProxyType(by_source),
                   MappingProxyType({f: MappingProxyType(n) for f, n in ids_by_name.items()}))

    def count(self) -> int:
        """How many ids have a name, over all fields."""
        return sum(len(names) for names in self.by_field.values())

    def counts(self) -> dict[str, int]:
        """How many ids have a name, per id field."""
        return {id_field: len(self.by_field.get(id_field, {})) for id_field in NAME_FIELD_FOR_ID}


def _merged(old: Learned | None, new: Learned) -> Learned:
    """``new``, keeping the extras of ``old`` that ``new`` lacks."""
    if old is None:
        return new
    return Learned(**{k: getattr(new, k) if getattr(new, k) is not None else getattr(old, k)
                      for k in Learned.__slots__})  # type: ignore[arg-type]


def _members(id_field: str, name: str, record: Learned | None, deleted: bool = False) -> Members:
    members = [(NAME_FIELD_FOR_ID[id_field].encode(), encode_json_string(name))]
    if record is not None:
        for added, attribute in EXTRA_FIELDS[id_field]:
            value = getattr(record, attribute)
            if value is not None:
                members.append((added.encode(), encode_json_string(value)))
    if deleted:
        members.extend((flag.encode(), b"true") for flag in FLAG_FIELDS[id_field])
    return tuple(members)


NO_NAMES = Names.build()


class CurrentNames:
    """The sources of names, the snapshot built from them, and the alias file's state.

    ``names`` is replaced by one assignment whenever a source changes; a request reads it
    once and keeps it.
    """

    def __init__(self, source: str | None = None):
        self.aliases: Mapping[str, Mapping[str, str]] = {}
        self.discovered: dict[tuple[str, str], Learned] = {}
        self.history: dict[tuple[str, str], Learned] = {}
        # The API key ids the last whole discovery listed; None until one has run.
        self.listed_keys: frozenset[str] | None = None
        self.names: Names = NO_NAMES
        self.source = source  # the alias file, or None when there is none
        self.loaded_at: float | None = None  # when the alias file was loaded (POSIX time)
        self.error: str | None = None  # why the alias file as it is now could not be loaded
        self.checked_at: float | None = None  # when the alias file was last looked at
        self.version = 0  # bumped whenever a source changes and the snapshot is rebuilt

    def rebuild(self) -> Names:
        """Build a new snapshot from the sources and put it in force."""
        self.names = Names.build(self.aliases, self.discovered.values(), self.history.values(),
                                 self.listed_keys)
        self.version += 1
        return self.names

    def put_aliases(self, aliases: Mapping[str, Mapping[str, str]], built: Names, built_at_version: int) -> None:
        """Put new alias names in force with ``built``, a snapshot made elsewhere (off the
        reactor thread) from them and the other sources as they were at
        ``built_at_version``; rebuilt here if another source has changed since."""
        self.aliases = aliases
        if self.version == built_at_version:
            self.names = built
            self.version += 1
        else:
            self.rebuild()


def diff(old: Mapping[str, Mapping[str, str]], new: Mapping[str, Mapping[str, str]]) -> tuple[int, int, int]:
    """How many ids were added, removed and renamed between two alias maps."""
    added = removed = changed = 0
    for table in ALIAS_TABLE_FOR_ID.values():
        before, after = old.get(table, {}), new.get(table, {})
        added += sum(1 for i in after if i not in before)
        removed += sum(1 for i in before if i not in after)
        changed += sum(1 for i, name in after.items() if i in before and before[i] != name)
    return added, removed, changed
