"""Live alias reloads in the real daemon: SIGHUP, and every way a file changes, with
inotify and with polling. Every wait is for an observable fact (a log line, /health, an
answer), bounded by a deadline."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import assert_clean_output
from tests.support.daemon import Daemon
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.raw_http import call

COSTS = "/v1/organization/costs"
KEYS = ["key_1234567890abcdef", "key_abcdef1234567890", "key_new"]
EDITED = ('[api_keys]\nkey_1234567890abcdef = "checkout-v2"\nkey_new = "brand-new"\n'
          '[projects]\nproj_abc = "checkout"\n')
BROKEN = '[api_keys]\nkey_1234567890abcdef = 5\n'
RELOADED = "Alias file reloaded (the file changed)"
NOT_RELOADED = "Alias file not reloaded"


def names_served(daemon: Daemon) -> dict[str, str]:
    """The name the daemon gives each of KEYS right now, read through the proxy."""
    rows = call(daemon.url, COSTS + "?start_time=1").json()["data"]
    return {row["api_key_id"]: row["api_key_name"] for row in rows}


def health_aliases(daemon: Daemon) -> dict:
    return call(daemon.url, "/health").json()["aliases"]


def write_atomically(path: Path, text: str) -> None:
    """As editors and config tools do: a new file renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.rename(temporary, path)


def write_in_place(path: Path, text: str) -> None:
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held")
        time.sleep(0.02)  # polling an observable fact, not waiting for one to happen


def checked_after(daemon: Daemon, moment: float) -> bool:
    checked = health_aliases(daemon)["checked_at"]
    return checked is not None and datetime.fromisoformat(checked).timestamp() > moment


@pytest.fixture
def serve_keys(upstream: FakeUpstream) -> FakeUpstream:
    upstream.on(COSTS, reply(body={"data": [{"api_key_id": key} for key in KEYS]}))
    return upstream


def start(upstream: FakeUpstream, aliases: Path, cwd: Path, watch: str) -> Daemon:
    return Daemon(["--upstream", upstream.url, "--aliases", str(aliases), "--watch", watch],
                  cwd=cwd).wait_ready()


@pytest.fixture(params=["inotify", "poll"])
def watched(request: pytest.FixtureRequest, serve_keys: FakeUpstream, aliases: Path,
            tmp_path: Path) -> Iterator[Daemon]:
    daemon = start(serve_keys, aliases, tmp_path, request.param)
    daemon.wait_for(f"({request.param})")  # the watcher is running
    yield daemon
    assert daemon.stop() == 0
    assert_clean_output(daemon)


ORIGINAL = {"key_1234567890abcdef": "checkout-service-production",
            "key_abcdef1234567890": "mobile-app-production", "key_new": "unknown"}
AFTER_EDIT = {"key_1234567890abcdef": "checkout-v2", "key_abcdef1234567890": "unknown",
              "key_new": "brand-new"}


def test_sighup_applies_an_edit(serve_keys: FakeUpstream, aliases: Path, tmp_path: Path) -> None:
    daemon = start(serve_keys, aliases, tmp_path, "off")
    try:
        assert names_served(daemon) == ORIGINAL
        aliases.write_text(EDITED)
        before = len(daemon.lines)
        daemon.process.send_signal(signal.SIGHUP)
        line = daemon.wait_for("Alias file reloaded (SIGHUP)", start=before)
        assert "3 names" in line and "1 added, 3 removed, 1 changed" in line
        assert names_served(daemon) == AFTER_EDIT
    finally:
        assert daemon.stop() == 0
        assert_clean_output(daemon)


def test_sighup_without_an_alias_file_is_harmless(serve_keys: FakeUpstream, tmp_path: Path) -> None:
    daemon = Daemon(["--upstream", serve_keys.url], cwd=tmp_path).wait_ready()
    try:
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for("SIGHUP: no alias file to reload")
        assert call(daemon.url, "/health").status == 200
    finally:
        assert daemon.stop() == 0
        assert_clean_output(daemon)


def test_in_place_write_is_applied(watched: Daemon, aliases: Path) -> None:
    before = len(watched.lines)
    write_in_place(aliases, EDITED)
    watched.wait_for(RELOADED + ": 3 names", start=before)
    assert names_served(watched) == AFTER_EDIT


