"""The wheel installed as ``make install`` installs it (a fresh venv of the system's Python),
made read-only, and run from there by another user (``nobody`` when the tests run as root,
whom read-only directories do not stop): its commands, and ``twistd -n orgproxy`` serving.
Without ``make install``'s last step, Twisted's plugin cache built by the installer, every
start logs that Twisted could not write its plugin cache; with it, none does."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.install import (
    NOBODY,
    Built,
    as_service_user,
    built,
    fresh_venv,
    planned_install,
    readable_directory,
    system_python,
)
from tests.support.raw_http import call

__all__ = ["built"]  # the session's build, a fixture


@pytest.fixture
def installed(built: Built) -> Iterator[Path]:
    """The install's prefix: <prefix>/.venv, as ``make install PREFIX=<prefix>`` lays it out."""
    with readable_directory("orgproxy-install-") as prefix:
        fresh_venv(built.wheel, prefix / ".venv")
        yield prefix


def read_only(root: Path) -> None:
    """Nothing under ``root`` can be made, replaced or removed any more (chmod a-w of its
    directories; its files are shared with the test venv's, see tests/support/install.py)."""
    for directory in (root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())):
        directory.chmod(directory.stat().st_mode & ~0o222)


def plugin_cache_errors(daemon: Daemon) -> list[dict[str, Any]]:
    """The daemon's log events (one JSON object a line) saying a plugin cache was not written."""
    records = [json.loads(line) for line in daemon.lines]
    return [r for r in records if "errno" in r and str(r.get("path", "")).endswith("dropin.cache")]


def started_by_the_service_user(prefix: Path, home: Path) -> Daemon:
    daemon = Daemon(["--log-format", "json", "--state-dir", str(home / "state")], cwd=home,
                    twistd=str(prefix / ".venv" / "bin" / "twistd"), preexec_fn=as_service_user(),
                    env={"PYTHONPATH": "", "HOME": str(home)})
    try:
        daemon.wait_ready()
        assert call(daemon.url, "/health").status == 200
    finally:
        assert daemon.stop() == 0, daemon.output
    return daemon


def test_the_wheel_runs_from_a_read_only_install_and_a_service_user_starts_it_without_a_plugin_cache_error(
        installed: Path) -> None:
    home = installed / "home"  # the service user's working directory, which it may write
    home.mkdir()
    if os.geteuid() == 0:
        os.chown(home, NOBODY, NOBODY)
    cache = planned_install(f"PREFIX={installed}")[-1]  # make install's last step
    read_only(installed / ".venv")

    bin_ = installed / ".venv" / "bin"
    for command in ([bin_ / "twistd", "orgproxy", "--version"], [bin_ / "orgproxy-report", "--version"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=home,
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, preexec_fn=as_service_user())
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.fullmatch(r"orgproxy(-report)? 0\.1\.0 \((Twisted [\d.]+, )?Python 3\.\d+\.\d+\)\n", done.stdout)

    # Before the installer builds the cache, the service user's start tries, and says it could not.
    before = started_by_the_service_user(installed, home)
    (error,) = {(r["path"], r["errno"]) for r in plugin_cache_errors(before)}
    assert error[0].startswith(str(installed / ".venv")) and error[1] == 13  # EACCES
    # It was the install's twistd that ran, on the system's Python.
    assert any(str(r.get("exe", "")).startswith(str(installed / ".venv")) for r in map(json.loads, before.lines))
    assert f"home = {Path(system_python()).parent}\n" in (installed / ".venv" / "pyvenv.cfg").read_text()

    # make install's last step, run by the installer (who may write there), as make runs it.
    plugins = next((installed / ".venv").glob("lib/python3.*/site-packages/twisted/plugins"))
    plugins.chmod(0o755)
    subprocess.run(["sh", "-c", cache], check=True, timeout=120)
    read_only(installed / ".venv")
    assert (plugins / "dropin.cache").is_file()

    after = started_by_the_service_user(installed, home)
    assert plugin_cache_errors(after) == []
    assert "Traceback" not in after.output
