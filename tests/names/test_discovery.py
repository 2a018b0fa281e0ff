"""Names learned from the Admin API and remembered: discovery in the daemon, in memory, in
front of a fake Admin API that pages two items at a time. Time moves only with the clock
(``proxy.advance``), so schedules, backoff and Retry-After are checked to the second."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import ProcessDone
from twisted.logger import LogLevel

from orgproxy.ops.firstprocess import REQUESTS_FD
from orgproxy.ops.reload import ReloadService
from tests.support.answers import TOKEN
from tests.support.fake_admin import (
    ADMIN_KEYS,
    DATA_PIPELINE,
    OLD_CHATBOT,
    PROJECTS,
    USERS,
    WEB_SHOP,
    FakeAdmin,
    api_keys_path,
    openai_error,
    sample_org,
    service_accounts_path,
    user_owner,
)
from tests.support.fake_openai import Behaviour, FakeOpenAI, hold, reply
from tests.support.memory import InMemoryProxy
from tests.support.spawning import SpawningReactor

ADMIN_KEY = {"OPENAI_ADMIN_KEY": TOKEN}
COSTS = "/v1/organization/costs"
CALLER = {"Authorization": "Bearer sk-caller-own-key"}  # a caller's key, not discovery's
TIMEOUT = 2.0

Start = Callable[..., InMemoryProxy]


@pytest.fixture
def admin(fake: FakeOpenAI) -> FakeAdmin:
    return FakeAdmin(fake, sample_org())


@pytest.fixture
def start(make_proxy: Callable[..., InMemoryProxy], admin: FakeAdmin) -> Start:
    """orgproxy with an admin key (unless told otherwise), started: its first walk done,
    unless the fake holds it."""
    def started(*args: str, environ: dict[str, str] | None = ADMIN_KEY) -> InMemoryProxy:
        proxy = make_proxy("--timeout", f"{TIMEOUT:g}", *args, environ=environ or {})
        proxy.start_service()
        proxy.flush()
        return proxy
    return started


def serve_rows(fake: FakeOpenAI, rows: list[dict[str, Any]]) -> None:
    fake.on(COSTS, reply(body={"object": "page", "data": rows}))


def names_of(proxy: InMemoryProxy, field: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the proxy adds beside each id of ``field`` in the served rows."""
    name_field = field.replace("_id", "_name")
    answer = proxy.get(COSTS + "?start_time=1")
    assert answer.status == 200, answer.body
    return {row[field]: {k: v for k, v in row.items() if k != field}
            for row in answer.json()["data"] if row.get(field) in ids and name_field in row}


def name_of(proxy: InMemoryProxy, fake: FakeOpenAI, field: str, id: str) -> str:
    serve_rows(fake, [{field: id}])
    return names_of(proxy, field, [id])[id][field.replace("_id", "_name")]


def walks(admin: FakeAdmin) -> int:
    """How many walks began: a walk's first request is the projects list without a cursor."""
    return sum(b"after=" not in r.target for r in admin.requests_for(PROJECTS))


def sighup(proxy: InMemoryProxy) -> None:
    """What the daemon does on SIGHUP: the handler's work, without the signal (a real
    signal to a real process is tests/process' business)."""
    [reloading] = [service for service in proxy.service if isinstance(service, ReloadService)]
    reloading.on_sighup()
    proxy.flush()


def health_discovery(proxy: InMemoryProxy) -> dict[str, Any]:
    status: dict[str, Any] = proxy.get("/health").json()["discovery"]
    return status


def one_quick_project(admin: FakeAdmin) -> None:
    """Cut the org to one project, every list on one page: for tests of when walks happen,
    where what a walk learns is beside the point (a walk is then 5 requests, not 19)."""
    admin.org.projects = [p for p in admin.org.projects if p["id"] == WEB_SHOP]
    admin.org.page_size = 100
    admin.install()