def test_atomic_rename_is_applied(watched: Daemon, aliases: Path) -> None:
    before = len(watched.lines)
    write_atomically(aliases, EDITED)
    line = watched.wait_for(RELOADED, start=before)
    assert "3 names" in line
    assert names_served(watched) == AFTER_EDIT


def test_delete_then_create_keeps_names_then_applies_the_new_file(watched: Daemon, aliases: Path) -> None:
    before = len(watched.lines)
    aliases.unlink()
    line = watched.wait_for(NOT_RELOADED, start=before)
    assert f"{aliases}: cannot read" in line and "previous 5 names stay in force" in line
    assert names_served(watched) == ORIGINAL
    assert health_aliases(watched)["error"].startswith(f"{aliases}: cannot read")
    aliases.write_text(EDITED)
    watched.wait_for(RELOADED + ": 3 names", start=before)
    assert names_served(watched) == AFTER_EDIT
    assert health_aliases(watched)["error"] is None


def test_repointed_symlink_is_applied(serve_keys: FakeUpstream, tmp_path: Path) -> None:
    for watch in ("inotify", "poll"):
        releases = tmp_path / watch
        releases.mkdir()
        (releases / "v1.toml").write_text('[api_keys]\nkey_1234567890abcdef = "v1"\n')
        (releases / "v2.toml").write_text('[api_keys]\nkey_1234567890abcdef = "v2"\n')
        link = releases / "aliases.toml"
        link.symlink_to(releases / "v1.toml")
        daemon = start(serve_keys, link, tmp_path, watch)
        try:
            assert names_served(daemon)["key_1234567890abcdef"] == "v1"
            new_link = releases / "aliases.toml.new"
            new_link.symlink_to(releases / "v2.toml")
            os.rename(new_link, link)  # how `ln -sfn` and deploy tools re-point atomically
            daemon.wait_for(RELOADED)
            assert names_served(daemon)["key_1234567890abcdef"] == "v2", watch
        finally:
            assert daemon.stop() == 0
            assert_clean_output(daemon)


def test_broken_file_keeps_old_names_is_logged_once_and_shows_on_health(watched: Daemon,
                                                                         aliases: Path) -> None:
    before = len(watched.lines)
    write_atomically(aliases, BROKEN)
    line = watched.wait_for(NOT_RELOADED, start=before)
    assert f"{aliases}:2: api_keys.key_1234567890abcdef: name must be a string, not integer" in line
    assert names_served(watched) == ORIGINAL
    state = health_aliases(watched)
    assert state["error"] == f"{aliases}:2: api_keys.key_1234567890abcdef: name must be a string, not integer"
    assert state["names"] == 5
    # Let the watcher look again (a poll tick, or an event from a neighbouring file): the
    # same broken version must not be reported twice.
    looked = time.time()
    (aliases.parent / "neighbour.txt").write_text("x")
    wait_until(lambda: checked_after(watched, looked), what="another look at the file")
    assert sum(NOT_RELOADED in line for line in watched.lines[before:]) == 1

    write_atomically(aliases, EDITED)
    watched.wait_for(RELOADED, start=before)
    assert names_served(watched) == AFTER_EDIT
    assert health_aliases(watched)["error"] is None


def test_a_burst_of_changes_is_one_reload(watched: Daemon, aliases: Path) -> None:
    before = len(watched.lines)
    # An editor's save: write a new file, move the old one aside, move the new one in,
    # fix its mode.
    temporary = aliases.with_name("aliases.toml.swp")
    temporary.write_text(EDITED)
    os.rename(aliases, aliases.with_name("aliases.toml~"))
    os.rename(temporary, aliases)
    os.chmod(aliases, 0o644)
    watched.wait_for(RELOADED, start=before)
    looked = time.time()
    (aliases.parent / "neighbour.txt").write_text("x")
    wait_until(lambda: checked_after(watched, looked), what="another look at the file")
    reloads = [line for line in watched.lines[before:] if "Alias file" in line]
    assert len(reloads) == 1, reloads
    assert names_served(watched) == AFTER_EDIT


def test_health_shows_the_alias_file_state(watched: Daemon, aliases: Path) -> None:
    state = health_aliases(watched)
    assert state["path"] == str(aliases)
    assert state["names"] == 5
    assert state["error"] is None
    loaded = datetime.fromisoformat(state["loaded_at"])
    assert abs(loaded.timestamp() - time.time()) < 120
    body = call(watched.url, "/health").body
    assert b"checkout" not in body and b"key_1234567890abcdef" not in body
