"""Live alias reloads, in memory: the daemon's service tree polling its alias file on a
clock the test moves, and SIGHUP. Every way a file changes (edited in place, replaced by
rename, deleted and created again, a symlink re-pointed) is seen at the next look, a
broken file keeps the old names and is reported once per version, and /health shows the
file's state. (inotify, with the real reactor, is in test_watch.py.)"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.web import server

from orgproxy.names.aliasfile import AliasFileError, load_aliases
from orgproxy.names.snapshot import CurrentNames
from orgproxy.names.history import Learned
from orgproxy.ops.reload import AliasReloader, ReloadService, off_reactor_thread
from orgproxy.ops.watch import POLL_INTERVAL
from orgproxy.times import iso
from tests.ops.edits import BROKEN, EDITED, not_reloaded, reloaded, repoint, write_atomically, write_in_place
from tests.support.fake_openai import FakeOpenAI, Received, reply
from tests.support.memory import InMemoryProxy

COSTS = "/v1/organization/costs"
KEYS = ["key_1234567890abcdef", "key_abcdef1234567890", "key_new"]
ORIGINAL = {"key_1234567890abcdef": "checkout-service-production",
            "key_abcdef1234567890": "mobile-app-production", "key_new": "unknown"}
AFTER_EDIT = {"key_1234567890abcdef": "checkout-v2", "key_abcdef1234567890": "unknown",
              "key_new": "brand-new"}
# What the example alias map's reload to EDITED reports: 3 names, (added, removed, changed).
EDIT_COUNTS = {"count": 3, "added": 1, "removed": 3, "changed": 1}


# --- what the daemon shows ---------------------------------------------------------------------

def names_served(proxy: InMemoryProxy) -> dict[str, str]:
    """The name the proxy gives each of KEYS right now, read through it."""
    rows = proxy.get(COSTS + "?start_time=1").json()["data"]
    return {row["api_key_id"]: row["api_key_name"] for row in rows}


def health_aliases(proxy: InMemoryProxy) -> dict[str, Any]:
    return proxy.get("/health").json()["aliases"]


def reload_service(proxy: InMemoryProxy) -> ReloadService:
    (found,) = [s for s in proxy.service if isinstance(s, ReloadService)]
    return found


def look(proxy: InMemoryProxy) -> None:
    """Let the poller look at the file once more."""
    proxy.advance(POLL_INTERVAL)


@pytest.fixture(autouse=True)
def serve_keys(fake: FakeOpenAI) -> None:
    fake.on(COSTS, reply(body={"data": [{"api_key_id": key} for key in KEYS]}))


@pytest.fixture
def polled(make_proxy: Callable[..., InMemoryProxy]) -> Callable[[Path], InMemoryProxy]:
    """The daemon, started, polling the alias file at ``path``."""
    def start(path: Path) -> InMemoryProxy:
        proxy = make_proxy("--aliases", str(path), "--watch", "poll")
        proxy.start_service()
        return proxy
    return start


# --- polling -----------------------------------------------------------------------------------

def test_an_edit_in_place_is_applied_at_the_next_look(polled: Callable[[Path], InMemoryProxy], aliases: Path,
                                                      logged: list[dict[str, Any]]) -> None:
    proxy = polled(aliases)
    assert names_served(proxy) == ORIGINAL
    write_in_place(aliases, EDITED)
    assert names_served(proxy) == ORIGINAL  # not before the poller looks
    look(proxy)
    assert names_served(proxy) == AFTER_EDIT
    (event,) = reloaded(logged)
    assert {k: event[k] for k in EDIT_COUNTS} == EDIT_COUNTS
    assert (event["why"], event["path"]) == ("the file changed", str(aliases))


def test_a_replacement_by_rename_is_applied(polled: Callable[[Path], InMemoryProxy], aliases: Path) -> None:
    proxy = polled(aliases)
    write_atomically(aliases, EDITED)
    look(proxy)
    assert names_served(proxy) == AFTER_EDIT


def test_a_deleted_file_keeps_the_names_until_it_is_created_again(
        polled: Callable[[Path], InMemoryProxy], aliases: Path, logged: list[dict[str, Any]]) -> None:
    proxy = polled(aliases)
    aliases.unlink()
    look(proxy)
    (failed,) = not_reloaded(logged)
    assert failed["error"].startswith(f"{aliases}: cannot read") and failed["count"] == 5
    assert names_served(proxy) == ORIGINAL
    assert health_aliases(proxy)["error"] == failed["error"]

    aliases.write_text(EDITED)
    look(proxy)
    assert names_served(proxy) == AFTER_EDIT
    assert health_aliases(proxy)["error"] is None


def test_a_repointed_symlink_is_applied(polled: Callable[[Path], InMemoryProxy], tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "v1.toml").write_text('[api_keys]\nkey_1234567890abcdef = "v1"\n')
    (releases / "v2.toml").write_text('[api_keys]\nkey_1234567890abcdef = "v2"\n')
    link = tmp_path / "aliases.toml"
    link.symlink_to(releases / "v1.toml")
    proxy = polled(link)
    assert names_served(proxy)["key_1234567890abcdef"] == "v1"
    repoint(link, releases / "v2.toml")
    look(proxy)
    assert names_served(proxy)["key_1234567890abcdef"] == "v2"


def test_a_broken_file_keeps_the_old_names_and_is_reported_once_per_version(
        polled: Callable[[Path], InMemoryProxy], aliases: Path, logged: list[dict[str, Any]]) -> None:
    proxy = polled(aliases)
    write_atomically(aliases, BROKEN)
    for _ in range(5):  # the poller keeps looking at the same broken version
        look(proxy)
    (failed,) = not_reloaded(logged)
    with pytest.raises(AliasFileError) as broken:
        load_aliases(str(aliases))
    reason = str(broken.value)  # the loader's words, file and reason
    assert reason.startswith(str(aliases)) and "key_1234567890abcdef" in reason
    assert failed["error"] == reason and failed["count"] == 5
    assert names_served(proxy) == ORIGINAL
    state = health_aliases(proxy)
    assert (state["error"], state["names"]) == (reason, 5)

    write_atomically(aliases, BROKEN + "key_abcdef1234567890 = true\n")  # another broken version
    look(proxy)
    look(proxy)
    assert len(not_reloaded(logged)) == 2
    assert names_served(proxy) == ORIGINAL

    write_atomically(aliases, EDITED)
    look(proxy)
    assert names_served(proxy) == AFTER_EDIT
    assert health_aliases(proxy)["error"] is None
    assert len(reloaded(logged)) == 1


@pytest.mark.parametrize("name", ["bad\\ud800name", "bad\\u001b[2Jname", "bad\\rname"])
def test_a_name_that_is_not_text_keeps_the_old_names_and_says_where_it_is(
        polled: Callable[[Path], InMemoryProxy], tmp_path: Path, logged: list[dict[str, Any]], name: str) -> None:
    aliases = tmp_path / "aliases.json"
    aliases.write_text('{"api_keys": {"key_1234567890abcdef": "checkout-service-production"}}')
    proxy = polled(aliases)
    write_atomically(aliases, '{"api_keys": {\n  "key_abcdef1234567890": "mobile",\n'
                              f'  "key_1234567890abcdef": "{name}"}}}}')
    look(proxy)
    (failed,) = not_reloaded(logged)
    assert failed["error"].startswith(f"{aliases}:3:3: api_keys.key_1234567890abcdef: name holds a ")
    assert health_aliases(proxy)["error"] == failed["error"]
    assert names_served(proxy)["key_1234567890abcdef"] == "checkout-service-production"
    assert names_served(proxy)["key_abcdef1234567890"] == "unknown"
    assert proxy.get("/metrics").status == 200


def test_an_editors_save_between_two_looks_is_one_reload(polled: Callable[[Path], InMemoryProxy], aliases: Path,
                                                        logged: list[dict[str, Any]]) -> None:
    proxy = polled(aliases)
    swap = aliases.with_name("aliases.toml.swp")
    swap.write_text(EDITED)
    os.rename(aliases, aliases.with_name("aliases.toml~"))
    os.rename(swap, aliases)
    os.chmod(aliases, 0o644)
    look(proxy)
    look(proxy)
    assert len(reloaded(logged)) == 1 and not_reloaded(logged) == []
    assert names_served(proxy) == AFTER_EDIT


def test_an_unchanged_file_is_not_reloaded(polled: Callable[[Path], InMemoryProxy], aliases: Path,
                                           logged: list[dict[str, Any]]) -> None:
    proxy = polled(aliases)
    for _ in range(5):
        look(proxy)
    assert reloaded(logged) == [] and not_reloaded(logged) == []


def test_health_shows_the_alias_file_state(polled: Callable[[Path], InMemoryProxy], aliases: Path) -> None:
    proxy = polled(aliases)
    state = health_aliases(proxy)
    assert state == {"path": str(aliases), "names": 5, "loaded_at": iso(0), "checked_at": None, "error": None}
    proxy.advance(100)  # looked at 200 times, unchanged
    assert health_aliases(proxy)["checked_at"] == iso(100, precise=True)
    assert health_aliases(proxy)["loaded_at"] == iso(0)
    write_in_place(aliases, EDITED)
    look(proxy)
    state = health_aliases(proxy)
    assert (state["names"], state["loaded_at"], state["checked_at"]) == (3, iso(100.5), iso(100.5, precise=True))
    # Counts and states only: never a name or an id.
    body = proxy.get("/health").body
    assert b"checkout" not in body and b"key_1234567890abcdef" not in body


def test_without_an_alias_file_health_has_no_alias_state(make_proxy: Callable[..., InMemoryProxy]) -> None:
    proxy = make_proxy("--watch", "poll")
    proxy.start_service()
    assert health_aliases(proxy) is None
    assert reload_service(proxy).watcher is None  # nothing to watch


def test_with_watch_off_changes_wait_for_sighup(make_proxy: Callable[..., InMemoryProxy], aliases: Path,
                                                logged: list[dict[str, Any]]) -> None:
    proxy = make_proxy("--aliases", str(aliases), "--watch", "off")
    proxy.start_service()
    write_in_place(aliases, EDITED)
    proxy.advance(60)
    assert names_served(proxy) == ORIGINAL
    reload_service(proxy).on_sighup()
    assert names_served(proxy) == AFTER_EDIT
    (event,) = reloaded(logged)
    assert event["why"] == "SIGHUP" and {k: event[k] for k in EDIT_COUNTS} == EDIT_COUNTS


def test_a_request_in_flight_keeps_the_names_it_started_with(make_proxy: Callable[..., InMemoryProxy],
                                                             aliases: Path, fake: FakeOpenAI) -> None:
    held: list[server.Request] = []

    def hold_until_released(request: server.Request, received: Received) -> int:
        held.append(request)
        return server.NOT_DONE_YET
    fake.on(COSTS, hold_until_released)
    proxy = make_proxy("--aliases", str(aliases), "--watch", "off")
    proxy.start_service()
    response = proxy.start("GET", COSTS + "?start_time=1")
    proxy.flush()
    assert held, "the request never reached the upstream"
    write_in_place(aliases, EDITED)
    reload_service(proxy).on_sighup()
    held[0].setHeader(b"content-type", b"application/json")
    held[0].write(b'{"api_key_id": "key_1234567890abcdef"}')
    held[0].finish()
    assert proxy.answer(response).json()["api_key_name"] == "checkout-service-production"
    fake.on(COSTS, reply(body={"api_key_id": "key_1234567890abcdef"}))
    assert proxy.get(COSTS + "?start_time=1").json()["api_key_name"] == "checkout-v2"


# --- SIGHUP, the signal itself ------------------------------------------------------------------

class SignalledClock(MemoryReactorClock):
    """A memory reactor that runs what a signal handler hands it (``callFromThread``) on its
    next turn, as the real reactor would."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.callLater(0, f, *args, **kwargs)