def expected_targets(path: str, flags: str, ids: list[str], page_size: int) -> list[bytes]:
    """The requests a walk of ``ids`` must send: limit=100, the flags, then after=<last_id>."""
    targets = [f"{path}?limit=100{flags}"]
    for end in range(page_size, len(ids), page_size):
        targets.append(f"{path}?limit=100{flags}&after={ids[end - 1]}")
    return [t.encode() for t in targets]


# --- what is learned -------------------------------------------------------------------------

def test_every_key_project_and_user_in_every_page_is_named(start: Start, admin: FakeAdmin,
                                                           fake: FakeOpenAI) -> None:
    proxy = start()
    keys = admin.key_names()
    serve_rows(fake, [{"api_key_id": key} for key in keys] + [{"project_id": p} for p in admin.project_names()]
               + [{"user_id": u} for u in admin.user_names()])
    named = names_of(proxy, "api_key_id", list(keys))
    assert {key: row["api_key_name"] for key, row in named.items()} == keys
    assert named["key_Ws2kZoeLptB8"] == {"api_key_name": "Zoë's key", "api_key_redacted_value": "sk-proj-Cd...w2Xy",
                                         "api_key_owner_name": "Zoë Quinn"}
    assert named["key_Ws3kCheckoutC7"]["api_key_owner_name"] == "checkout-bot"  # a service account
    assert named["key_Ad1kMainAdmM8"]["api_key_redacted_value"] == "sk-admin...a1Bc"
    assert named["key_Ad1kMainAdmM8"]["api_key_owner_name"] == "Admin automation"
    assert not [key for key, row in named.items() if "api_key_deleted" in row], "every key is listed"
    projects = names_of(proxy, "project_id", list(admin.project_names()))
    assert {p: row["project_name"] for p, row in projects.items()} == admin.project_names()  # archived too
    users = names_of(proxy, "user_id", list(admin.user_names()))
    assert users["user_Cw9Xn4JdSe7kPb"] == {"user_name": "陈伟", "user_email": "chen@example.com"}
    assert {u: row["user_name"] for u, row in users.items()} == admin.user_names()
    status = health_discovery(proxy)
    assert status["enabled"] and not status["running"] and status["last_error"] is None
    assert status["last_success"] is not None and status["names"] >= len(keys) + len(admin.user_names())


def test_names_that_are_not_text_are_made_text_once_as_they_enter_and_warned_about_once(
        start: Start, admin: FakeAdmin, fake: FakeOpenAI, logged: list[dict[str, Any]]) -> None:
    """A name typed in a console may hold a lone surrogate (which orjson refuses) or control
    characters: the id is named all the same, with U+FFFD for each, everywhere it shows."""
    [web_shop] = [p for p in admin.org.projects if p["id"] == WEB_SHOP]
    web_shop["name"] = "Web\x1b[2J\ud800Shop"
    key = admin.org.api_keys[WEB_SHOP][0]
    key["name"] = "prod\r\nserver\x00"
    proxy = start("--discovery-interval", "300")
    assert name_of(proxy, fake, "project_id", WEB_SHOP) == "Web\ufffd[2J\ufffdShop"
    assert name_of(proxy, fake, "api_key_id", key["id"]) == "prod\ufffd\ufffdserver\ufffd"
    assert {p: n for p, n in admin.project_names().items() if p != WEB_SHOP} == {
        p: name_of(proxy, fake, "project_id", p) for p in admin.project_names() if p != WEB_SHOP}, "the rest of the list"
    proxy.advance(300)  # walked again: the same names, not warned about again
    warned = [e for e in logged if e.get("problem") == "not_text"]
    assert sorted((e["id_field"], e["id"], e["attributes"]) for e in warned) == [
        ("api_key_id", key["id"], ["name"]), ("project_id", WEB_SHOP, ["name"])]
    assert proxy.get("/metrics").status == 200 and proxy.get("/health").status == 200
    proxy.close()
    again = start(environ=None)  # the history kept the names, made text
    assert name_of(again, fake, "project_id", WEB_SHOP) == "Web\ufffd[2J\ufffdShop"


