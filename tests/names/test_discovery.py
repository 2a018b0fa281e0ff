"""Names learned from the Admin API and remembered, in the real daemon against a fake
Admin API that pages two items at a time."""

from __future__ import annotations

import signal
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_clean_output
from tests.support.daemon import Daemon
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
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply, hold, reply
from tests.support.raw_http import call

ADMIN_KEY = "sk-admin-DISCOVERY-must-never-be-logged-7d1e"
COSTS = "/v1/organization/costs"
LEARNED = "Discovery (start) learned"


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeAdmin:
    return FakeAdmin(upstream, sample_org())


def start(upstream: FakeUpstream, cwd: Path, *args: str, key: str | None = ADMIN_KEY) -> Daemon:
    env = {"OPENAI_ADMIN_KEY": key} if key else {}
    return Daemon(["--upstream", upstream.url, "--timeout", "2", *args], cwd=cwd, env=env).wait_ready()


def stop(daemon: Daemon) -> None:
    assert daemon.stop() == 0
    assert_clean_output(daemon)
    assert ADMIN_KEY not in daemon.output, "the admin key appeared in the log"


@pytest.fixture
def daemon(fake: FakeAdmin, tmp_path: Path) -> Iterator[Daemon]:
    running = start(fake.upstream, tmp_path)
    yield running
    stop(running)


def serve_rows(upstream: FakeUpstream, rows: list[dict]) -> None:
    upstream.on(COSTS, reply(body={"object": "page", "data": rows}))


def names_of(daemon: Daemon, field: str, ids: list[str]) -> dict[str, dict]:
    """What the daemon adds beside each id of ``field``, read through the proxy."""
    name_field = field.replace("_id", "_name")
    rows = call(daemon.url, COSTS + "?start_time=1").json()["data"]
    return {row[field]: {k: v for k, v in row.items() if k != field} for row in rows if row.get(field) in ids
            and name_field in row}


def expected_targets(path: str, flags: str, ids: list[str], page_size: int) -> list[bytes]:
    """The requests a walk of ``ids`` must send: limit=100, the flags, then after=<last_id>."""
    targets = [f"{path}?limit=100{flags}"]
    for end in range(page_size, len(ids), page_size):
        targets.append(f"{path}?limit=100{flags}&after={ids[end - 1]}")
    return [t.encode() for t in targets]


