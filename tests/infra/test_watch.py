"""The alias file watcher: which mode it runs in, how a burst of events becomes one look
(on a clock the test moves), and inotify itself, on the real reactor in the test process,
noticing every way a file changes. Each wait is for the watcher's own call, bounded by a
timeout; none is a sleep."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath

from orgproxy.names.current import CurrentNames
from orgproxy.infra import watch
from orgproxy.ops.reload import AliasReloader, off_reactor_thread
from orgproxy.infra.watch import POLL_INTERVAL, SETTLE, FileWatcher, inotify_available
from tests.support.edits import BROKEN, EDITED, not_reloaded, reloaded, repoint, write_atomically, write_in_place

WAIT = 5.0  # seconds a test waits for the watcher before failing


# --- modes ---------------------------------------------------------------------------------------

class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_auto_is_inotify_where_the_platform_has_it(tmp_path: Path) -> None:
    assert inotify_available(), "this suite runs on Linux, where inotify is expected"
    watcher = FileWatcher(reactor, str(tmp_path / "aliases.toml"), Calls(), "auto")
    watcher.start()
    try:
        assert watcher.mode == "inotify"
        assert watcher.watched == {str(tmp_path)}
    finally:
        watcher.stop()
    assert watcher.notifier is None


def test_without_inotify_auto_and_inotify_fall_back_to_polling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               logged: list[dict[str, Any]]) -> None:
    monkeypatch.setattr(watch, "inotify_available", lambda: False)
    for asked in ("auto", "inotify"):
        clock = Clock()
        watcher = FileWatcher(clock, str(tmp_path / "aliases.toml"), Calls(), asked)
        watcher.start()
        assert watcher.mode == "poll"
        watcher.stop()
        assert clock.getDelayedCalls() == []
    # Only where inotify was asked for by name is its absence worth a warning.
    warned = [e for e in logged if e.get("log_level") is not None and e["log_level"].name == "warn"]
    assert [e["path"] for e in warned] == [str(tmp_path / "aliases.toml")]


def test_polling_looks_every_interval_until_stopped(tmp_path: Path) -> None:
    clock = Clock()
    calls = Calls()
    watcher = FileWatcher(clock, str(tmp_path / "aliases.toml"), calls, "poll")
    watcher.start()
    assert calls.count == 0  # the start-up load has just looked
    clock.advance(POLL_INTERVAL)
    clock.advance(POLL_INTERVAL)
    assert calls.count == 2
    watcher.stop()
    clock.advance(POLL_INTERVAL * 10)
    assert calls.count == 2 and clock.getDelayedCalls() == []


def test_off_watches_nothing(tmp_path: Path) -> None:
    clock = Clock()
    watcher = FileWatcher(clock, str(tmp_path / "aliases.toml"), Calls(), "off")
    watcher.start()
    assert clock.getDelayedCalls() == [] and watcher.notifier is None
    watcher.stop()


def test_a_burst_of_events_is_one_look_once_they_settle(tmp_path: Path) -> None:
    # An editor's save is several events (write, rename aside, rename in, chmod): the file
    # is looked at once, when they stop, not half-way through.
    clock = Clock()
    calls = Calls()
    watcher = FileWatcher(clock, str(tmp_path / "aliases.toml"), calls, "inotify")
    event = FilePath(str(tmp_path / "aliases.toml")).asBytesMode()
    for _ in range(4):
        watcher.on_event(None, event, 0)
        clock.advance(SETTLE / 2)
    assert calls.count == 0
    clock.advance(SETTLE / 2)
    assert calls.count == 1
    clock.advance(SETTLE * 10)
    assert calls.count == 1 and clock.getDelayedCalls() == []


def test_a_stop_cancels_a_look_not_yet_due(tmp_path: Path) -> None:
    clock = Clock()
    calls = Calls()
    watcher = FileWatcher(clock, str(tmp_path / "aliases.toml"), calls, "inotify")
    watcher.on_event(None, FilePath(str(tmp_path)).asBytesMode(), 0)
    watcher.stop()
    assert clock.getDelayedCalls() == []
    assert calls.count == 0


# --- inotify, for real -------------------------------------------------------------------------

class Looks:
    """The reloader's look at the file, as the watcher asks for it; a test waits for the
    next one with ``next()``."""

    def __init__(self, reloader: AliasReloader):
        self.reloader = reloader
        self.count = 0
        self.waiting: list[Deferred[int]] = []

    def __call__(self) -> None:
        self.reloader.reload_if_changed()
        self.count += 1
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(self.count)

    def next(self) -> Deferred[int]:
        """Fires with the number of looks so far at the next look; fails after WAIT seconds."""
        d: Deferred[int] = Deferred()
        self.waiting.append(d)
        return d.addTimeout(WAIT, reactor)


class Watched:
    def __init__(self, path: Path, off_thread: Any = maybeDeferred):
        self.path = path
        self.current = CurrentNames()
        self.reloader = AliasReloader(str(path), self.current, reactor, off_thread)
        self.reloader.load_first()
        self.looks = Looks(self.reloader)
        self.watcher = FileWatcher(reactor, str(path), self.looks, "inotify")
        self.watcher.start()
        assert self.watcher.mode == "inotify"

    def name_of(self, key: str) -> str | None:
        return self.current.names.by_field["api_key_id"].get(key)

    async def change(self, how: Any, *args: Any) -> int:
        """Change the file with ``how(*args)``, and wait for the watcher's next look."""
        next_look = self.looks.next()
        how(*args)
        return await next_look

    async def look_after_a_neighbour_changes(self) -> int:
        """An event in the directory that is not the file: the watcher looks again."""
        return await self.change((self.path.parent / "neighbour.txt").write_text, "x")


