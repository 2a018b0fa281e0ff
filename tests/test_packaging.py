"""What ships beside the code: the licence pyproject.toml declares, and the changelog."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import distribution

from tests.conftest import ROOT


def test_the_license_file_is_the_mit_license_pyproject_declares_and_is_installed() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text
    installed = [f for f in distribution("orgproxy").files or () if f.name == "LICENSE"]
    assert [f.read_text() for f in installed] == [text]


def test_the_changelog_keeps_an_unreleased_section_first() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings and headings[0] == "[Unreleased]"
