"""A bar of pages fetched, for a person watching a terminal. tqdm comes with the `report`
extra; without it the report runs the same, with no bar."""

from __future__ import annotations

from typing import Protocol, TextIO


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


def page_bar(stream: TextIO) -> Progress | None:
    """A tqdm bar on ``stream`` if it is a terminal and tqdm is installed, else None
    (a pipe or a log file should not fill with carriage returns)."""
    if not stream.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(desc="pages", unit=" page", file=stream, leave=False)
