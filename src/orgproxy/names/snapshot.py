"""The names the proxy puts beside ids: one immutable snapshot, swapped whole.

Names come from three sources, in order of precedence: the operator's alias file, what
discovery learned from the Admin APIs this run, and the history of everything ever
learned (which keeps deleted keys named). One snapshot serves every provider: the ids
of OpenAI and Anthropic never collide, and the alias tables are shared where the kind of
thing named is the same (``[api_keys]``, ``[users]``). A request takes the snapshot current when it
starts and keeps it to the end, so a rebuild never shows it a half-built map, and a
failed rebuild simply never swaps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orgproxy.fields import (
    ALIAS_TABLES,
    ALL_ID_FIELDS,
    FIELD_SET_OF,
    FIELD_SETS,
    OPENAI_FIELDS,
    SOURCES,
    FieldSet,
)
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


# Each id field's alias table (``users`` names OpenAI's user_id and Anthropic's account_id):
# an id is counted once per table, however many fields it names.
_TABLE_OF: Mapping[str, str] = MappingProxyType(
    {f: t for fs in FIELD_SETS for f, t in fs.alias_table_for_id.items()})


@dataclass(frozen=True)
class Names:
    """id -> name for each id field, and the members to insert for each, prepared once."""

    by_field: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # OpenAI's members; another provider's come from members_for().
    members: Mapping[str, Mapping[str, Members]] = field(default_factory=dict, repr=False)
    by_source: Mapping[str, int] = field(default_factory=dict)  # names each source supplied
    # id field -> name -> every id known by that name, for OpenAI's filters by name
    # (another provider's come from ids_by_name_for()).
    ids_by_name: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)
    # id field -> id -> what discovery or history learned about it (for extra fields).
    records: Mapping[str, Mapping[str, Learned]] = field(default_factory=dict, repr=False)
    # provider -> the API key ids its last whole discovery listed (see build()).
    listed_keys: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)
    # What /health shows, counted once here rather than at every call (see count(), counts()).
    named: int = 0
    named_by_field: Mapping[str, int] = field(default_factory=dict)
    # Work derived from this snapshot and kept with it (the amender's insertions), so
    # that it is done once per snapshot rather than once per request.
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_aliases(cls, aliases: Mapping[str, Mapping[str, str]]) -> Names:
        """A snapshot from an alias map alone, keyed by table (api_keys, projects, users, ...)."""
        return cls.build(aliases)

    @classmethod
    def build(cls, aliases: Mapping[str, Mapping[str, str]] | None = None,
              discovered: Iterable[Learned] = (), history: Iterable[Learned] = (),
              listed_keys: Mapping[str, Collection[str]] | None = None) -> Names:
        """Merge the sources: the alias file's names win over discovery's, which win
        over history's; extra fields (redacted values, emails) come from the most
        recent source that has them. A learned record names its own provider's field
        (an OpenAI service account names nothing in an answer). ``listed_keys``: for each
        provider whose whole discovery has run, the API keys it last listed (a provider
        absent: not known); the others of that provider are marked deleted where its
        fields flag them (OpenAI's ``api_key_deleted``)."""
        learned: dict[str, dict[str, Learned]] = {id_field: {} for id_field in ALL_ID_FIELDS}
        # (alias table, id) -> the source whose name it has, and the one id field it counts
        # under: each id counts once, however many fields its table names.
        name_source: dict[tuple[str, str], str] = {}
        counted_as: dict[tuple[str, str], str] = {}
        for source, records in (("history", history), ("discovered", discovered)):
            for record in records:
                fields = FIELD_SET_OF.get(record.provider)
                if fields is not None and record.id_field in fields.name_field_for_id:
                    for id_field in _fields_named_by(fields, record.id_field):
                        learned[id_field][record.id] = _merged(learned[id_field].get(record.id), record)
                    name_source[(_TABLE_OF[record.id_field], record.id)] = source
                    counted_as[(_TABLE_OF[record.id_field], record.id)] = record.id_field
        by_field: dict[str, dict[str, str]] = {
            id_field: {i: record.name for i, record in records.items()} for id_field, records in learned.items()
        }
        for id_field, table in _TABLE_OF.items():
            for i, name in (aliases or {}).get(table, {}).items():
                by_field[id_field][i] = name
                name_source[(table, i)] = "aliases"
                # The field learned for it, else its table's first (OpenAI's user_id for [users]).
                counted_as.setdefault((table, i), id_field)
        by_source = {source: 0 for source in SOURCES}
        for source in name_source.values():
            by_source[source] += 1
        named_by_field = {id_field: 0 for id_field in ALL_ID_FIELDS}
        for id_field in counted_as.values():
            named_by_field[id_field] += 1
        frozen_records = MappingProxyType({f: MappingProxyType(r) for f, r in learned.items()})
        frozen_by_field = MappingProxyType({f: MappingProxyType(n) for f, n in by_field.items()})
        listed = MappingProxyType({provider: frozenset(ids) for provider, ids in (listed_keys or {}).items()})
        return cls(frozen_by_field, _members_of(OPENAI_FIELDS, frozen_by_field, frozen_records, listed),
                   MappingProxyType(by_source), _ids_by_name(OPENAI_FIELDS, frozen_by_field),
                   frozen_records, listed, len(name_source), MappingProxyType(named_by_field))

    def members_for(self, fields: FieldSet) -> Mapping[str, Mapping[str, Members]]:
        """The members to insert beside each id of ``fields``' provider, made on first use."""
        if fields is OPENAI_FIELDS:
            return self.members
        key = ("members", fields.provider)
        made = self.cache.get(key)
        if made is None:
            made = self.cache[key] = _members_of(fields, self.by_field, self.records, self.listed_keys)
        return made  # type: ignore[no-any-return]

    def ids_by_name_for(self, fields: FieldSet) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
        """For filters by name on ``fields``' provider: id field -> name -> its ids."""
        if fields is OPENAI_FIELDS:
            return self.ids_by_name
        key = ("ids_by_name", fields.provider)
        made = self.cache.get(key)
        if made is None:
            made = self.cache[key] = _ids_by_name(fields, self.by_field)
        return made  # type: ignore[no-any-return]

    def count(self) -> int:
        """How many ids have a name, over all fields (an id named by one alias table for
        two providers' fields, a user in ``[users]``, counts once). Counted by build()."""
        return self.named

    def counts(self) -> dict[str, int]:
        """How many ids have a name, per id field (of every provider), each id counted
        once: under the field discovery or the history learned it for, else (an id only
        the alias file names) under its table's first field, OpenAI's where two providers
        share the table (a ``[users]`` entry counts as a user_id, not as an account_id
        too). So the counts add up to count(). Counted by build()."""
        return dict(self.named_by_field)


def _fields_named_by(fields: FieldSet, id_field: str) -> tuple[str, ...]:
    """The id fields a record learned for ``id_field`` names: its own, and those whose ids
    are its ids (Anthropic's actor ``user_id``, named by what was learned for ``account_id``)."""
    return (id_field, *(alike for alike, like in fields.named_like.items() if like == id_field))


def _merged(old: Learned | None, new: Learned) -> Learned:
    """``new``, keeping the extras of ``old`` that ``new`` lacks."""
    if old is None:
        return new
    return Learned(**{k: getattr(new, k) if getattr(new, k) is not None else getattr(old, k)
                      for k in Learned.__slots__})  # type: ignore[arg-type]


def _members_of(fields: FieldSet, by_field: Mapping[str, Mapping[str, str]],
                records: Mapping[str, Mapping[str, Learned]],
                listed_keys: Mapping[str, Collection[str]]) -> Mapping[str, Mapping[str, Members]]:
    listed = listed_keys.get(fields.provider)
    return MappingProxyType({
        id_field: MappingProxyType({
            i: _members(fields, id_field, name, records[id_field].get(i),
                        deleted=listed is not None and id_field == "api_key_id" and i not in listed
                        and not i.startswith(fields.foreign_id_prefixes.get(id_field, ())))
            for i, name in by_field.get(id_field, {}).items()
        })
        for id_field in fields.name_field_for_id
    })


def _ids_by_name(fields: FieldSet, by_field: Mapping[str, Mapping[str, str]]
                 ) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
    """id field -> name -> every id known by that name, leaving out the ids that carry
    the other provider's prefix (an alias table holds both providers' ids)."""
    ids_by_name: dict[str, Mapping[str, tuple[str, ...]]] = {}
    for id_field in fields.name_field_for_id:
        foreign = fields.foreign_id_prefixes.get(id_field, ())
        grouped: dict[str, list[str]] = {}
        for i, name in by_field.get(id_field, {}).items():
            if not (foreign and i.startswith(foreign)):
                grouped.setdefault(name, []).append(i)
        ids_by_name[id_field] = MappingProxyType({name: tuple(ids) for name, ids in grouped.items()})
    return MappingProxyType(ids_by_name)


def _members(fields: FieldSet, id_field: str, name: str, record: Learned | None, deleted: bool = False) -> Members:
    members = [(fields.name_field_for_id[id_field].encode(), encode_json_string(name))]
    if record is not None:
        for added, attribute in fields.extra_fields[id_field]:
            value = getattr(record, attribute)
            if value is not None:
                members.append((added.encode(), encode_json_string(value)))
    if deleted:
        members.extend((flag.encode(), b"true") for flag in fields.flag_fields.get(id_field, ()))
    return tuple(members)


NO_NAMES = Names.build()


class CurrentNames:
    """The sources of names, the snapshot built from them, and the alias file's state.

    ``names`` is replaced by one assignment whenever a source changes; a request reads it
    once and keeps it.
    """

    def __init__(self, source: str | None = None):
        self.aliases: Mapping[str, Mapping[str, str]] = {}
        # (provider, id field, id) -> what was learned: both providers' discoveries, and
        # the history, kept apart by provider.
        self.discovered: dict[tuple[str, str, str], Learned] = {}
        self.history: dict[tuple[str, str, str], Learned] = {}
        # provider -> the API key ids its last whole discovery listed; a provider is absent
        # until one has run.
        self.listed_keys: dict[str, frozenset[str]] = {}
        self.names: Names = NO_NAMES
        self.source = source  # the alias file, or None when there is none
        self.loaded_at: float | None = None  # when the alias file was loaded (POSIX time)
        self.error: str | None = None  # why the alias file as it is now could not be loaded
        self.checked_at: float | None = None  # when the alias file was last looked at
        self.version = 0  # bumped whenever a source changes and the snapshot is rebuilt
        # Where the alias file names an id: (table, id) -> (file, line), for /orgproxy/names.
        self.alias_origin: Callable[[str, str], tuple[str, int | None] | None] = lambda table, ident: None
        # (provider, id field, id) -> when a discovery last learned it (this run's, or the history's).
        self.learned_at: dict[tuple[str, str, str], float] = {}

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
    for table in ALIAS_TABLES:
        before, after = old.get(table, {}), new.get(table, {})
        added += sum(1 for i in after if i not in before)
        removed += sum(1 for i in before if i not in after)
        changed += sum(1 for i, name in after.items() if i in before and before[i] != name)
    return added, removed, changed
