"""The last cost figures: in memory and in ``--state-dir``/costs.json.

Written by the process that fetches (``writer``), after each refresh of either provider;
read by every other process (``--workers``) at its scrapes, again whenever it changes, so
every scrape sees the same values; and read back at start, so a restart keeps the last
values (with their time) until the next refresh. Ids and dollars only: names are drawn at
each scrape, and the admin keys are never in it.
"""

from __future__ import annotations

import os
from decimal import InvalidOperation
from types import MappingProxyType

from orgproxy.costs.figures import CostFigures, ProviderCosts
from orgproxy.infra.logs import log

FILENAME = "costs.json"


class CostStore:
    """The last figures, at most ``most`` series across every provider; the writer's
    ``providers`` (those it refreshes) are shown from the start, as never refreshed."""

    def __init__(self, path: str, writer: bool, most: int, providers: tuple[str, ...] = ()):
        self.path = path
        self.writer = writer
        self.most = most
        self.figures = CostFigures()
        self.stamp: tuple[int, ...] | None = None  # the file as last read
        self.providers = providers

    def load(self) -> None:
        """Read the file if it changed since the last read; a missing one is no figures."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            log.warn("Cannot read the cost series in {path}: {error}", event="cost_store_unreadable",
                     path=self.path, error=e.strerror)
            return
        stamp = (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)
        if stamp == self.stamp:
            return
        self.stamp = stamp  # a broken file is reported once, not at every scrape
        try:
            with open(self.path, "rb") as f:
                self.figures = CostFigures.from_json(f.read(16 * 1024 * 1024))
        except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as e:
            log.warn("Ignoring the cost series in {path}: {error}", event="cost_store_ignored",
                     path=self.path, error=str(e))

    def start(self) -> None:
        """Read the last figures; the writer writes its providers in at once, so that every
        process shows them (as never refreshed) before the first refresh ends."""
        self.load()
        if self.writer and any(p not in self.figures.providers for p in self.providers):
            self.current()
            self.write()

    def current(self) -> CostFigures:
        if not self.writer:
            self.load()
        missing = [p for p in self.providers if p not in self.figures.providers]
        if missing:
            self.figures = CostFigures(MappingProxyType({**self.figures.providers,
                                                         **{p: ProviderCosts() for p in missing}}))
        return self.figures

    def replace(self, provider: str, costs: ProviderCosts) -> None:
        """Keep ``costs`` as ``provider``'s (bounded with the others'), and write them all
        for the other processes (and the next start)."""
        self.figures = self.figures.with_provider(provider, costs, self.most)
        self.write()

    def write(self) -> None:
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.figures.to_json())
            os.replace(temporary, self.path)  # readers see the old file or the new, whole
        except OSError as e:
            log.error("Could not write the cost series to {path}: {error}", event="cost_store_unwritable",
                      path=self.path, error=e.strerror)


def store_path(state_dir: str) -> str:
    return os.path.join(state_dir, FILENAME)
