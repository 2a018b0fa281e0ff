"""The unknown-ids report of a daemon of several processes: each writes its own, any
answers for all.

Each process keeps the ids it saw unnamed (``unknown.py``) and, with ``--workers``, writes
them to ``<run>/unknown/<pid>.json`` within a second of a change (written whole, renamed
into place). ``GET /orgproxy/unknown``, whichever process answers it, merges its own ids
as they are now with every other process's file: counts add up, first seen is the
earliest and last seen the latest. When a worker ends, the first process takes the ids in
its file into its own and removes the file, so what a worker saw outlives it (but for its
last second, should it be killed).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from orgproxy.names.unknown import Sighting, UnknownIds
from orgproxy.infra.logs import log
from orgproxy.infra.rundir import read_whole, write_whole

FORMAT = 2  # 2: each id says whose answer carried it (the provider)
WRITE_INTERVAL = 1.0  # seconds: a change is shared within this
# A process keeps at most unknown.LIMIT ids, a few hundred bytes each: far below this.
MAX_BYTES = 64 * 1024 * 1024

# (id field, id, first seen, last seen, count, provider)
Row = tuple[str, str, float, float, int, str]


def rows_of(unknown: UnknownIds) -> list[Row]:
    return [(f, i, s.first_seen, s.last_seen, s.count, s.provider) for (f, i), s in unknown.seen.items()]


def add(into: UnknownIds, rows: Iterable[Row], dropped: int) -> None:
    """Count ``rows`` (another process's sightings) in ``into``, within its limit."""
    for id_field, id_value, first_seen, last_seen, count, provider in rows:
        sighting = into.seen.get((id_field, id_value))
        if sighting is not None:
            sighting.first_seen = min(sighting.first_seen, first_seen)
            sighting.last_seen = max(sighting.last_seen, last_seen)
            sighting.count += count
        elif len(into.seen) < into.limit:
            into.seen[(id_field, id_value)] = Sighting(first_seen, last_seen, count, provider)
        else:
            into.dropped += 1
    into.dropped += dropped


def _parse(text: bytes) -> tuple[list[Row], int]:
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not format {FORMAT}")
    dropped, rows = document.get("dropped"), document.get("seen")
    if not isinstance(dropped, int) or not isinstance(rows, list):
        raise ValueError("no dropped count or no list of ids")
    parsed = []
    for row in rows:
        if (not isinstance(row, list) or len(row) != 6 or not isinstance(row[0], str) or not isinstance(row[1], str)
                or not all(isinstance(v, (int, float)) for v in row[2:5]) or not isinstance(row[4], int)
                or not isinstance(row[5], str)):
            raise ValueError(f"an id's record is malformed: {str(row)[:100]}")
        parsed.append((row[0], row[1], float(row[2]), float(row[3]), row[4], row[5]))
    return parsed, dropped


class SharedUnknownIds(Service):
    """This process's unknown ids, written for the others; the merged view, for the report."""

    def __init__(self, reactor: Any, directory: str, unknown: UnknownIds, pid: int | None = None):
        self.reactor = reactor
        self.directory = directory
        self.unknown = unknown
        self.given_pid = pid
        self.dirty = False
        self.writer = LoopingCall(self.write_if_changed)
        self.writer.clock = reactor

    @property
    def pid(self) -> int:
        # Asked each time: twistd makes the service before it daemonises, which forks.
        return os.getpid() if self.given_pid is None else self.given_pid

    def path_of(self, pid: int) -> str:
        return os.path.join(self.directory, f"{pid}.json")

    def changed(self) -> None:
        """This process recorded unknown ids."""
        self.dirty = True

    def startService(self) -> None:
        super().startService()
        self.writer.start(WRITE_INTERVAL, now=False)

    def stopService(self) -> None:
        # No last write: a worker stopping because its first process is gone could
        # write into the next run's directory.
        if self.writer.running:
            self.writer.stop()
        super().stopService()

    def write_if_changed(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        text = json.dumps({"format": FORMAT, "dropped": self.unknown.dropped, "seen": rows_of(self.unknown)},
                          separators=(",", ":"))  # ASCII: an id may hold a lone surrogate
        try:
            write_whole(self.path_of(self.pid), text)
        except OSError as e:
            log.error("Could not share this process's unknown ids ({directory}): {error}",
                      event="unknown_ids_not_shared", directory=self.directory, error=e.strerror or str(e))

    def read(self, path: str) -> tuple[list[Row], int] | None:
        try:
            return _parse(read_whole(path, MAX_BYTES))
        except FileNotFoundError:
            return None  # its worker ended and the first process took it in meanwhile
        except (OSError, ValueError) as e:
            log.warn("Unknown ids of another process not read ({path}): {error}", event="unknown_ids_not_read",
                     path=path, error=getattr(e, "strerror", None) or str(e))
            return None

    def merged(self) -> UnknownIds:
        """Every process's unknown ids: this one's as they are now, the others' as last written."""
        merged = UnknownIds(self.unknown.limit)
        add(merged, rows_of(self.unknown), self.unknown.dropped)
        own = self.path_of(self.pid)
        for path in sorted(glob.glob(os.path.join(glob.escape(self.directory), "*.json"))):
            if path != own and (found := self.read(path)) is not None:
                add(merged, *found)
        return merged

    def absorb(self, pid: int) -> None:
        """Worker ``pid`` ended: its ids become this process's, and its file goes."""
        path = self.path_of(pid)
        found = self.read(path)
        if found is None:
            return
        try:
            os.remove(path)
        except OSError:
            return  # the file stays, and is merged as it is
        add(self.unknown, *found)
        self.changed()
