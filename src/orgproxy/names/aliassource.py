"""What ``--aliases`` names: one alias file, or a directory of them (conf.d style).

In a directory, every ``*.toml`` and ``*.json`` file (not hidden) is read in name order
and the maps merged; one id named in two files is an error that names both. Files are
read as ``aliasfile`` reads them (regular files only, capped), and a directory's files
together are capped as one file is.

``stamp`` tells one version of the source from another without reading it: a watcher
compares stamps to know whether to reload.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from orgproxy.names.aliasfile import (
    FIELDS,
    MAX_BYTES,
    AliasFileError,
    Aliases,
    alias_entry_lines,
    entry_error,
    key_path,
    parse_alias_file,
    read_alias_bytes,
)
from orgproxy.infra.watch import status_stamp
from orgproxy.names.aliaslines import Lines

__all__ = ["AliasSource", "alias_file_names", "read_source", "stamp"]

EXTENSIONS = (".toml", ".json")


@dataclass(frozen=True)
class AliasSource:
    """The merged map, and what each file gave."""

    aliases: Aliases
    names_by_file: Mapping[str, int] = field(default_factory=dict)  # every file read, and its names
    blank_files: frozenset[str] = frozenset()  # files with nothing in them (see parse_alias_file)
    lines_by_file: Mapping[str, Lines] = field(default_factory=dict, repr=False)  # where each entry is

    def count(self) -> int:
        return sum(len(table) for table in self.aliases.values())

    def origin(self, table: str, ident: str) -> tuple[str, int | None] | None:
        """The file that names ``ident`` in ``table`` and the line, or None if no file
        names it. (An entry in no shape aliaslines knows has no line: its file is said
        where there is one file only.)"""
        if ident not in self.aliases.get(table, {}):
            return None
        for file, lines in self.lines_by_file.items():
            line = lines.get((table, ident))
            if line is not None:
                return file, line
        return (next(iter(self.lines_by_file)), None) if len(self.lines_by_file) == 1 else None


def alias_file_names(directory: str) -> list[str]:
    """The alias files of a directory, in the order they are read: ``*.toml`` and
    ``*.json``, not hidden (editors' and Kubernetes' own files are), by name."""
    return sorted(name for name in os.listdir(directory)
                  if not name.startswith(".") and name.lower().endswith(EXTENSIONS))


def read_source(path: str) -> AliasSource:
    """The names of the alias file, or the directory of them, at ``path``.

    Raises AliasFileError naming the file at fault (and, for an id named twice, both).
    """
    try:
        is_directory = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as e:
        raise AliasFileError(path, None, f"cannot read: {e.strerror or e}") from e
    if not is_directory:
        text = read_alias_bytes(path)
        aliases, blank = parse_alias_file(text, path)
        return AliasSource(aliases, {path: _count(aliases)}, frozenset({path} if blank else ()),
                           {path: alias_entry_lines(text, path, aliases)})
    try:
        names = alias_file_names(path)
    except OSError as e:
        raise AliasFileError(path, None, f"cannot read: {e.strerror or e}") from e
    merged: Aliases = {table: {} for table in FIELDS}
    named_in: dict[tuple[str, str], str] = {}
    names_by_file: dict[str, int] = {}
    blank_files: set[str] = set()
    lines_by_file: dict[str, Lines] = {}
    total = 0
    for name in names:
        file = os.path.join(path, name)
        text = read_alias_bytes(file)
        total += len(text)
        if total > MAX_BYTES:
            raise AliasFileError(path, None, f"its alias files together are larger than {MAX_BYTES // (1024 * 1024)}"
                                 " MiB, the most alias files may hold")
        aliases, blank = parse_alias_file(text, file)
        for table, entries in aliases.items():
            for ident, alias in entries.items():
                earlier = named_in.setdefault((table, ident), file)
                if earlier != file:
                    raise entry_error(text, file, table, ident, f"{key_path(table, ident)} is named in {earlier}"
                                      " too; name each id in one file only")
                merged[table][ident] = alias
        names_by_file[file] = _count(aliases)
        lines_by_file[file] = alias_entry_lines(text, file, aliases)
        if blank:
            blank_files.add(file)
    return AliasSource(merged, names_by_file, frozenset(blank_files), lines_by_file)


def _count(aliases: Aliases) -> int:
    return sum(len(table) for table in aliases.values())


def stamp(path: str) -> Hashable | None:
    """What identifies a version of the source at ``path`` (through symlinks): a file's
    device, inode, mtime and size; for a directory, those of each alias file in it.
    None if it is absent."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(status.st_mode):
        return status_stamp(status)
    try:
        names = alias_file_names(path)
    except OSError:
        return None
    files = []
    for name in names:
        try:
            files.append((name, status_stamp(os.stat(os.path.join(path, name)))))
        except OSError:
            files.append((name, None))
    return status.st_dev, status.st_ino, tuple(files)
