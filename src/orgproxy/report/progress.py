"""A line on stderr, for a person watching a terminal: how many of the range's days each
provider has covered (the APIs never say how many pages will follow, but the days are
known), pages fetched, and rows read. Drawn in place with a carriage return, at most ten
times a second, and wiped when the report is done; nothing at all where stderr is not a
terminal (a pipe or a log file should not fill with carriage returns), or with --quiet."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """What has been fetched so far; draws nothing (the quiet kind)."""

    def __init__(self) -> None:
        self.pages = 0
        self.rows = 0
        self.provider = ""
        self.days_done = 0
        self.days = 0

    def covering(self, provider: str, days_done: int, days: int) -> None:
        """``provider``'s pages are being fetched, ``days_done`` of its ``days`` so far."""
        self.provider, self.days_done, self.days = provider, days_done, days
        self.shown()

    def fetched(self, rows: int) -> None:
        """A page of ``rows`` rows came."""
        self.pages += 1
        self.rows += rows
        self.shown()

    def shown(self) -> None:
        pass

    def close(self) -> None:
        pass

    def text(self) -> str:
        where = f"{self.provider} {self.days_done} of {self.days} days, " if self.days else ""
        pages = f"{self.pages:,} page" + ("" if self.pages == 1 else "s")
        return f"orgproxy-report: {where}{pages}, {self.rows:,} rows"


class ProgressLine(Progress):
    """The line drawn on ``stream``."""

    INTERVAL = 0.1  # seconds between draws: a fast proxy answers far more pages than that

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.stream = stream
        self.clock = clock
        self.drawn_at: float | None = None
        self.width = 0

    def shown(self) -> None:
        now = self.clock()
        if self.drawn_at is not None and now - self.drawn_at < self.INTERVAL:
            return
        self.drawn_at = now
        self.draw(self.text())

    def draw(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.drawn_at is not None:  # the line wiped: the report's output follows
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def progress_for(stream: TextIO, quiet: bool) -> Progress:
    """A line on ``stream`` if it is a terminal and the user did not ask for quiet."""
    if quiet or not stream.isatty():
        return Progress()
    return ProgressLine(stream)
