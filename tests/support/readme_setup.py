"""The README's fenced blocks (for the test that runs them), and what a section's set-up
block makes: for the tests that check the supervisor and systemd sections make every file
and directory their shipped files name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Fenced:
    opening: int  # the index of its opening fence among the lines
    language: str  # as the fence names it: sh, python, toml, ...
    code: str  # the lines between the fences, each ended by a newline


def fenced_blocks(lines: list[str]) -> Iterator[Fenced]:
    """The blocks whose fence names a language, in order; found line by line (a pattern
    spanning the text backtracks for seconds)."""
    n = 0
    while n < len(lines):
        opening = re.fullmatch(r"```(\w+)", lines[n])
        if opening is None:
            n += 1
            continue
        end = lines.index("```", n + 1)
        yield Fenced(n, opening.group(1), "\n".join(lines[n + 1:end]) + "\n")
        n = end + 1


def setup_lines(section: str) -> list[str]:
    """The lines of the README section's shell block that sets it up (the one with
    ``make install``), continuation lines joined."""
    for block in fenced_blocks(section.splitlines()):
        if block.language == "sh" and re.search(r"^make install PREFIX=", block.code, re.MULTILINE):
            return block.code.replace("\\\n", " ").splitlines()
    raise AssertionError("the section has no block that installs")


def made_by(lines: list[str], path: str) -> bool:
    """Whether a line of ``lines`` writes ``path``: installs or copies it there, or writes it."""
    command = r"(?:^|[|&;(]\s*)(?:install|cp)\b[^|&;]*\s"
    return any(re.search(rf"(?:{command}|>\s*){re.escape(path)}(?:\s|\)|$)", line) for line in lines)
