"""Alias files changed as people and tools change them, and the reloads they cause, as
logged: shared by the reload tests (polling, in memory) and the watcher's (inotify)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

EDITED = ('[api_keys]\nkey_1234567890abcdef = "checkout-v2"\nkey_new = "brand-new"\n'
          '[projects]\nproj_abc = "checkout"\n')
BROKEN = '[api_keys]\nkey_1234567890abcdef = 5\n'


def write_atomically(path: Path, text: str) -> None:
    """As editors and config tools do: a new file renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.rename(temporary, path)


def write_in_place(path: Path, text: str) -> None:
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


def repoint(link: Path, target: Path) -> None:
    """As ``ln -sfn`` and deploy tools re-point a symlink: atomically, by rename."""
    new_link = link.with_name(link.name + ".new")
    new_link.symlink_to(target)
    os.rename(new_link, link)


def reloaded(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reloads that put new names in force, as logged."""
    return [e for e in logged if e.get("event") == "aliases_reloaded"]


def not_reloaded(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reloads that kept the old names, as logged."""
    return [e for e in logged if e.get("event") == "aliases_not_reloaded"]
