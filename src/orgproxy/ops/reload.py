"""Reloading the alias file: on SIGHUP and when the file changes, all or nothing.

A new snapshot is built completely, then swapped in with one assignment. A file that
cannot be loaded leaves the previous names in force and is logged once per version of
the file: the stamp (device, inode, mtime, size) of every version tried is remembered,
broken ones included, so a watcher that keeps asking does not repeat the same error.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorCore, IReactorTime

from orgproxy.ops import metrics
from orgproxy.names.aliasfile import AliasFileError, Aliases, load_aliases
from orgproxy.ops.logs import log
from orgproxy.names.snapshot import CurrentNames, diff
from orgproxy.ops.signals import SignalHandler
from orgproxy.ops.watch import FileWatcher
from orgproxy.plural import counted

Stamp = tuple[int, int, int, int] | None


def stamp(path: str) -> Stamp:
    """What identifies a version of the file at ``path`` (through symlinks); None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class AliasReloader:
    """Loads the alias file into ``current``; keeps the old names when it cannot."""

    def __init__(self, path: str, current: CurrentNames, clock: IReactorTime):
        self.path = path
        self.current = current
        self.clock = clock
        self.seen: Stamp = None

    def load_first(self) -> None:
        """The load at start-up: errors propagate, since there are no names to keep."""
        self.seen = stamp(self.path)
        self.current.aliases = load_aliases(self.path)
        self.current.source = self.path
        self.current.loaded_at = self.clock.seconds()
        self.current.rebuild()

    def reload_if_changed(self) -> None:
        """Reload when the file is not the version last tried (what the watchers call)."""
        self.current.checked_at = self.clock.seconds()
        if stamp(self.path) != self.seen:
            self.reload("the file changed")

    def reload(self, why: str) -> bool:
        """Load the file now; True when the new names are in force."""
        self.seen = stamp(self.path)
        try:
            aliases = load_aliases(self.path)
        except AliasFileError as e:
            metrics.count_alias_reload("failed")
            self.current.error = str(e)
            kept = _count(self.current.aliases)
            log.error("Alias file not reloaded ({why}); the previous {names} stay in force: {error}",
                      why=why, count=kept, names=counted(kept, "name"), error=str(e))
            return False
        metrics.count_alias_reload("ok")
        added, removed, changed = diff(self.current.aliases, aliases)
        self.current.aliases = aliases
        self.current.loaded_at = self.clock.seconds()
        self.current.error = None
        self.current.rebuild()
        log.info("Alias file reloaded ({why}): {names} from {path};"
                 " {added} added, {removed} removed, {changed} changed",
                 why=why, count=_count(aliases), names=counted(_count(aliases), "name"), path=self.path,
                 added=added, removed=removed, changed=changed)
        return True


def _count(aliases: Aliases) -> int:
    return sum(len(table) for table in aliases.values())


class ReloadService(Service):
    """Reloads on SIGHUP, and on changes the watcher reports, while running."""

    def __init__(self, reactor: IReactorCore, reloader: AliasReloader | None, watch: str,
                 also_on_sighup: Sequence[Callable[[str], None]] = ()):
        self.reloader = reloader
        self.also_on_sighup = list(also_on_sighup)  # discovery, the other workers
        # twistd installs no SIGHUP handler, and an unhandled SIGHUP ends the process:
        # ours is installed even with no alias file, so a stray HUP is harmless.
        self.sighup = SignalHandler(reactor, signal.SIGHUP, self.on_sighup)
        self.watcher = (FileWatcher(reactor, reloader.path, reloader.reload_if_changed, watch)
                        if reloader is not None and watch != "off" else None)

    def on_sighup(self) -> None:
        if self.reloader is None:
            log.info("SIGHUP: no alias file to reload")
        else:
            self.reloader.reload("SIGHUP")
        for also in self.also_on_sighup:
            also("SIGHUP")

    def startService(self) -> None:
        super().startService()
        self.sighup.install()
        if self.watcher is not None:
            self.watcher.start()

    def stopService(self) -> None:
        self.sighup.uninstall()
        if self.watcher is not None:
            self.watcher.stop()
        super().stopService()
