"""The names the proxy puts beside ids: one immutable snapshot, swapped whole on reload.

A request takes the snapshot current when it starts and keeps it to the end, so a reload
never shows it a half-built map, and a failed reload simply never swaps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Each id field OpenAI sends, and the name field the proxy adds beside it.
NAME_FIELD_FOR_ID: Mapping[str, str] = MappingProxyType(
    {"api_key_id": "api_key_name", "project_id": "project_name", "user_id": "user_name"}
)
# The alias file's table for each id field.
ALIAS_TABLE_FOR_ID: Mapping[str, str] = MappingProxyType(
    {"api_key_id": "api_keys", "project_id": "projects", "user_id": "users"}
)


def _encode_name(name: str) -> bytes:
    # Prepared once per snapshot, so amending a page is a dictionary lookup per id.
    try:
        return json.dumps(name, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a JSON alias file may spell one as "\ud800") has no UTF-8
        # form; its \u escape is still valid JSON.
        return json.dumps(name).encode("ascii")


@dataclass(frozen=True)
class Names:
    """id -> name for each id field, with each name already encoded as a JSON string."""

    by_field: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    encoded: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_aliases(cls, aliases: Mapping[str, Mapping[str, str]]) -> Names:
        """Build a snapshot from an alias map keyed by table (api_keys, projects, users)."""
        by_field = {
            id_field: MappingProxyType(dict(aliases.get(table, {})))
            for id_field, table in ALIAS_TABLE_FOR_ID.items()
        }
        encoded = {
            id_field: MappingProxyType({i: _encode_name(n) for i, n in names.items()})
            for id_field, names in by_field.items()
        }
        return cls(MappingProxyType(by_field), MappingProxyType(encoded))

    def count(self) -> int:
        """How many ids have a name, over all fields."""
        return sum(len(names) for names in self.by_field.values())

    def counts(self) -> dict[str, int]:
        """How many ids have a name, per id field."""
        return {id_field: len(self.by_field.get(id_field, {})) for id_field in NAME_FIELD_FOR_ID}


NO_NAMES = Names.from_aliases({})


class CurrentNames:
    """The snapshot in force, and the state of the alias file it came from.

    ``names`` is replaced by one assignment; a request reads it once and keeps it.
    """

    def __init__(self, names: Names = NO_NAMES, source: str | None = None,
                 loaded_at: float | None = None):
        self.names = names
        self.source = source  # the alias file, or None when there is none
        self.loaded_at = loaded_at  # when ``names`` was loaded from it (POSIX time)
        self.error: str | None = None  # why the file as it is now could not be loaded
        self.checked_at: float | None = None  # when the file was last looked at for changes


def diff(old: Names, new: Names) -> tuple[int, int, int]:
    """How many ids were added, removed and renamed from ``old`` to ``new``."""
    added = removed = changed = 0
    for id_field in NAME_FIELD_FOR_ID:
        before, after = old.by_field.get(id_field, {}), new.by_field.get(id_field, {})
        added += sum(1 for i in after if i not in before)
        removed += sum(1 for i in before if i not in after)
        changed += sum(1 for i, name in after.items() if i in before and before[i] != name)
    return added, removed, changed
