"""The first process's learned names, for its workers: one file, written whole.

With ``--workers``, only the first process walks the Admin API and writes the history
store. It writes the names it holds from both, of every provider (OpenAI's, Anthropic's),
with the keys each provider's last whole discovery listed (which marks the others
deleted) and how each provider's discovery fares (for ``/health``), to
``<run>/names/names.json`` at start, before any worker exists, and after every walk:
to a temporary file, renamed over the old one. Each worker reads the file as it starts,
then watches it (the alias file's watcher: inotify, else polling twice a second), so a
walk's names are in force in every worker within a second of the walk.

Why a file of its own rather than the workers reading the history store: the store holds
every name ever learned, merged by upserts, so it cannot tell which of them this run's
discovery found (they outrank remembered ones) nor when discovery last worked or failed;
the file carries exactly the first process's two sources and its discovery status, and is
read whole or not at all (a rename is atomic). And the store keeps one process using it,
so SQLite's locking between processes never comes into play, nor can a worker move a
store it finds unusable aside under the first process.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from twisted.application.service import Service

from orgproxy.snapshot import Learned
from orgproxy.names.current import CurrentNames
from orgproxy.infra.logs import log
from orgproxy.infra.rundir import read_whole, write_whole
from orgproxy.infra.watch import FileWatcher, file_stamp

FILENAME = "names.json"
FORMAT = 2  # 2: records carry their provider; listed keys and discovery status per provider
MAX_BYTES = 512 * 1024 * 1024
_FIELDS = tuple(f.name for f in dataclasses.fields(Learned))
NO_DISCOVERY: dict[str, Any] = {"enabled": False}


def _rows(records: Iterable[Learned]) -> list[list[str | None]]:
    return [[getattr(record, f) for f in _FIELDS] for record in records]


def _records(rows: Any) -> dict[tuple[str, str, str], Learned]:
    if not isinstance(rows, list):
        raise ValueError("a list of names was expected")
    records = {}
    for row in rows:
        if (not isinstance(row, list) or len(row) != len(_FIELDS)
                or not all(isinstance(v, str) for v in row[:3])
                or not all(v is None or isinstance(v, str) for v in row[3:])):
            raise ValueError(f"a name's record is malformed: {str(row)[:100]}")
        record = Learned(*row)
        records[(record.provider, record.id_field, record.id)] = record
    return records


def _learned_at(value: Any) -> dict[tuple[str, str, str], float]:
    if not isinstance(value, list) or not all(
            isinstance(row, list) and len(row) == 4 and all(isinstance(v, str) for v in row[:3])
            and isinstance(row[3], (int, float)) for row in value):
        raise ValueError("the times names were learned are malformed")
    return {(provider, id_field, i): float(when) for provider, id_field, i, when in value}


def _listed_keys(value: Any) -> dict[str, frozenset[str]]:
    if not isinstance(value, dict) or not all(
            isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in value.values()):
        raise ValueError("the listed keys are malformed")
    return {provider: frozenset(ids) for provider, ids in value.items()}


class SharedStatus:
    """One provider's discovery status as the first process last wrote it, for a worker's
    ``/health``."""

    def __init__(self, follower: NamesFollower, provider: str):
        self.follower = follower
        self.provider = provider

    def status(self) -> dict[str, Any]:
        return self.follower.discovery.get(self.provider, NO_DISCOVERY)


class NamesPublisher:
    """The first process's side: writes its names and discovery status for the workers."""

    def __init__(self, directory: str, current: CurrentNames,
                 discovery_status: Callable[[], Mapping[str, dict[str, Any]]]):
        self.path = os.path.join(directory, FILENAME)
        self.current = current
        self.discovery_status = discovery_status  # provider -> its discovery's status

    def publish(self) -> None:
        current = self.current
        document = {"format": FORMAT, "history": _rows(current.history.values()),
                    "discovered": _rows(current.discovered.values()),
                    "listed_keys": {provider: sorted(ids) for provider, ids in current.listed_keys.items()},
                    "learned_at": [[*key, when] for key, when in current.learned_at.items()],
                    "discovery": dict(self.discovery_status())}
        # ensure_ascii: a name may hold a lone surrogate (a JSON alias file or page can
        # spell one), which has no UTF-8 form but a \\u escape.
        try:
            write_whole(self.path, json.dumps(document, separators=(",", ":")))
        except OSError as e:
            log.error("Could not share the learned names with the workers ({path}): {error}; they keep"
                      " the names they have", event="names_not_shared", path=self.path, error=e.strerror or str(e))


class NamesFollower(Service):
    """A worker's side: puts the first process's names in force, whenever it writes them.

    ``status()`` is the first process's OpenAI discovery status, and ``status_of(provider)``
    any provider's, for this worker's ``/health``.
    """

    def __init__(self, reactor: Any, directory: str, current: CurrentNames, watch_mode: str):
        self.path = os.path.join(directory, FILENAME)
        self.current = current
        self.seen: Hashable | None = None
        self.discovery: dict[str, dict[str, Any]] = {}  # provider -> its discovery's status
        self.watcher = FileWatcher(reactor, self.path, self.look, watch_mode)

    def status(self) -> dict[str, Any]:
        return self.discovery.get("openai", NO_DISCOVERY)

    def status_of(self, provider: str) -> SharedStatus:
        return SharedStatus(self, provider)

    def startService(self) -> None:
        super().startService()
        self.watcher.start()

    def stopService(self) -> None:
        self.watcher.stop()
        super().stopService()

    def look(self) -> None:
        """Read the file again if it is not the version last read."""
        if file_stamp(self.path) != self.seen:
            self.load()

    def load(self) -> bool:
        """Read the file and put its names in force; on a problem, keep the names in force."""
        self.seen = file_stamp(self.path)
        try:
            document = json.loads(read_whole(self.path, MAX_BYTES))
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError(f"not format {FORMAT}")
            history = _records(document.get("history"))
            discovered = _records(document.get("discovered"))
            listed_keys = _listed_keys(document.get("listed_keys"))
            learned_at = _learned_at(document.get("learned_at"))
            discovery = document.get("discovery")
            if not isinstance(discovery, dict) or not all(isinstance(v, dict) for v in discovery.values()):
                raise ValueError("no discovery status")
        except (OSError, ValueError) as e:
            log.error("Could not read the names the first process learned ({path}): {error}; the names"
                      " in force stay", event="names_not_followed",
                      path=self.path, error=getattr(e, "strerror", None) or str(e))
            return False
        self.current.history = history
        self.current.discovered = discovered
        self.current.listed_keys = listed_keys
        self.current.learned_at = learned_at
        self.current.rebuild()
        self.discovery = discovery
        return True
