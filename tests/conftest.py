from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.fakeupstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[1]
# The admin key every test sends; it must never show up in the daemon's output.
TOKEN = "sk-admin-TEST-never-logged-5f2c9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def aliases(tmp_path: Path) -> Path:
    """A copy of the shipped example alias map."""
    path = tmp_path / "aliases.toml"
    shutil.copy(ROOT / "etc" / "aliases.toml", path)
    return path


def assert_clean_output(daemon: Daemon) -> None:
    output = daemon.output
    assert "Traceback" not in output, output
    assert TOKEN not in output, "the admin key appeared in the daemon's output"


@pytest.fixture
def daemon(upstream: FakeUpstream, aliases: Path, tmp_path: Path) -> Iterator[Daemon]:
    """The real daemon, in front of the fake upstream, with the example alias map."""
    running = Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--timeout", "5"],
                     cwd=tmp_path).wait_ready()
    yield running
    code = running.stop()
    assert_clean_output(running)
    assert code == 0, running.output