@pytest.fixture
def restore_sighup() -> Iterator[None]:
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


def raise_sighup_at(service: ReloadService) -> None:
    # An unhandled SIGHUP would end the test run: only with the service's handler in place.
    assert signal.getsignal(signal.SIGHUP) == service.sighup._on_signal
    signal.raise_signal(signal.SIGHUP)


def test_sighup_reloads_the_file_and_tells_the_others(aliases: Path, restore_sighup: None) -> None:
    clock = SignalledClock()
    current = CurrentNames()
    reloader = AliasReloader(str(aliases), current, clock)
    reloader.load_first()
    told: list[str] = []
    service = ReloadService(clock, reloader, "off", also_on_sighup=[told.append])
    before = signal.getsignal(signal.SIGHUP)
    service.startService()
    write_in_place(aliases, EDITED)
    raise_sighup_at(service)
    assert current.names.count() == 5, "reloaded inside the signal handler, not in the reactor"
    clock.advance(0)
    assert current.names.by_field["api_key_id"]["key_new"] == "brand-new"
    assert told == ["SIGHUP"]  # discovery, the other workers
    service.stopService()
    assert signal.getsignal(signal.SIGHUP) == before


def test_sighup_without_an_alias_file_is_harmless(restore_sighup: None) -> None:
    clock = SignalledClock()
    told: list[str] = []
    service = ReloadService(clock, None, "auto", also_on_sighup=[told.append])
    assert service.watcher is None
    service.startService()
    raise_sighup_at(service)  # the test process survives it
    clock.advance(0)
    assert told == ["SIGHUP"]
    service.stopService()
    assert clock.getDelayedCalls() == []


