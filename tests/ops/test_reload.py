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
from twisted.internet.testing import MemoryReactorClock
from twisted.web import server

from orgproxy.names.aliasfile import AliasFileError, load_aliases
from orgproxy.names.snapshot import CurrentNames
from orgproxy.ops.reload import AliasReloader, ReloadService
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
