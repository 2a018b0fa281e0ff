"""The names part: the alias file (loaded now: a broken file ends the start with one line),
the history of every name learned, the ids still unnamed, and in a worker the first
process's learned names, followed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from orgproxy.body.insertion import Amended
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess
from orgproxy.names.aliasfile import AliasFileError
from orgproxy.names.current import CurrentNames
from orgproxy.names.history import History, Remembered
from orgproxy.names.shared import NamesFollower
from orgproxy.names.textcheck import as_text
from orgproxy.names.unknown import UnknownIds
from orgproxy.names.unknown_shared import SharedUnknownIds
from orgproxy.ops.reload import AliasReloader, off_reactor_thread


@dataclass
class NamesPart:
    current: CurrentNames
    reloader: AliasReloader | None  # None without an alias file
    history: History | None  # None in a worker: the first process keeps it
    unknown: UnknownIds
    shared_unknown: SharedUnknownIds | None  # with --workers
    follower: NamesFollower | None  # a worker's, of the first process's learned names
    notes: list[str] = field(default_factory=list)  # worth a warning at start


def build_names(options: Options, reactor: Any, process: ThisProcess) -> NamesPart:
    current, reloader = load_names(options["aliases"], reactor)
    history, problem = (None, None) if process.is_worker else open_history(options["state-dir"], current, reactor)
    unknown = UnknownIds()
    run = process.run
    shared_unknown = SharedUnknownIds(reactor, run.unknown, unknown) if run is not None else None
    follower = None
    if process.is_worker:
        assert run is not None
        # Names following: by --watch's means, but never off (this is not the operator's file).
        follower = NamesFollower(reactor, run.names, current, "poll" if options["watch"] == "off" else options["watch"])
        follower.load()
    return NamesPart(current, reloader, history, unknown, shared_unknown, follower,
                     [problem] if problem is not None else [])


def load_names(path: str | None, reactor: Any) -> tuple[CurrentNames, AliasReloader | None]:
    """The names from the alias file; a broken file ends the start-up with one line."""
    current = CurrentNames()
    if path is None:
        return current, None
    reloader = AliasReloader(path, current, reactor, off_reactor_thread(reactor))
    try:
        reloader.load_first()
    except AliasFileError as e:
        raise SystemExit(f"orgproxy: alias file: {e}") from None
    return current, reloader


def open_history(directory: str, current: CurrentNames, reactor: Any) -> tuple[History, str | None]:
    """The store of every name learned, its names put in force; a problem to report, if any.

    A state directory that cannot be written (read-only, full, not a directory) does not
    stop the daemon, as it does not once running: it serves, with the names the store
    remembers if it can be read, and keeps no history this run (warned at start).
    """
    try:
        history, problem = History.open(directory, reactor.seconds())
    except (OSError, sqlite3.Error) as e:
        history, remembered, problem = unkept_history(directory, e)
    else:
        try:
            remembered = history.load()
        except OSError as e:
            history.close()
            history, remembered, problem = unkept_history(directory, e)
    learned = as_text((r.learned for r in remembered), "the history")
    current.history = {(r.provider, r.id_field, r.id): r for r in learned}
    current.learned_at.update({(r.learned.provider, r.learned.id_field, r.learned.id): r.last_seen
                               for r in remembered})
    current.rebuild()
    return history, problem


def unkept_history(directory: str, why: Exception) -> tuple[History, list[Remembered], str]:
    """A history kept in memory only, what the store remembers (read without writing),
    and the warning that says so."""
    remembered = History.read_only(directory)
    return History.unkept(directory), remembered, (
        f"--state-dir {directory} cannot be used ({why}): serving without keeping the history of names;"
        f" the {len(remembered)} names it remembers are in force, names learned from now on are"
        " forgotten when the daemon stops")


class SeesUnknownIds(Protocol):
    def unknown_seen(self, unknown_ids: Mapping[str, str]) -> None: ...


def unknown_ids_noted(names: NamesPart, clock: Any, discovery: SeesUnknownIds | None,
                      provider: str = "openai") -> Callable[[Amended], None]:
    """What the proxy does with ids nobody could name in ``provider``'s answers: remember
    them for the report (and for the other processes' reports), and let that provider's
    discovery look for them (in a worker, through the first process)."""
    unknown, shared = names.unknown, names.shared_unknown

    def note(amended: Amended) -> None:
        unknown.record(amended.occurrences, amended.unknown_ids, clock.seconds(), provider)
        if shared is not None:
            shared.changed()
        if discovery is not None:
            discovery.unknown_seen(amended.unknown_ids)
    return note