# --- reloads off the reactor thread ----------------------------------------------------------------

class HeldOffThread:
    """Stands in for the thread pool: each piece of work waits until the test lets it run."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def __call__(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        self.waiting.append((done, work, args))
        return done

    def run_next(self) -> None:
        done, work, args = self.waiting.pop(0)
        try:
            result = work(*args)
        except Exception:
            done.errback()
        else:
            done.callback(result)


def test_sighups_during_a_reload_are_folded_into_one_more(aliases: Path, logged: list[dict[str, Any]]) -> None:
    clock = MemoryReactorClock()
    current = CurrentNames()
    threads = HeldOffThread()
    reloader = AliasReloader(str(aliases), current, clock, threads)
    reloader.load_first()
    write_in_place(aliases, EDITED)
    first = reloader.reload("SIGHUP")
    assert len(threads.waiting) == 1
    folded = [reloader.reload("SIGHUP") for _ in range(5)]
    reloader.reload_if_changed()  # the watcher, too
    assert len(threads.waiting) == 1, "nothing more is read while a reload runs"
    assert current.names.by_field["api_key_id"]["key_1234567890abcdef"] == "checkout-service-production"
    threads.run_next()
    assert first.called and current.names.by_field["api_key_id"]["key_new"] == "brand-new"
    assert len(threads.waiting) == 1 and not any(d.called for d in folded)  # one more, for all of them
    write_in_place(aliases, EDITED.replace("brand-new", "brand-newer"))
    threads.run_next()
    assert all(d.called for d in folded) and threads.waiting == []
    assert current.names.by_field["api_key_id"]["key_new"] == "brand-newer"
    assert len(reloaded(logged)) == 2


def test_a_snapshot_built_off_thread_is_rebuilt_if_another_source_changed_meanwhile(aliases: Path) -> None:
    current = CurrentNames()
    threads = HeldOffThread()
    reloader = AliasReloader(str(aliases), current, MemoryReactorClock(), threads)
    reloader.load_first()
    write_in_place(aliases, EDITED)
    reloader.reload("SIGHUP")
    # Discovery learns a name while the reload is being prepared.
    current.discovered[("api_key_id", "key_found")] = Learned("api_key_id", "key_found", "found-by-discovery")
    current.rebuild()
    threads.run_next()
    names = current.names.by_field["api_key_id"]
    assert (names["key_new"], names["key_found"]) == ("brand-new", "found-by-discovery")


def test_the_daemon_reads_and_parses_on_the_reactor_s_thread_pool(tmp_path: Path) -> None:
    from twisted.internet import reactor

    assert off_reactor_thread(reactor) is not maybeDeferred  # the real reactor has threads
    assert off_reactor_thread(MemoryReactorClock()) is maybeDeferred


# --- a file emptied, a directory of files -------------------------------------------------------------

@pytest.mark.parametrize("blank", ["", "\n\n", "# all gone\n"], ids=["empty", "blank lines", "comments"])
def test_a_file_emptied_while_it_held_names_keeps_them_and_says_why(
        polled: Callable[[Path], InMemoryProxy], aliases: Path, logged: list[dict[str, Any]], blank: str) -> None:
    proxy = polled(aliases)
    write_in_place(aliases, blank)  # a truncating editor, a half-written deploy
    look(proxy)
    assert names_served(proxy) == ORIGINAL
    (kept,) = not_reloaded(logged)
    assert kept["count"] == 5 and kept["error"].startswith(f"{aliases}: empty")
    state = health_aliases(proxy)
    assert (state["names"], state["error"]) == (5, kept["error"])
    for _ in range(3):
        look(proxy)
    assert len(not_reloaded(logged)) == 1  # once per version of the file
    write_in_place(aliases, EDITED)
    look(proxy)
    assert names_served(proxy) == AFTER_EDIT and health_aliases(proxy)["error"] is None


def test_a_file_with_its_tables_and_no_entries_clears_the_names(polled: Callable[[Path], InMemoryProxy],
                                                                aliases: Path) -> None:
    proxy = polled(aliases)
    write_atomically(aliases, "[api_keys]\n[projects]\n[users]\n")
    look(proxy)
    assert names_served(proxy) == dict.fromkeys(KEYS, "unknown")
    assert (health_aliases(proxy)["names"], health_aliases(proxy)["error"]) == (0, None)
    write_atomically(aliases, "")  # empty once more: nothing held, nothing to keep
    look(proxy)
    assert health_aliases(proxy)["error"] is None


def test_an_empty_file_at_start_is_no_names(make_proxy: Callable[..., InMemoryProxy], aliases: Path) -> None:
    aliases.write_text("")
    proxy = make_proxy("--aliases", str(aliases))
    assert names_served(proxy) == dict.fromkeys(KEYS, "unknown")


@pytest.fixture
def conf_d(tmp_path: Path) -> Path:
    directory = tmp_path / "aliases.d"
    directory.mkdir()
    (directory / "10-keys.toml").write_text('[api_keys]\nkey_1234567890abcdef = "checkout-service-production"\n')
    (directory / "20-mobile.json").write_text('{"api_keys": {"key_abcdef1234567890": "mobile-app-production"}}')
    return directory


def test_a_directory_s_files_are_reloaded_as_they_change(polled: Callable[[Path], InMemoryProxy], conf_d: Path,
                                                         logged: list[dict[str, Any]]) -> None:
    proxy = polled(conf_d)
    assert names_served(proxy) == ORIGINAL
    write_atomically(conf_d / "30-new.toml", '[api_keys]\nkey_new = "brand-new"\n')
    look(proxy)
    assert names_served(proxy)["key_new"] == "brand-new"
    (conf_d / "20-mobile.json").unlink()  # removing a file is meant
    look(proxy)
    assert names_served(proxy)["key_abcdef1234567890"] == "unknown"
    assert health_aliases(proxy) | {"loaded_at": None, "checked_at": None} == {
        "path": str(conf_d), "names": 2, "loaded_at": None, "checked_at": None, "error": None}
    write_in_place(conf_d / "10-keys.toml", "")  # emptied: kept, as for a single file
    look(proxy)
    assert names_served(proxy)["key_1234567890abcdef"] == "checkout-service-production"
    assert health_aliases(proxy)["error"].startswith(f"{conf_d / '10-keys.toml'}: empty")


def test_an_id_named_in_two_files_keeps_the_old_names_and_names_both_files(
        polled: Callable[[Path], InMemoryProxy], conf_d: Path, logged: list[dict[str, Any]]) -> None:
    proxy = polled(conf_d)
    twice = conf_d / "30-again.toml"
    write_atomically(twice, '[api_keys]\nkey_1234567890abcdef = "checkout-v2"\nkey_new = "brand-new"\n')
    look(proxy)
    assert names_served(proxy) == ORIGINAL
    (failed,) = not_reloaded(logged)
    assert failed["error"].startswith(str(twice)) and str(conf_d / "10-keys.toml") in failed["error"]
    assert health_aliases(proxy)["error"] == failed["error"]


def test_the_unknown_ids_skeleton_saved_into_the_directory_names_an_id_once_uncommented(
        polled: Callable[[Path], InMemoryProxy], conf_d: Path, fake: FakeOpenAI) -> None:
    proxy = polled(conf_d)
    fake.on(COSTS, reply(body={"data": [{"api_key_id": "key_new", "project_id": "proj_new"},
                                        {"api_key_id": "key_other"}]}))
    assert proxy.get(COSTS + "?start_time=1").json()["data"][0]["api_key_name"] == "unknown"
    skeleton = proxy.get("/orgproxy/unknown?format=toml").body.decode()
    assert str(conf_d) in skeleton  # its comments say where it goes
    saved = conf_d / "50-unknown.toml"
    saved.write_text(skeleton)  # saved as it is: a valid file, every entry still commented out
    look(proxy)
    assert health_aliases(proxy)["error"] is None
    assert proxy.get(COSTS + "?start_time=1").json()["data"][0]["api_key_name"] == "unknown"
    lines = skeleton.splitlines()
    (entry,) = [i for i, line in enumerate(lines) if line.startswith("# key_new = ")]
    lines[entry] = lines[entry].removeprefix("# ").replace('""', '"named-at-last"', 1)
    write_atomically(saved, "\n".join(lines) + "\n")
    look(proxy)
    rows = proxy.get(COSTS + "?start_time=1").json()["data"]
    assert (rows[0]["api_key_name"], rows[0]["project_name"], rows[1]["api_key_name"]) == (
        "named-at-last", "unknown", "unknown")
