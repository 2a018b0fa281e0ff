"""Ids seen in responses that nobody could name, from either provider: what to add to the
alias file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orgproxy.times import iso
from orgproxy.fields import ALIAS_TABLES, ID_FIELDS_FOR_TABLE
from orgproxy.names.snapshot import Names
from orgproxy.names.tomltext import has_surrogate, toml_key
from orgproxy.plural import counted

# Ids kept at most: a flood of distinct ids must not grow memory without bound.
LIMIT = 10_000


@dataclass(slots=True)
class Sighting:
    first_seen: float
    last_seen: float
    count: int
    provider: str = "openai"  # whose answer carried it


class UnknownIds:
    """(id field, id) -> when and how often it was seen unnamed, since start."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.seen: dict[tuple[str, str], Sighting] = {}
        self.dropped = 0  # distinct ids not kept because the limit was reached

    def record(self, occurrences: Mapping[tuple[str, str], int], unknown_ids: Mapping[str, str],
               now: float, provider: str = "openai") -> None:
        """Note the unknown ones among a response's ids (``occurrences`` counts every id;
        ``provider`` is whose answer it was)."""
        # The unknown ids are few (usually none): looked up in the occurrences of every id,
        # rather than every id checked against them.
        for id_value, id_field in unknown_ids.items():
            times = occurrences.get((id_field, id_value), 0)
            if not times:
                continue
            sighting = self.seen.get((id_field, id_value))
            if sighting is not None:
                sighting.last_seen = now
                sighting.count += times
            elif len(self.seen) < self.limit:
                self.seen[(id_field, id_value)] = Sighting(now, now, times, provider)
            else:
                self.dropped += 1

    def unresolved(self, names: Names) -> list[tuple[str, str, Sighting]]:
        """The ids still without a name, most seen first."""
        rows = [(f, i, s) for (f, i), s in self.seen.items() if i not in names.by_field.get(f, {})]
        rows.sort(key=lambda row: (-row[2].count, row[0], row[1]))
        return rows

    def report(self, names: Names) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"provider": s.provider, "field": f, "id": i, "first_seen": iso(s.first_seen),
                      "last_seen": iso(s.last_seen), "count": s.count} for f, i, s in self.unresolved(names)],
            "dropped": self.dropped,
        }

    def toml_skeleton(self, names: Names, aliases: str | None = None, aliases_is_directory: bool = False) -> str:
        """An alias file of its own listing each unresolved id, every entry commented out
        until named; its comments say where to save it, by what ``--aliases`` names."""
        lines = ["# Ids orgproxy saw but could not name: an alias file of its own, every entry",
                 "# commented out."]
        if aliases is not None and aliases_is_directory:
            lines += ["# Save it into the alias directory orgproxy reads, for example as",
                      f"#   {os.path.join(aliases, 'unknown.toml')}"]
        elif aliases is not None:
            lines += [f"# Save it beside {aliases} in a directory of alias files, and give that",
                      "# directory as --aliases (orgproxy reads every *.toml and *.json in it);",
                      f"# or copy the entries you name into the tables of {aliases}."]
        else:
            lines += ["# Save it into a directory of alias files, and give that directory as",
                      "# --aliases (orgproxy reads every *.toml and *.json in it)."]
        lines += ["# Then write a name between the quotes of an entry and uncomment its line: the",
                  "# names are in force at the next reload (when a file changes, or on SIGHUP).",
                  "# An id may be named in one file of the directory only."]
        rows = self.unresolved(names)
        for table in ALIAS_TABLES:
            fields = ID_FIELDS_FOR_TABLE[table]
            entries = [(i, s) for f, i, s in rows if f in fields]
            if not entries:
                continue
            lines += ["", f"[{table}]"]
            for id_value, s in entries:
                seen = f"seen {counted(s.count, 'time')}, {iso(s.first_seen)} to {iso(s.last_seen)}"
                if has_surrogate(id_value):
                    # TOML has no spelling for a lone surrogate; JSON has.
                    lines.append(f"# {json.dumps(id_value)} cannot be written in TOML (it holds a lone"
                                 f" surrogate): name it in a .json alias file instead; {seen}")
                else:
                    lines.append(f'# {toml_key(id_value)} = ""  # {seen}')
        return "\n".join(lines) + "\n"