def test_every_key_project_and_user_in_every_page_is_named(daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    keys = fake.key_names()
    serve_rows(fake.upstream, [{"api_key_id": key} for key in keys]
               + [{"project_id": p} for p in fake.project_names()]
               + [{"user_id": u} for u in fake.user_names()])
    named = names_of(daemon, "api_key_id", list(keys))
    assert {key: row["api_key_name"] for key, row in named.items()} == keys
    assert named["key_Ws2kZoeLptB8"] == {"api_key_name": "Zoë's key", "api_key_redacted_value": "sk-proj-Cd...w2Xy"}
    assert named["key_Ad1kMainAdmM8"]["api_key_redacted_value"] == "sk-admin...a1Bc"
    projects = names_of(daemon, "project_id", list(fake.project_names()))
    assert {p: row["project_name"] for p, row in projects.items()} == fake.project_names()  # archived too
    users = names_of(daemon, "user_id", list(fake.user_names()))
    assert users["user_Cw9Xn4JdSe7kPb"] == {"user_name": "陈伟", "user_email": "chen@example.com"}
    assert {u: row["user_name"] for u, row in users.items()} == fake.user_names()


def test_walks_send_exactly_the_specified_cursors_flags_and_key(daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    size = fake.org.page_size
    project_ids = [p["id"] for p in fake.org.projects]
    assert [r.target for r in fake.requests_for(PROJECTS)] == expected_targets(
        PROJECTS, "&include_archived=true", project_ids, size)
    for project in project_ids:
        key_ids = [k["id"] for k in fake.org.api_keys.get(project, [])]
        assert [r.target for r in fake.requests_for(api_keys_path(project))] == expected_targets(
            api_keys_path(project), "&owner_project_access=any", key_ids, size)
        accounts = [a["id"] for a in fake.org.service_accounts.get(project, [])]
        if project == OLD_CHATBOT:
            accounts = []  # archived: one request, answered 400, skipped
        assert [r.target for r in fake.requests_for(service_accounts_path(project))] == expected_targets(
            service_accounts_path(project), "", accounts, size)
    assert [r.target for r in fake.requests_for(ADMIN_KEYS)] == expected_targets(
        ADMIN_KEYS, "", [k["id"] for k in fake.org.admin_keys], size)
    assert [r.target for r in fake.requests_for(USERS)] == expected_targets(
        USERS, "", [u["id"] for u in fake.org.users], size)
    walked = [r for r in fake.upstream.received if b"/v1/organization/costs" not in r.target]
    assert walked and all(r.header("Authorization") == f"Bearer {ADMIN_KEY}" for r in walked)


def test_the_admin_key_is_never_forwarded_for_callers(daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    serve_rows(fake.upstream, [])
    call(daemon.url, COSTS + "?start_time=1", headers={"Authorization": "Bearer sk-caller"})
    assert fake.upstream.last().header("Authorization") == "Bearer sk-caller"
    call(daemon.url, COSTS + "?start_time=1", headers={})
    assert fake.upstream.last().header("Authorization") is None


def test_a_deleted_key_is_still_named_after_a_restart(fake: FakeAdmin, tmp_path: Path) -> None:
    first = start(fake.upstream, tmp_path)
    try:
        first.wait_for(LEARNED)
    finally:
        stop(first)
    fake.delete_key(WEB_SHOP, "key_Ws4kStagingD6")
    serve_rows(fake.upstream, [{"api_key_id": "key_Ws4kStagingD6"}])
    for key in (ADMIN_KEY, None):  # with discovery, and with the history alone
        again = start(fake.upstream, tmp_path, key=key)
        try:
            if key:
                again.wait_for(LEARNED)
            assert names_of(again, "api_key_id", ["key_Ws4kStagingD6"]) == {
                "key_Ws4kStagingD6": {"api_key_name": "Staging", "api_key_redacted_value": "sk-proj-Gh...u4Vw"}}
        finally:
            stop(again)


def test_a_key_created_after_start_is_named_on_the_request_after_its_first_sighting(
        daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    ada = fake.org.users[0]
    fake.add_key(DATA_PIPELINE, {"id": "key_NewThisMorning", "name": "Created this morning",
                                 "redacted_value": "sk-proj-Nw...m0rn", "owner": user_owner(ada)})
    serve_rows(fake.upstream, [{"api_key_id": "key_NewThisMorning"}])
    before = len(daemon.lines)
    assert names_of(daemon, "api_key_id", ["key_NewThisMorning"])["key_NewThisMorning"]["api_key_name"] == "unknown"
    daemon.wait_for("Discovery (an unknown id was seen) learned", start=before)
    assert names_of(daemon, "api_key_id", ["key_NewThisMorning"])["key_NewThisMorning"]["api_key_name"] == \
        "Created this morning"


def test_unknown_sightings_set_off_discovery_at_most_once_per_cooldown(daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    serve_rows(fake.upstream, [{"api_key_id": "key_NobodyKnows"}])
    before = len(daemon.lines)
    call(daemon.url, COSTS + "?start_time=1")
    daemon.wait_for("Discovery (an unknown id was seen) learned", start=before)
    def walks() -> int:  # a walk's first page is the request without a cursor
        return sum(b"after=" not in r.target for r in fake.requests_for(PROJECTS))

    walked = walks()
    for _ in range(3):
        call(daemon.url, COSTS + "?start_time=1")
    daemon.process.send_signal(signal.SIGHUP)  # an observable later walk: the cooldown's
    daemon.wait_for("Discovery (SIGHUP) learned", start=before)  # would have come before it
    assert walks() == walked + 1


def failing_start(fake: FakeAdmin, tmp_path: Path, behaviour, path: str = PROJECTS) -> Daemon:  # type: ignore[no-untyped-def]
    fake.fail_next(path, behaviour)
    return start(fake.upstream, tmp_path)


@pytest.mark.parametrize(("behaviour", "reason"), [
    (reply(401, openai_error("Incorrect API key provided: sk-admin-****7d1e")), "the admin key was refused (401)"),
    (reply(403, openai_error("You do not have access")), "the admin key was refused (403)"),
    (reply(500, "<html><body>oops</body></html>", content_type="text/html"), "the upstream answered 500"),
    (reply(200, "<html>not json</html>", content_type="text/html"), "the page is not JSON"),
    (reply(200, {"object": "list"}), "the page has no data list"),
    (hold(10), "did not answer within 2 seconds"),
], ids=["401", "403", "500", "html", "no data", "hanging"])
def test_a_failed_discovery_is_retried_and_the_daemon_keeps_serving(fake: FakeAdmin, tmp_path: Path,
                                                                   behaviour, reason: str) -> None:  # type: ignore[no-untyped-def]
    daemon = failing_start(fake, tmp_path, behaviour)
    try:
        line = daemon.wait_for("Discovery (start) failed")
        assert reason in line and "retrying in 1 s (backing off)" in line
        assert call(daemon.url, "/health").json()["discovery"]["last_error"] in line
        serve_rows(fake.upstream, [{"api_key_id": "key_Ws1kProdSrvA9"}])
        assert call(daemon.url, COSTS + "?start_time=1").status == 200  # serving meanwhile
        daemon.wait_for(") learned")  # the retry, or a walk the unknown id set off first
        assert names_of(daemon, "api_key_id", ["key_Ws1kProdSrvA9"])["key_Ws1kProdSrvA9"]["api_key_name"] == \
            "Production server"
        health = call(daemon.url, "/health").json()["discovery"]
        assert health["last_error"] is None and health["last_success"] is not None
    finally:
        stop(daemon)


def test_retry_follows_retry_after(fake: FakeAdmin, tmp_path: Path) -> None:
    times: list[float] = []

    def rate_limited(handler: Handler, received: Received) -> None:
        times.append(time.monotonic())
        handler.send_reply(Reply(429, [("Content-Type", "application/json"), ("Retry-After", "2")],
                                 b'{"error": {"message": "Rate limit", "type": "rate_limit_exceeded",'
                                 b' "param": null, "code": null}}'))

    daemon = failing_start(fake, tmp_path, rate_limited)
    try:
        line = daemon.wait_for("Discovery (start) failed")
        assert "rate limited (429)" in line and "retrying in 2 s (as Retry-After asks)" in line
        daemon.wait_for("Discovery (retry) learned")
        first_retry = fake.requests_for(PROJECTS)[1]
        assert first_retry.received_at - times[0] >= 2.0  # not before the upstream allowed
    finally:
        stop(daemon)


def test_failures_never_drop_known_names_and_a_partial_walk_keeps_what_it_learned(
        daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    serve_rows(fake.upstream, [{"api_key_id": k} for k in fake.key_names()]
               + [{"user_id": "user_NewcomerX"}])
    known = names_of(daemon, "api_key_id", list(fake.key_names()))
    fake.org.users.append({"id": "user_NewcomerX", "name": "New Comer", "email": "new@example.com"})
    # Keys walk fine, users fail: the keys stay, and a later success adds the newcomer.
    fake.fail_next(USERS, reply(500, "oops", content_type="text/plain"))
    fake.delete_key(DATA_PIPELINE, "key_Dp2kNotebkG3")
    before = len(daemon.lines)
    daemon.process.send_signal(signal.SIGHUP)
    line = daemon.wait_for("Discovery (SIGHUP) failed", start=before)
    assert "kept" in line and "names learned before it" in line
    assert names_of(daemon, "api_key_id", list(fake.key_names()) + ["key_Dp2kNotebkG3"]) == known
    daemon.wait_for(") learned", start=before)
    users = names_of(daemon, "user_id", ["user_NewcomerX"])
    assert users["user_NewcomerX"]["user_name"] == "New Comer"


def test_a_corrupt_state_store_is_moved_aside_and_the_daemon_serves(fake: FakeAdmin, tmp_path: Path) -> None:
    state = tmp_path / "var"
    state.mkdir()
    (state / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    daemon = start(fake.upstream, tmp_path)
    try:
        line = daemon.wait_for("corrupt")
        aside = [p for p in state.iterdir() if p.name.startswith("history.sqlite3.corrupt-")]
        assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
        assert str(aside[0]) in line
        daemon.wait_for(LEARNED)
        serve_rows(fake.upstream, [{"api_key_id": "key_Ws1kProdSrvA9"}])
        assert names_of(daemon, "api_key_id", ["key_Ws1kProdSrvA9"])["key_Ws1kProdSrvA9"]["api_key_name"] == \
            "Production server"
    finally:
        stop(daemon)


def test_the_alias_file_wins_over_discovery_which_wins_over_history(fake: FakeAdmin, tmp_path: Path) -> None:
    first = start(fake.upstream, tmp_path)
    try:
        first.wait_for(LEARNED)
    finally:
        stop(first)
    fake.org.api_keys[WEB_SHOP][0]["name"] = "Production server (renamed)"  # history has the old name
    aliases = tmp_path / "aliases.toml"
    aliases.write_text('[api_keys]\nkey_Ws3kCheckoutC7 = "checkout-from-alias-file"\n')
    again = start(fake.upstream, tmp_path, "--aliases", str(aliases))
    try:
        again.wait_for(LEARNED)
        serve_rows(fake.upstream, [{"api_key_id": "key_Ws1kProdSrvA9"}, {"api_key_id": "key_Ws3kCheckoutC7"}])
        named = names_of(again, "api_key_id", ["key_Ws1kProdSrvA9", "key_Ws3kCheckoutC7"])
        assert named["key_Ws1kProdSrvA9"]["api_key_name"] == "Production server (renamed)"
        assert named["key_Ws3kCheckoutC7"] == {"api_key_name": "checkout-from-alias-file",
                                               "api_key_redacted_value": "sk-svcac-Ef...v3Wx"}
        sources = call(again.url, "/health").json()["names_by_source"]
        assert sources["aliases"] == 1 and sources["discovered"] > 10
    finally:
        stop(again)


def test_admin_key_file_is_used_and_a_readable_by_others_file_is_warned_about(fake: FakeAdmin,
                                                                             tmp_path: Path) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text(ADMIN_KEY + "\n")
    key_file.chmod(0o644)
    daemon = start(fake.upstream, tmp_path, "--admin-key-file", str(key_file), key=None)
    try:
        assert "can be read by others (mode 644); chmod 600 it" in daemon.output
        daemon.wait_for(LEARNED)
        assert fake.requests_for(PROJECTS)[0].header("Authorization") == f"Bearer {ADMIN_KEY}"
    finally:
        stop(daemon)


def test_an_unreadable_admin_key_file_stops_the_start(fake: FakeAdmin, tmp_path: Path) -> None:
    daemon = Daemon(["--upstream", fake.upstream.url, "--admin-key-file", str(tmp_path / "missing.key")],
                    cwd=tmp_path)
    assert daemon.wait_exit() != 0
    assert "missing.key: cannot read the admin key" in daemon.output
    assert "Traceback" not in daemon.output


def test_without_a_credential_discovery_is_off_and_says_so(fake: FakeAdmin, tmp_path: Path) -> None:
    daemon = start(fake.upstream, tmp_path, key=None)
    try:
        assert "Discovery is off" in daemon.output
        assert call(daemon.url, "/health").json()["discovery"] == {"enabled": False}
        assert fake.requests_for(PROJECTS) == []
    finally:
        stop(daemon)


def test_unknown_ids_report_lists_unresolved_ids_as_json_and_toml(daemon: Daemon, fake: FakeAdmin) -> None:
    daemon.wait_for(LEARNED)
    serve_rows(fake.upstream, [{"api_key_id": "key_Ghost1", "project_id": WEB_SHOP},
                               {"api_key_id": "key_Ghost1", "project_id": "proj_Phantom"},
                               {"api_key_id": "key_Ws1kProdSrvA9", "user_id": None}])
    call(daemon.url, COSTS + "?start_time=1")
    call(daemon.url, COSTS + "?start_time=1")
    report = call(daemon.url, "/orgproxy/unknown").json()
    rows = {(row["field"], row["id"]): row for row in report["data"]}
    assert set(rows) == {("api_key_id", "key_Ghost1"), ("project_id", "proj_Phantom")}
    assert rows[("api_key_id", "key_Ghost1")]["count"] == 4
    assert rows[("project_id", "proj_Phantom")]["count"] == 2
    assert rows[("api_key_id", "key_Ghost1")]["first_seen"] <= rows[("api_key_id", "key_Ghost1")]["last_seen"]
    toml = call(daemon.url, "/orgproxy/unknown?format=toml")
    assert toml.header("Content-Type").startswith("application/toml")
    text = toml.body.decode()
    assert "[api_keys]\n# key_Ghost1 = \"\"  # seen 4 times" in text
    assert "[projects]\n# proj_Phantom = \"\"  # seen 2 times" in text
    uncommented = "\n".join(line.removeprefix("# ") if "= \"\"" in line else line for line in text.splitlines())
    assert tomllib.loads(uncommented) == {"api_keys": {"key_Ghost1": ""}, "projects": {"proj_Phantom": ""}}
