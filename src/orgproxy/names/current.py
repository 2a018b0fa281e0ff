"""The names in force: the sources of names, the snapshot built from them (swapped whole,
in one assignment, whenever a source changes), and the alias file's state."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orgproxy.fields import ALIAS_TABLES
from orgproxy.snapshot import NO_NAMES, Learned, Names


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
