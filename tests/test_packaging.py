"""What ships: the licence pyproject.toml declares, the changelog, ``make install``'s steps,
and the sdist and wheel ``python -m build`` makes (twine's checks, the project's metadata).
The wheel installed into a fresh venv and run: tests/process/test_install.py."""

from __future__ import annotations

import email
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib.metadata import distribution
from pathlib import Path

from tests.conftest import ROOT
from tests.support.install import PLUGIN_CACHE, Built, built, planned_install, system_python

__all__ = ["built"]  # the session's build, a fixture


def test_the_license_file_is_the_mit_license_pyproject_declares_and_is_installed() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text
    installed = [f for f in distribution("orgproxy").files or () if f.name == "LICENSE"]
    assert [f.read_text() for f in installed] == [text]


def test_the_changelog_keeps_an_unreleased_section_first() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings and headings[0] == "[Unreleased]"


# --- make install, and the sdist and wheel a release is made of ----------------------------

def test_make_install_makes_a_venv_of_the_system_python_installs_and_builds_the_plugin_cache() -> None:
    make_venv, install, cache = planned_install("PREFIX=/opt/orgproxy")
    python = shlex.split(make_venv)[3]
    assert make_venv == f"umask 022 && {python} -m venv /opt/orgproxy/.venv"
    assert python == system_python()  # the first of /usr/bin/python3.11, /usr/bin/python3, ...
    assert not os.path.realpath(python).startswith((os.path.expanduser("~") + "/", "/root/", "/home/"))
    assert install == "umask 022 && /opt/orgproxy/.venv/bin/pip install --quiet --upgrade ."  # not editable
    assert shlex.split(cache)[3:] == ["/opt/orgproxy/.venv/bin/python", "-c", PLUGIN_CACHE]
    # And another Python when asked.
    assert planned_install("PREFIX=/srv/o", "INSTALL_PYTHON=/usr/bin/python3")[0] == (
        "umask 022 && /usr/bin/python3 -m venv /srv/o/.venv")


def test_make_install_refuses_a_python_under_a_home_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    python = home / "bin" / "python3"  # a pyenv shim, or ~/.local/bin's
    python.write_text(f"#!/bin/sh\nexec {system_python()} \"$@\"\n")
    python.chmod(0o755)
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"PREFIX={tmp_path / 'opt'}",
                           f"INSTALL_PYTHON={python}"], env={**os.environ, "HOME": str(home)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert f"make install: {python} is under a home directory" in done.stderr
    assert not (tmp_path / "opt").exists()


def test_the_readme_names_the_plugin_cache_step_make_install_takes() -> None:
    assert f"python -c '{PLUGIN_CACHE}'" in (ROOT / "README.md").read_text()


def test_the_sdist_and_the_wheel_pass_twine_check_with_the_projects_metadata(built: Built) -> None:
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2
    with zipfile.ZipFile(built.wheel) as wheel:
        metadata = email.message_from_bytes(wheel.read("orgproxy-0.1.0.dist-info/METADATA"))
        assert "orgproxy-0.1.0.dist-info/licenses/LICENSE" in wheel.namelist()
        assert "twisted/plugins/orgproxy_plugin.py" in wheel.namelist()
        assert not [name for name in wheel.namelist() if name.startswith("twisted/plugins/__init__")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (metadata["License-Expression"], metadata["License-File"]) == ("MIT", "LICENSE")
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().startswith("# orgproxy\n")
    assert metadata.get_all("Classifier") == project["classifiers"]
    assert {url.split(", ")[0] for url in metadata.get_all("Project-URL")} == set(project["urls"])
    with tarfile.open(built.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "Makefile", "etc/aliases.toml", "etc/systemd/orgproxy.service",
            "etc/supervisor/orgproxy.conf", "etc/prometheus/prometheus.yml", "tests/conftest.py"} <= names
    assert not [name for name in names if "orgproxy-client-token" in name or "__pycache__" in name]

