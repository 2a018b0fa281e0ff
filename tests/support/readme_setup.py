"""What a README section's set-up block makes: for the tests that check the supervisor and
systemd sections make every file and directory their shipped files name."""

from __future__ import annotations

import re


def setup_lines(section: str) -> list[str]:
    """The lines of the README section's shell block that sets it up (the one with
    ``make install``), continuation lines joined."""
    block = re.search(r"^```sh\n((?:(?!```).*\n)*?make install PREFIX=.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block, "the section has no block that installs"
    return block.group(1).replace("\\\n", " ").splitlines()


def made_by(lines: list[str], path: str) -> bool:
    """Whether a line of ``lines`` writes ``path``: installs or copies it there, or writes it."""
    command = r"(?:^|[|&;(]\s*)(?:install|cp)\b[^|&;]*\s"
    return any(re.search(rf"(?:{command}|>\s*){re.escape(path)}(?:\s|\)|$)", line) for line in lines)