@pytest.fixture
def watched(aliases: Path) -> Iterator[Watched]:
    watched = Watched(aliases)
    yield watched
    watched.watcher.stop()
    assert watched.watcher.pending is None or not watched.watcher.pending.active()


@pytest_twisted.ensureDeferred
async def test_inotify_sees_an_edit_in_place(watched: Watched) -> None:
    await watched.change(write_in_place, watched.path, EDITED)
    assert watched.name_of("key_new") == "brand-new"


@pytest_twisted.ensureDeferred
async def test_inotify_sees_a_replacement_by_rename(watched: Watched) -> None:
    await watched.change(write_atomically, watched.path, EDITED)
    assert watched.name_of("key_new") == "brand-new"


@pytest_twisted.ensureDeferred
async def test_inotify_sees_a_delete_then_a_create(watched: Watched, logged: list[dict[str, Any]]) -> None:
    await watched.change(watched.path.unlink)
    assert watched.current.error is not None and watched.current.error.startswith(f"{watched.path}: cannot read")
    assert watched.name_of("key_1234567890abcdef") == "checkout-service-production"
    await watched.change(watched.path.write_text, EDITED)
    assert watched.name_of("key_new") == "brand-new" and watched.current.error is None


@pytest_twisted.ensureDeferred
async def test_inotify_follows_a_symlink_repointed_into_another_directory(tmp_path: Path) -> None:
    conf, v1, v2 = tmp_path / "conf", tmp_path / "releases" / "v1", tmp_path / "releases" / "v2"
    for directory, name in ((conf, None), (v1, "v1"), (v2, "v2")):
        directory.mkdir(parents=True)
        if name is not None:
            (directory / "aliases.toml").write_text(f'[api_keys]\nkey_1234567890abcdef = "{name}"\n')
    link = conf / "aliases.toml"
    link.symlink_to(v1 / "aliases.toml")
    watched = Watched(link)
    try:
        assert watched.watcher.watched == {str(conf), str(v1)}
        await watched.change(repoint, link, v2 / "aliases.toml")
        assert watched.name_of("key_1234567890abcdef") == "v2"
        assert watched.watcher.watched == {str(conf), str(v2)}
        # An edit to the new target itself, in its own directory, is seen too.
        await watched.change(write_in_place, v2 / "aliases.toml", '[api_keys]\nkey_1234567890abcdef = "v2.1"\n')
        assert watched.name_of("key_1234567890abcdef") == "v2.1"
    finally:
        watched.watcher.stop()


@pytest_twisted.ensureDeferred
async def test_inotify_reports_a_broken_file_once(watched: Watched, logged: list[dict[str, Any]]) -> None:
    await watched.change(write_atomically, watched.path, BROKEN)
    await watched.look_after_a_neighbour_changes()
    assert len(not_reloaded(logged)) == 1
    assert watched.name_of("key_1234567890abcdef") == "checkout-service-production"
    await watched.change(write_atomically, watched.path, EDITED)
    assert watched.name_of("key_new") == "brand-new" and watched.current.error is None


@pytest_twisted.ensureDeferred
async def test_inotify_makes_an_editors_save_one_look(watched: Watched, logged: list[dict[str, Any]]) -> None:
    def save_as_an_editor_does() -> None:
        swap = watched.path.with_name("aliases.toml.swp")
        swap.write_text(EDITED)
        os.rename(watched.path, watched.path.with_name("aliases.toml~"))
        os.rename(swap, watched.path)
        os.chmod(watched.path, 0o644)
    assert await watched.change(save_as_an_editor_does) == 1
    assert await watched.look_after_a_neighbour_changes() == 2  # no look in between
    assert len(reloaded(logged)) == 1 and not_reloaded(logged) == []
    assert watched.name_of("key_new") == "brand-new"


@pytest_twisted.ensureDeferred
async def test_inotify_sees_a_file_added_to_an_alias_directory_read_on_the_thread_pool(tmp_path: Path) -> None:
    conf_d = tmp_path / "aliases.d"
    conf_d.mkdir()
    (conf_d / "10-keys.toml").write_text('[api_keys]\nkey_1234567890abcdef = "checkout"\n')
    watched = Watched(conf_d, off_reactor_thread(reactor))  # as the daemon reads: on the reactor's threads
    try:
        assert str(conf_d) in watched.watcher.watched
        await watched.change(write_atomically, conf_d / "20-new.toml", '[api_keys]\nkey_new = "brand-new"\n')
        # The look started a reload on a thread; one more asked for now ends after it.
        assert await watched.reloader.reload("the test") is True
        assert watched.name_of("key_new") == "brand-new"
        await watched.change(write_in_place, conf_d / "10-keys.toml", '[api_keys]\nkey_1234567890abcdef = "v2"\n')
        assert await watched.reloader.reload("the test") is True
        assert watched.name_of("key_1234567890abcdef") == "v2"
    finally:
        watched.watcher.stop()
