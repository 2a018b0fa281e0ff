"""The directory a daemon's processes share with ``--workers``: ``<state-dir>/run``.

It holds what one process writes for the others: the metrics files of prometheus_client's
multiprocess mode (``metrics/``), the names the first process learned (``names/``, see
``names/shared.py``), and each process's unknown ids (``unknown/``, see
``names/unknown_shared.py``). Nothing in it outlives a run: the first process empties it at
start, before its workers exist (a previous run's metrics would otherwise be added to this
one's, as prometheus_client warns), and the workers find it by the same --state-dir. One
daemon per --state-dir, as for the history store. With one process, it is not made at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

NAME = "run"


@dataclass(frozen=True)
class RunDirectory:
    path: str

    @classmethod
    def under(cls, state_dir: str) -> RunDirectory:
        return cls(os.path.join(state_dir, NAME))

    @property
    def metrics(self) -> str:
        return os.path.join(self.path, "metrics")

    @property
    def names(self) -> str:
        return os.path.join(self.path, "names")

    @property
    def unknown(self) -> str:
        return os.path.join(self.path, "unknown")

    def prepare(self) -> None:
        """Make it afresh, empty (the first process, at start). OSError if it cannot."""
        if os.path.lexists(self.path):
            if os.path.isdir(self.path) and not os.path.islink(self.path):
                shutil.rmtree(self.path)
            else:
                os.remove(self.path)
        os.makedirs(self.path, mode=0o700)
        for directory in (self.metrics, self.names, self.unknown):
            os.mkdir(directory, 0o700)

    def check(self) -> None:
        """That the first process made it (a worker, at start). OSError if not."""
        for directory in (self.metrics, self.names, self.unknown):
            if not os.path.isdir(directory):
                raise FileNotFoundError(f"{directory} is missing (the first process makes it at start)")


def write_whole(path: str, text: str) -> None:
    """Write ``text`` (ASCII) to ``path`` so that a reader finds the old file or the new,
    never part of one: a temporary file beside it, renamed over it. OSError if it cannot."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def read_whole(path: str, limit: int) -> bytes:
    """What ``path`` holds; ValueError if more than ``limit`` bytes, OSError if unreadable.
    The files here are orgproxy's own, but a read is bounded all the same."""
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data
