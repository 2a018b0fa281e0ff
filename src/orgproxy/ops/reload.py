"""Reloading the alias file (or directory): on SIGHUP and when it changes, all or nothing.

A new snapshot is built completely, then swapped in with one assignment. The reading,
parsing and building happen off the reactor thread (a large file takes seconds), and
while they do, more SIGHUPs and changes are folded into one more reload once this one
ends. A source that cannot be loaded leaves the previous names in force and is logged
once per version: the stamp of every version tried is remembered, broken ones included,
so a watcher that keeps asking does not repeat the same error.

A file that turns blank (empty, or only comments) while it held names is taken for a
truncated or half-written one, not for an order to drop every name: the names stay, and
``/health`` and the log say why. A file with its tables and no entries clears them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorCore, IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from orgproxy.names.aliasfile import AliasFileError, Aliases
from orgproxy.names.aliassource import AliasSource, read_source, stamp
from orgproxy.snapshot import Learned
from orgproxy.names.current import CurrentNames, diff
from orgproxy.snapshot import Names
from orgproxy.infra import metrics
from orgproxy.infra.logs import log
from orgproxy.infra.signals import SignalHandler
from orgproxy.infra.watch import FileWatcher
from orgproxy.plural import counted

# Runs a function somewhere other than the reactor thread: its result as a Deferred.
OffThread = Callable[..., "Deferred[Any]"]


def off_reactor_thread(reactor: Any) -> OffThread:
    """The reactor's own thread pool where it has one (Twisted starts and stops it with
    the reactor); otherwise, as in tests on a memory reactor, here and now."""
    if IReactorThreads.providedBy(reactor):
        return lambda f, *args: deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
    return maybeDeferred


def prepared(path: str, discovered: list[Learned], history: list[Learned],
             listed_keys: Mapping[str, frozenset[str]]) -> tuple[AliasSource, Names]:
    """The alias source read, and the snapshot its names make with the other sources':
    the slow part of a reload, pure but for reading the files, safe off the reactor."""
    source = read_source(path)
    return source, Names.build(source.aliases, discovered, history, listed_keys)


class AliasReloader:
    """Loads the alias source into ``current``; keeps the old names when it cannot."""

    def __init__(self, path: str, current: CurrentNames, clock: IReactorTime, off_thread: OffThread = maybeDeferred):
        self.path = path
        self.current = current
        self.clock = clock
        self.off_thread = off_thread
        self.seen: Hashable | None = None
        self.names_by_file: dict[str, int] = {}  # what each file gave at the last load in force
        self.running = False
        self.again: str | None = None  # why to reload once more when the running one ends
        self.waiting_for_again: list[Deferred[bool]] = []

    def load_first(self) -> None:
        """The load at start-up, here and now: errors propagate, since there are no names to keep."""
        self.seen = stamp(self.path)
        source = read_source(self.path)
        self.current.aliases = source.aliases
        self.current.alias_origin = source.origin
        self.names_by_file = dict(source.names_by_file)
        self.current.source = self.path
        self.current.loaded_at = self.clock.seconds()
        self.current.rebuild()

    def reload_if_changed(self) -> None:
        """Reload when the source is not the version last tried (what the watchers call)."""
        self.current.checked_at = self.clock.seconds()
        if stamp(self.path) != self.seen:
            self.reload("the file changed")

    def reload(self, why: str) -> Deferred[bool]:
        """Load the source; fires True when the new names are in force. During a reload,
        every further call is folded into one more reload once it ends."""
        done: Deferred[bool] = Deferred()
        if self.running:
            self.again = why
            self.waiting_for_again.append(done)
        else:
            self.start(why, [done])
        return done

    def start(self, why: str, waiting: list[Deferred[bool]]) -> None:
        self.running = True
        self.seen = stamp(self.path)
        current = self.current
        loading = self.off_thread(prepared, self.path, list(current.discovered.values()),
                                  list(current.history.values()), dict(current.listed_keys))
        loading.addBoth(self.loaded, why, current.version, waiting)

    def loaded(self, result: tuple[AliasSource, Names] | Failure, why: str, version: int,
               waiting: list[Deferred[bool]]) -> None:
        in_force = self.put_in_force(result, why, version)
        self.running = False
        for done in waiting:
            done.callback(in_force)
        if self.again is not None:
            why, self.again = self.again, None
            waiting, self.waiting_for_again = self.waiting_for_again, []
            self.start(why, waiting)

    def put_in_force(self, result: tuple[AliasSource, Names] | Failure, why: str, version: int) -> bool:
        if isinstance(result, Failure):
            if not result.check(AliasFileError):
                log.failure("Alias file not reloaded ({why}): unexpected error", result, event="aliases_not_reloaded",
                            why=why)
                return self.keep(why, "unexpected error while reading (see the log)")
            return self.keep(why, str(result.value))
        source, built = result
        emptied = sorted((file, self.names_by_file[file]) for file in source.blank_files
                         if self.names_by_file.get(file, 0) > 0)
        if emptied:
            file, held = emptied[0]
            return self.keep(why, f"{file}: empty, where it held {counted(held, 'name')}; taken for a truncated or"
                                  " half-written file, so the names stay in force (to clear them, leave the"
                                  " file's tables in it with no entries)")
        metrics.count_alias_reload("ok")
        added, removed, changed = diff(self.current.aliases, source.aliases)
        self.current.put_aliases(source.aliases, built, version)
        self.current.alias_origin = source.origin
        self.names_by_file = dict(source.names_by_file)
        self.current.loaded_at = self.clock.seconds()
        self.current.error = None
        log.info("Alias file reloaded ({why}): {names} from {path};"
                 " {added} added, {removed} removed, {changed} changed",
                 event="aliases_reloaded",
                 why=why, count=source.count(), names=counted(source.count(), "name"), path=self.path,
                 added=added, removed=removed, changed=changed)
        return True

    def keep(self, why: str, error: str) -> bool:
        metrics.count_alias_reload("failed")
        self.current.error = error
        kept = _count(self.current.aliases)
        log.error("Alias file not reloaded ({why}); the previous {names} stay in force: {error}",
                  event="aliases_not_reloaded", why=why, count=kept, names=counted(kept, "name"), error=error)
        return False


def _count(aliases: Aliases) -> int:
    return sum(len(table) for table in aliases.values())


class ReloadsFile(Protocol):
    """Another file read again on SIGHUP and when it changes (the budgets)."""

    path: str

    def reload(self, why: str) -> object: ...

    def reload_if_changed(self) -> None: ...


class ReloadService(Service):
    """Reloads on SIGHUP, and on changes the watchers report, while running: the alias
    source, and ``more_files``."""

    def __init__(self, reactor: IReactorCore, reloader: AliasReloader | None, watch: str,
                 also_on_sighup: Sequence[Callable[[str], None]] = (), more_files: Sequence[ReloadsFile] = ()):
        self.reloader = reloader
        self.also_on_sighup = list(also_on_sighup)  # discovery, the other workers
        self.more_files = list(more_files)
        # twistd installs no SIGHUP handler, and an unhandled SIGHUP ends the process:
        # ours is installed even with no alias file, so a stray HUP is harmless.
        self.sighup = SignalHandler(reactor, signal.SIGHUP, self.on_sighup)
        self.watcher = (FileWatcher(reactor, reloader.path, reloader.reload_if_changed, watch)
                        if reloader is not None and watch != "off" else None)
        self.more_watchers = ([FileWatcher(reactor, file.path, file.reload_if_changed, watch)
                               for file in self.more_files] if watch != "off" else [])

    def on_sighup(self) -> None:
        if self.reloader is None:
            log.info("SIGHUP: no alias file to reload", event="no_aliases_to_reload")
        else:
            self.reloader.reload("SIGHUP")
        for file in self.more_files:
            file.reload("SIGHUP")
        for also in self.also_on_sighup:
            also("SIGHUP")

    def startService(self) -> None:
        super().startService()
        self.sighup.install()
        for watcher in self.watchers():
            watcher.start()

    def stopService(self) -> None:
        self.sighup.uninstall()
        for watcher in self.watchers():
            watcher.stop()
        super().stopService()

    def watchers(self) -> list[FileWatcher]:
        return [*([self.watcher] if self.watcher is not None else []), *self.more_watchers]