def test_a_key_the_admin_api_no_longer_lists_is_named_and_marked_deleted_after_a_whole_walk(
        start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    proxy = start("--discovery-interval", "300")
    gone, kept = "key_Ws4kStagingD6", "key_Ws1kProdSrvA9"
    admin.delete_key(WEB_SHOP, gone)
    serve_rows(fake, [{"api_key_id": gone}, {"api_key_id": kept}])
    assert "api_key_deleted" not in names_of(proxy, "api_key_id", [gone])[gone], "not before a walk has seen it"
    # A walk that fails half way tells nothing about what is gone.
    admin.fail_next(api_keys_path(DATA_PIPELINE), reply(500, openai_error("boom", type="server_error")))
    proxy.advance(300)
    assert "api_key_deleted" not in names_of(proxy, "api_key_id", [gone])[gone]
    proxy.advance(1)  # the retry walks the whole organization
    named = names_of(proxy, "api_key_id", [gone, kept])
    assert named[gone] == {"api_key_name": "Staging", "api_key_redacted_value": "sk-proj-Gh...u4Vw",
                           "api_key_owner_name": "Dana Scully", "api_key_deleted": True}
    assert "api_key_deleted" not in named[kept]


def test_walks_send_exactly_the_specified_cursors_flags_and_key(start: Start, admin: FakeAdmin,
                                                                fake: FakeOpenAI) -> None:
    start()
    size = admin.org.page_size
    project_ids = [p["id"] for p in admin.org.projects]
    assert [r.target for r in admin.requests_for(PROJECTS)] == expected_targets(
        PROJECTS, "&include_archived=true", project_ids, size)
    for project in project_ids:
        key_ids = [k["id"] for k in admin.org.api_keys.get(project, [])]
        assert [r.target for r in admin.requests_for(api_keys_path(project))] == expected_targets(
            api_keys_path(project), "&owner_project_access=any", key_ids, size)
        accounts = [a["id"] for a in admin.org.service_accounts.get(project, [])]
        if project == OLD_CHATBOT:
            accounts = []  # archived: one request, answered 400, skipped
        assert [r.target for r in admin.requests_for(service_accounts_path(project))] == expected_targets(
            service_accounts_path(project), "", accounts, size)
    assert [r.target for r in admin.requests_for(ADMIN_KEYS)] == expected_targets(
        ADMIN_KEYS, "", [k["id"] for k in admin.org.admin_keys], size)
    assert [r.target for r in admin.requests_for(USERS)] == expected_targets(
        USERS, "", [u["id"] for u in admin.org.users], size)
    assert fake.received and all(r.header("Authorization") == f"Bearer {TOKEN}".encode() for r in fake.received)


def test_the_admin_key_is_never_forwarded_for_callers(start: Start, fake: FakeOpenAI) -> None:
    proxy = start()
    serve_rows(fake, [])
    proxy.get(COSTS + "?start_time=1", headers=CALLER)
    assert fake.last().header("Authorization") == CALLER["Authorization"].encode()
    proxy.get(COSTS + "?start_time=1", headers={})
    assert fake.last().path == COSTS.encode() and fake.last().header("Authorization") is None


# --- precedence and history ------------------------------------------------------------------

def test_a_deleted_key_is_still_named_after_a_restart(start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    start().close()
    admin.delete_key(WEB_SHOP, "key_Ws4kStagingD6")
    serve_rows(fake, [{"api_key_id": "key_Ws4kStagingD6"}])
    remembered = {"api_key_name": "Staging", "api_key_redacted_value": "sk-proj-Gh...u4Vw",
                  "api_key_owner_name": "Dana Scully"}
    # With discovery, whose whole walk no longer lists it, it is marked deleted; with the
    # history alone, nobody knows.
    for environ, marked in ((ADMIN_KEY, {"api_key_deleted": True}), (None, {})):
        again = start(environ=environ)
        assert names_of(again, "api_key_id", ["key_Ws4kStagingD6"]) == {
            "key_Ws4kStagingD6": {**remembered, **marked}}
        assert again.get("/health").json()["names_by_source"]["history"] >= 1
        again.close()


def test_the_alias_file_wins_over_discovery_which_wins_over_history(start: Start, admin: FakeAdmin,
                                                                     fake: FakeOpenAI, tmp_path: Path) -> None:
    start().close()
    admin.org.api_keys[WEB_SHOP][0]["name"] = "Production server (renamed)"  # history has the old name
    admin.delete_key(WEB_SHOP, "key_Ws4kStagingD6")  # only history knows it now
    aliases = tmp_path / "aliases.toml"
    aliases.write_text('[api_keys]\nkey_Ws3kCheckoutC7 = "checkout-from-alias-file"\n')
    again = start("--aliases", str(aliases))
    ids = ["key_Ws1kProdSrvA9", "key_Ws3kCheckoutC7", "key_Ws4kStagingD6"]
    serve_rows(fake, [{"api_key_id": key} for key in ids])
    named = names_of(again, "api_key_id", ids)
    assert named["key_Ws1kProdSrvA9"]["api_key_name"] == "Production server (renamed)"
    assert named["key_Ws3kCheckoutC7"] == {"api_key_name": "checkout-from-alias-file",
                                           "api_key_redacted_value": "sk-svcac-Ef...v3Wx",
                                           "api_key_owner_name": "checkout-bot"}
    assert named["key_Ws4kStagingD6"]["api_key_name"] == "Staging"
    sources = again.get("/health").json()["names_by_source"]
    assert sources["aliases"] == 1 and sources["discovered"] > 10 and sources["history"] == 1
    # History keeps the newest name learned.
    remembered = {r.learned.id: r.learned.name for r in again.service.history.load()}
    assert remembered["key_Ws1kProdSrvA9"] == "Production server (renamed)"


def test_history_names_are_served_before_the_first_walk_ends(start: Start, admin: FakeAdmin,
                                                             fake: FakeOpenAI) -> None:
    start().close()
    admin.org.api_keys[WEB_SHOP][0]["name"] = "Production server (renamed)"
    admin.fail_next(PROJECTS, hold)
    again = start()  # serving at once, while its first walk waits on the upstream
    assert health_discovery(again)["running"] is True
    assert name_of(again, fake, "api_key_id", "key_Ws1kProdSrvA9") == "Production server"
    again.advance(TIMEOUT)  # the held page times out...
    again.advance(1)  # ...and the retry a second later learns
    assert name_of(again, fake, "api_key_id", "key_Ws1kProdSrvA9") == "Production server (renamed)"


def test_a_corrupt_state_store_is_moved_aside_and_discovery_fills_a_new_one(start: Start, fake: FakeOpenAI,
                                                                            tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    proxy = start()
    aside = [p for p in state.iterdir() if p.name.startswith("history.sqlite3.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert any(str(aside[0]) in note for note in proxy.service.notes)  # reported where it went
    assert name_of(proxy, fake, "api_key_id", "key_Ws1kProdSrvA9") == "Production server"
    assert "key_Ws1kProdSrvA9" in {r.learned.id for r in proxy.service.history.load()}


# --- when discovery walks --------------------------------------------------------------------

def test_a_walk_runs_at_start_and_every_discovery_interval(start: Start, admin: FakeAdmin) -> None:
    one_quick_project(admin)
    proxy = start("--discovery-interval", "300")
    assert walks(admin) == 1
    proxy.advance(299.9)
    assert walks(admin) == 1
    proxy.advance(0.1)
    assert walks(admin) == 2
    proxy.advance(300)
    assert walks(admin) == 3


def test_a_sighup_walks_at_once(start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    one_quick_project(admin)
    proxy = start()
    admin.add_key(WEB_SHOP, {"id": "key_AfterStart", "name": "After start", "owner": user_owner(admin.org.users[0])})
    sighup(proxy)
    assert walks(admin) == 2
    assert name_of(proxy, fake, "api_key_id", "key_AfterStart") == "After start"


def test_a_key_created_after_start_is_named_on_the_request_after_its_first_sighting(
        start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    proxy = start()
    admin.add_key(DATA_PIPELINE, {"id": "key_NewThisMorning", "name": "Created this morning",
                                  "redacted_value": "sk-proj-Nw...m0rn", "owner": user_owner(admin.org.users[0])})
    assert name_of(proxy, fake, "api_key_id", "key_NewThisMorning") == "unknown"
    assert walks(admin) == 2  # the sighting set off a walk
    assert name_of(proxy, fake, "api_key_id", "key_NewThisMorning") == "Created this morning"


@pytest.mark.parametrize("field", ["api_key_id", "project_id"])
def test_unknown_sightings_set_off_discovery_at_most_once_per_cooldown(start: Start, admin: FakeAdmin,
                                                                       fake: FakeOpenAI, field: str) -> None:
    one_quick_project(admin)
    proxy = start("--discovery-cooldown", "60")
    serve_rows(fake, [{field: "id_NobodyKnows"}])
    proxy.get(COSTS + "?start_time=1")
    assert walks(admin) == 2
    proxy.advance(59.9)
    for _ in range(3):
        proxy.get(COSTS + "?start_time=1")
    assert walks(admin) == 2
    sighup(proxy)  # not bound by the cooldown
    assert walks(admin) == 3
    proxy.advance(0.1)
    proxy.get(COSTS + "?start_time=1")
    assert walks(admin) == 4


def test_with_workers_the_first_process_walks_for_the_daemon_and_shares_what_it_learned(
        make_proxy: Callable[..., InMemoryProxy], admin: FakeAdmin, fake: FakeOpenAI, tmp_path: Path) -> None:
    one_quick_project(admin)
    reactor = SpawningReactor()
    proxy = make_proxy("--workers", "2", "--discovery-cooldown", "60", environ=ADMIN_KEY, reactor=reactor)
    proxy.start_service()
    proxy.flush()
    (worker,) = reactor.spawned
    shared = tmp_path / "state" / "run" / "names" / "names.json"

    def learned_for_the_workers() -> set[str]:
        return {row[1] for row in json.loads(shared.read_text())["discovered"]}

    assert walks(admin) == 1 and "key_Ws1kProdSrvA9" in learned_for_the_workers()
    admin.add_key(WEB_SHOP, {"id": "key_NewThisMorning", "name": "Created this morning",
                             "owner": user_owner(admin.org.users[0])})
    worker.protocol.childDataReceived(REQUESTS_FD, b"discover openai\n")  # the worker saw an unknown id
    proxy.flush()
    assert walks(admin) == 2 and "key_NewThisMorning" in learned_for_the_workers()
    # The cooldown is the daemon's: this process's own sighting, or the worker's again, waits.
    serve_rows(fake, [{"api_key_id": "key_NobodyKnows"}])
    proxy.get(COSTS + "?start_time=1")
    worker.protocol.childDataReceived(REQUESTS_FD, b"discover openai\n")
    proxy.flush()
    assert walks(admin) == 2
    proxy.advance(60)
    worker.protocol.childDataReceived(REQUESTS_FD, b"discover openai\n")
    proxy.flush()
    assert walks(admin) == 3
    stopped = proxy.service.stopService()
    worker.end(ProcessDone(0))
    proxy.resolve(stopped)


def test_an_unknown_user_alone_does_not_set_off_discovery(start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    one_quick_project(admin)
    proxy = start()
    assert name_of(proxy, fake, "user_id", "user-NobodyKnows") == "unknown"
    assert walks(admin) == 1


def test_requests_during_a_walk_fold_into_one_more_walk_after_it(start: Start, admin: FakeAdmin) -> None:
    one_quick_project(admin)
    admin.fail_next(PROJECTS, hold)
    proxy = start()
    for _ in range(3):
        sighup(proxy)
    assert walks(admin) == 1
    proxy.advance(TIMEOUT)  # the held walk fails; the one folded walk runs at once and learns
    assert walks(admin) == 2 and health_discovery(proxy)["last_error"] is None
    proxy.advance(10)  # the failure's retry was replaced by the interval's walk
    assert walks(admin) == 2


def test_a_stop_during_a_walk_cancels_it(start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    one_quick_project(admin)
    admin.fail_next(PROJECTS, hold)
    proxy = start()
    proxy.close()  # and no timer is left behind (close checks): no retry of a "failure"
    assert [r.path for r in fake.abandoned] == [PROJECTS.encode()]
    assert proxy.service.discovery is not None
    assert proxy.service.discovery.status()["last_failure"] is None  # a stop is not a failure


# --- failures --------------------------------------------------------------------------------

FAILURES: list[tuple[Behaviour, str]] = [
    (reply(401, openai_error("Incorrect API key provided: sk-admin-****5f2c")), "refused (401)"),
    (reply(403, openai_error("You do not have access")), "refused (403)"),
    (reply(500, "<html><body>oops</body></html>", content_type="text/html"), "answered 500"),
    (reply(502, "bad gateway", content_type="text/plain"), "answered 502"),
    (reply(200, "<html>not json</html>", content_type="text/html"), "not JSON"),
    (reply(200, {"object": "list"}), "no data list"),
    (reply(200, {"object": "list", "data": [], "has_more": True}), "has_more without a new last_id"),
    (hold, f"within {TIMEOUT:g} seconds"),
]


@pytest.mark.parametrize(("behaviour", "reason"), FAILURES,
                         ids=["401", "403", "500", "502", "html", "no-data", "endless", "hanging"])
def test_a_failed_discovery_is_retried_and_the_daemon_keeps_serving(
        start: Start, admin: FakeAdmin, fake: FakeOpenAI, behaviour: Behaviour, reason: str) -> None:
    one_quick_project(admin)
    admin.fail_next(PROJECTS, behaviour)
    proxy = start()
    failed_at = 0.0
    if behaviour is hold:
        proxy.advance(TIMEOUT - 0.01)
        assert health_discovery(proxy)["running"] is True
        proxy.advance(0.01)
        failed_at = TIMEOUT
        assert [r.path for r in fake.abandoned] == [PROJECTS.encode()]  # the held request was dropped
    status = health_discovery(proxy)
    assert reason in status["last_error"] and status["last_error"].startswith(PROJECTS)
    assert status["last_success"] is None and status["running"] is False
    # Serving meanwhile (an unknown user sets off no walk: the retry is the backoff's).
    assert name_of(proxy, fake, "user_id", "user-Ada7LvQ2cW9xRt") == "unknown"
    proxy.advance(0.99)
    assert walks(admin) == 1
    proxy.advance(0.01)  # the first backoff: one second
    assert walks(admin) == 2
    assert proxy.clock.seconds() == failed_at + 1
    assert name_of(proxy, fake, "user_id", "user-Ada7LvQ2cW9xRt") == "Ada Lovelace"
    status = health_discovery(proxy)
    assert status["last_error"] is None and status["last_success"] is not None
    assert status["last_failure"] is not None


def test_the_backoff_doubles_up_to_the_interval_and_resets_after_a_success(start: Start,
                                                                           admin: FakeAdmin) -> None:
    one_quick_project(admin)
    admin.fail_next(PROJECTS, reply(500, "oops", content_type="text/plain"), times=5)
    proxy = start("--discovery-interval", "6")
    for delay in (1, 2, 4, 6, 6):  # failures at 0, 1, 3, 7 and 13; the walk at 19 succeeds
        before = walks(admin)
        proxy.advance(delay - 0.5)
        assert walks(admin) == before
        proxy.advance(0.5)
        assert walks(admin) == before + 1
    assert health_discovery(proxy)["last_error"] is None
    admin.fail_next(PROJECTS, reply(500, "oops", content_type="text/plain"))
    proxy.advance(6)  # the interval's walk fails: backing off starts from one second again
    assert health_discovery(proxy)["last_error"] is not None
    proxy.advance(1)
    assert walks(admin) == 8 and health_discovery(proxy)["last_error"] is None


@pytest.mark.parametrize(("retry_after", "delay"), [
    ("2", 2.0),
    ("99999", 3600.0),  # at most an hour
    ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0),  # a date: the usual backoff
], ids=["seconds", "capped", "http-date"])
def test_a_retry_follows_retry_after(start: Start, admin: FakeAdmin, retry_after: str, delay: float) -> None:
    one_quick_project(admin)
    admin.fail_next(PROJECTS, reply(429, openai_error("Rate limit", code="rate_limit_exceeded"),
                                    headers=[("Retry-After", retry_after)]))
    proxy = start()
    assert "rate limited (429)" in health_discovery(proxy)["last_error"]
    proxy.advance(delay - 0.01)
    assert walks(admin) == 1  # not before the upstream allowed
    proxy.advance(0.01)
    assert walks(admin) == 2 and health_discovery(proxy)["last_error"] is None


def test_a_5xx_retry_after_is_followed_too(start: Start, admin: FakeAdmin) -> None:
    one_quick_project(admin)
    admin.fail_next(PROJECTS, reply(503, "busy", content_type="text/plain", headers=[("Retry-After", "30")]))
    proxy = start()
    proxy.advance(29.9)
    assert walks(admin) == 1
    proxy.advance(0.1)
    assert walks(admin) == 2


def test_failures_never_drop_known_names_and_a_partial_walk_keeps_what_it_learned(
        start: Start, admin: FakeAdmin, fake: FakeOpenAI) -> None:
    proxy = start()
    serve_rows(fake, [{"api_key_id": k} for k in admin.key_names()])
    known = names_of(proxy, "api_key_id", list(admin.key_names()))
    admin.org.users.append({"id": "user_NewcomerX", "name": "New Comer", "email": "new@example.com"})
    admin.add_key(WEB_SHOP, {"id": "key_Ws9kPartialZ", "name": "Learned by a partial walk",
                             "owner": user_owner(admin.org.users[0])})
    admin.delete_key(DATA_PIPELINE, "key_Dp2kNotebkG3")
    # Keys walk fine, users fail: what was known stays, and the new key is learned.
    admin.fail_next(USERS, reply(500, "oops", content_type="text/plain"))
    sighup(proxy)
    assert health_discovery(proxy)["last_error"].startswith(USERS)
    assert names_of(proxy, "api_key_id", list(known)) == known
    assert name_of(proxy, fake, "api_key_id", "key_Ws9kPartialZ") == "Learned by a partial walk"
    assert "key_Ws9kPartialZ" in {r.learned.id for r in proxy.service.history.load()}
    assert name_of(proxy, fake, "user_id", "user_NewcomerX") == "unknown"
    proxy.advance(1)  # the retry walks the users again
    assert name_of(proxy, fake, "user_id", "user_NewcomerX") == "New Comer"


# --- the admin key ---------------------------------------------------------------------------

def test_the_admin_key_is_in_no_log_event_health_answer_or_file(start: Start, admin: FakeAdmin,
                                                                  logged: list[dict[str, Any]],
                                                                  tmp_path: Path) -> None:
    one_quick_project(admin)
    # OpenAI's 401 quotes the key it refused; only the status may reach the log.
    admin.fail_next(PROJECTS, reply(401, openai_error(f"Incorrect API key provided: {TOKEN}")))
    proxy = start()
    assert "(401)" in health_discovery(proxy)["last_error"]
    assert TOKEN not in proxy.get("/health").body.decode()
    proxy.advance(1)
    assert logged and not any(TOKEN in repr(event) for event in logged)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]


def test_an_admin_key_file_is_used_and_one_readable_by_others_is_warned_about(
        start: Start, admin: FakeAdmin, logged: list[dict[str, Any]], tmp_path: Path) -> None:
    one_quick_project(admin)
    key_file = tmp_path / "admin.key"
    key_file.write_text(TOKEN + "\n")
    key_file.chmod(0o644)
    start("--admin-key-file", str(key_file), environ=None)
    warnings = [e for e in logged if e.get("path") == str(key_file) and e["log_level"] == LogLevel.warn]
    assert [e["mode"] for e in warnings] == [0o644]
    assert admin.requests_for(PROJECTS)[0].header("Authorization") == f"Bearer {TOKEN}".encode()


def test_a_private_admin_key_file_is_not_warned_about(start: Start, admin: FakeAdmin,
                                                      logged: list[dict[str, Any]], tmp_path: Path) -> None:
    one_quick_project(admin)
    key_file = tmp_path / "admin.key"
    key_file.write_text(TOKEN + "\n")
    key_file.chmod(0o600)
    start("--admin-key-file", str(key_file), environ=None)
    assert not [e for e in logged if e.get("path") == str(key_file)]
    assert walks(admin) == 1


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot read the admin key"),
    ("", "is empty"),
    (f"{TOKEN} {TOKEN}\n", "characters a key cannot have"),
], ids=["missing", "empty", "two-words"])
def test_an_unusable_admin_key_file_stops_the_start(make_proxy: Callable[..., InMemoryProxy], tmp_path: Path,
                                                    content: str | None, problem: str) -> None:
    key_file = tmp_path / "admin.key"
    if content is not None:
        key_file.write_text(content)
        key_file.chmod(0o600)
    with pytest.raises(SystemExit) as stopped:
        make_proxy("--admin-key-file", str(key_file))
    assert str(key_file) in str(stopped.value) and problem in str(stopped.value)
    assert TOKEN not in str(stopped.value)


def test_without_a_key_discovery_is_off_and_says_so(start: Start, fake: FakeOpenAI) -> None:
    proxy = start(environ=None)
    proxy.advance(3600)
    assert proxy.service.discovery is None
    assert health_discovery(proxy) == {"enabled": False}
    assert any("OpenAI's discovery is off" in note for note in proxy.service.notes)
    assert fake.received == []


# --- what is still unnamed -------------------------------------------------------------------

def test_unknown_ids_report_lists_unresolved_ids_as_json_and_toml(start: Start, admin: FakeAdmin,
                                                                  fake: FakeOpenAI) -> None:
    one_quick_project(admin)
    proxy = start()
    serve_rows(fake, [{"api_key_id": "key_Ghost1", "project_id": WEB_SHOP},
                      {"api_key_id": "key_Ghost1", "project_id": "proj_Phantom"},
                      {"api_key_id": "key_Ws1kProdSrvA9", "user_id": None}])
    proxy.get(COSTS + "?start_time=1")
    proxy.advance(5)
    proxy.get(COSTS + "?start_time=1")
    report = proxy.get("/orgproxy/unknown").json()
    rows = {(row["field"], row["id"]): row for row in report["data"]}
    assert set(rows) == {("api_key_id", "key_Ghost1"), ("project_id", "proj_Phantom")}
    assert rows[("api_key_id", "key_Ghost1")]["count"] == 4
    assert rows[("project_id", "proj_Phantom")]["count"] == 2
    assert (rows[("api_key_id", "key_Ghost1")]["first_seen"], rows[("api_key_id", "key_Ghost1")]["last_seen"]) == (
        "1970-01-01T00:00:00+00:00", "1970-01-01T00:00:05+00:00")
    toml = proxy.get("/orgproxy/unknown?format=toml")
    assert (toml.header("Content-Type") or "").startswith("application/toml")
    text = toml.body.decode()
    assert "[api_keys]\n# key_Ghost1 = \"\"  # seen 4 times" in text
    assert "[projects]\n# proj_Phantom = \"\"  # seen 2 times" in text
    uncommented = "\n".join(line.removeprefix("# ") if "= \"\"" in line else line for line in text.splitlines())
    assert tomllib.loads(uncommented) == {"api_keys": {"key_Ghost1": ""}, "projects": {"proj_Phantom": ""}}
