"""What a README section's set-up block makes: for the tests that check the supervisor and
systemd sections make every file and directory their shipped files name."""

from __future__ import annotations

import re


def setup_lines(section: str) -> list[str]:
    """The lines of the README section's shell block that sets it up (the one with
    ``make install``), continuation lines joined."""
    # Fenced blocks found line by line: a pattern spanning the section backtracks for seconds.
    lines = section.splitlines()
    starts = [n for n, line in enumerate(lines) if line == "```sh"]
    for start in starts:
        end = lines.index("```", start + 1)
        block = "\n".join(lines[start + 1:end]) + "\n"
        if re.search(r"^make install PREFIX=", block, re.MULTILINE):
            return block.replace("\\\n", " ").splitlines()
    raise AssertionError("the section has no block that installs")


def made_by(lines: list[str], path: str) -> bool:
    """Whether a line of ``lines`` writes ``path``: installs or copies it there, or writes it."""
    command = r"(?:^|[|&;(]\s*)(?:install|cp)\b[^|&;]*\s"
    return any(re.search(rf"(?:{command}|>\s*){re.escape(path)}(?:\s|\)|$)", line) for line in lines)
