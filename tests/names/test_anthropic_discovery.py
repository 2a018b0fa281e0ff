"""Names learned from Anthropic's Admin API, in memory, in front of the fake Anthropic that
pages two items at a time: every page of every list (keys of every status, in both item
shapes; archived workspaces; users), the key sent only to Anthropic and only by discovery,
the same schedules, backoff, Retry-After, cooldown and never-drop rule as OpenAI's, and the
names kept in the history with their provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import ProcessDone

from orgproxy.names.history import History
from orgproxy.ops.firstprocess import REQUESTS_FD
from orgproxy.ops.reload import ReloadService
from tests.support.answers import TOKEN
from tests.support.fake_admin import FakeAdmin, sample_org
from tests.support.fake_anthropic import (
    ADMIN_KEY,
    API_KEYS,
    BILLING,
    BILLING_KEY,
    BILLING_KEY_OLD,
    BOT,
    BOT_KEY,
    JANE_DOE,
    JANE_SMITH,
    LEGACY_KEY,
    PERSONAL_KEY,
    PLATFORM,
    RESEARCH,
    SERVICE_ACCOUNTS,
    USERS,
    WORKSPACES,
    ZOE,
    FakeAnthropic,
    anthropic_error,
)
from tests.support.fake_openai import FakeOpenAI, Script, hold, reply
from tests.support.memory import InMemoryProxy
from tests.support.spawning import SpawningReactor

ANTHROPIC_KEY = {"ANTHROPIC_ADMIN_KEY": ADMIN_KEY}
COSTS = "/v1/organizations/cost_report"
CALLER = {"x-api-key": "sk-ant-admin01-caller-own", "anthropic-version": "2023-06-01"}
TIMEOUT = 2.0
KEY_NAMES = {BILLING_KEY: "billing-batch-prod", BILLING_KEY_OLD: "billing-batch-prod",
             LEGACY_KEY: "legacy-default-workspace-key", PERSONAL_KEY: "jane-laptop", BOT_KEY: "ci-deploy-bot key"}

Start = Callable[..., InMemoryProxy]


@pytest.fixture
def start(make_proxy: Callable[..., InMemoryProxy]) -> Start:
    """orgproxy with an Anthropic admin key (unless told otherwise), started: its first walk
    done, unless the fake holds it."""
    def started(*args: str, environ: dict[str, str] | None = ANTHROPIC_KEY) -> InMemoryProxy:
        proxy = make_proxy("--timeout", f"{TIMEOUT:g}", *args, environ=environ or {})
        proxy.start_service()
        proxy.flush()
        return proxy
    return started


def named(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the proxy answers them from Anthropic, names added."""
    fake_anthropic.on(COSTS, reply(body={"data": rows}))
    answer = proxy.get(COSTS, headers=CALLER)
    assert answer.status == 200, answer.body
    result: list[dict[str, Any]] = answer.json()["data"]
    return result


def name_of(proxy: InMemoryProxy, fake_anthropic: FakeAnthropic, field: str, id: str) -> str:
    (row,) = named(proxy, fake_anthropic, [{field: id}])
    return str(row[field.replace("_id", "_name")])


def walks(fake_anthropic: FakeAnthropic) -> int:
    """How many walks began: a walk's first request is the workspaces list without a cursor."""
    return sum(1 for r in fake_anthropic.received if r.path == WORKSPACES.encode() and b"after_id=" not in r.target)


def targets(fake_anthropic: FakeAnthropic, path: str) -> list[str]:
    return [r.target.decode() for r in fake_anthropic.received if r.path == path.encode()]


def sighup(proxy: InMemoryProxy) -> None:
    [reloading] = [service for service in proxy.service if isinstance(service, ReloadService)]
    reloading.on_sighup()
    proxy.flush()


def anthropic_status(proxy: InMemoryProxy) -> dict[str, Any]:
    status: dict[str, Any] = proxy.get("/health").json()["providers"]["anthropic"]["discovery"]
    return status


# --- what is learned, and how it is asked for -------------------------------------------------

def test_every_page_of_every_list_is_walked_with_the_key_in_x_api_key_alone(
        start: Start, fake_anthropic: FakeAnthropic, fake: FakeOpenAI) -> None:
    start()
    assert targets(fake_anthropic, WORKSPACES) == [
        f"{WORKSPACES}?limit=100&include_archived=true", f"{WORKSPACES}?limit=100&include_archived=true&after_id={PLATFORM}"]
    # The list without a status, then each status it may leave out; every one of them paged.
    keys = [k["id"] for k in fake_anthropic.org.api_keys]
    assert targets(fake_anthropic, API_KEYS) == [
        f"{API_KEYS}?limit=100", f"{API_KEYS}?limit=100&after_id={keys[1]}", f"{API_KEYS}?limit=100&after_id={keys[3]}",
        f"{API_KEYS}?limit=100&status=inactive", f"{API_KEYS}?limit=100&status=archived",
        f"{API_KEYS}?limit=100&status=expired"]
    assert targets(fake_anthropic, USERS) == [f"{USERS}?limit=100", f"{USERS}?limit=100&after_id={JANE_SMITH}"]
    for received in fake_anthropic.received:
        assert received.header("x-api-key") == ADMIN_KEY.encode()
        assert received.header("anthropic-version") == b"2023-06-01"
        assert received.header("authorization") is None
    assert fake.received == []  # the key goes to Anthropic alone


def test_keys_of_every_status_in_both_shapes_archived_workspaces_and_users_are_named(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    proxy = start()
    rows = named(proxy, fake_anthropic, [{"api_key_id": key} for key in KEY_NAMES]
                 + [{"workspace_id": w} for w in (BILLING, PLATFORM, RESEARCH)]
                 + [{"account_id": u} for u in (JANE_DOE, JANE_SMITH, ZOE)])
    assert {row["api_key_id"]: row["api_key_name"] for row in rows if "api_key_id" in row} == KEY_NAMES
    assert {row["workspace_id"]: row["workspace_name"] for row in rows if "workspace_id" in row} == {
        BILLING: "Billing", PLATFORM: "Platform", RESEARCH: "Research"}
    accounts = {row["account_id"]: (row["account_name"], row["account_email"]) for row in rows if "account_id" in row}
    assert accounts == {JANE_DOE: ("Jane Doe", "user@emaildomain.com"), JANE_SMITH: ("Jane Smith", "jane@example.com"),
                        ZOE: ("Zoë Ångström", "zoe@example.com")}
    # Only the fields Anthropic's answers get: no redacted value, no OpenAI extras.
    assert all(set(row) <= {"api_key_id", "api_key_name", "workspace_id", "workspace_name", "account_id",
                            "account_name", "account_email"} for row in rows)
    status = anthropic_status(proxy)
    assert status["enabled"] and status["last_success"] is not None and status["last_error"] is None
    assert status["names"] == len(KEY_NAMES) + 3 + 3
    assert proxy.get("/health").json()["discovery"] == {"enabled": False}  # OpenAI's: no key for it


def test_service_accounts_are_learned_where_anthropic_lists_them_and_skipped_where_it_refuses(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    # As the reference says: an Admin API key may not list them (403); the walk goes on.
    proxy = start()
    assert [r.target.decode() for r in fake_anthropic.received if r.path == SERVICE_ACCOUNTS.encode()] == [
        f"{SERVICE_ACCOUNTS}?limit=100&include_archived=true"]
    assert name_of(proxy, fake_anthropic, "service_account_id", BOT) == "unknown"
    assert anthropic_status(proxy)["last_error"] is None
    # Where it lists them (paged by token), they are named, and remembered with their provider.
    fake_anthropic.org.service_accounts_for_admin_keys = True
    fake_anthropic.org.service_accounts += [dict(fake_anthropic.org.service_accounts[0], id=f"svac_{n}",
                                                 name=f"robot {n}") for n in range(2)]
    sighup(proxy)
    assert name_of(proxy, fake_anthropic, "service_account_id", BOT) == "ci-deploy-bot"
    assert name_of(proxy, fake_anthropic, "service_account_id", "svac_1") == "robot 1"
    pages = [r.target.decode() for r in fake_anthropic.received if r.path == SERVICE_ACCOUNTS.encode()][1:]
    assert len(pages) == 2 and "page=" in pages[1]
    remembered = {(r.learned.provider, r.learned.id_field, r.learned.id) for r in proxy.service.history.load()}
    assert ("anthropic", "service_account_id", BOT) in remembered


def test_users_name_the_analytics_actors_and_are_remembered_once(start: Start, fake_anthropic: FakeAnthropic,
                                                                 tmp_path: Path) -> None:
    proxy = start()
    actor = {"type": "user_actor", "user_id": ZOE, "email_address": "zoe@example.com", "name": "Zoë Ångström",
             "deleted": False}
    (row,) = named(proxy, fake_anthropic, [{"group": {"actor": actor}}])
    assert row["group"]["actor"]["user_name"] == "Zoë Ångström"
    remembered = [r.learned for r in proxy.service.history.load() if r.learned.id == ZOE]
    assert [(r.id_field, r.provider) for r in remembered] == [("account_id", "anthropic")]
    proxy.close()
    # After a restart without the key, the history still names the actor.
    again = start(environ={})
    (row,) = named(again, fake_anthropic, [{"group": {"actor": actor}}])
    assert row["group"]["actor"]["user_name"] == "Zoë Ångström"


def test_keys_a_list_without_status_leaves_out_are_found_by_their_status(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.org.unfiltered_key_statuses = frozenset({"active"})
    proxy = start()
    rows = named(proxy, fake_anthropic, [{"api_key_id": key} for key in KEY_NAMES])
    assert {row["api_key_id"]: row["api_key_name"] for row in rows} == KEY_NAMES


def test_the_key_file_option_turns_discovery_on(start: Start, fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    key_file = tmp_path / "anthropic.key"
    key_file.write_text(ADMIN_KEY + "\n")
    key_file.chmod(0o600)
    proxy = start("--anthropic-admin-key-file", str(key_file), environ=None)
    assert name_of(proxy, fake_anthropic, "workspace_id", PLATFORM) == "Platform"
    assert fake_anthropic.received[0].header("x-api-key") == ADMIN_KEY.encode()


def test_the_admin_key_is_never_added_to_a_callers_request(start: Start, fake_anthropic: FakeAnthropic) -> None:
    proxy = start()
    proxy.get(COSTS + "?starting_at=2026-08-01T00:00:00Z", headers=CALLER)
    assert fake_anthropic.last().header("x-api-key") == CALLER["x-api-key"].encode()
    proxy.get(COSTS + "?starting_at=2026-08-01T00:00:00Z", headers={})
    assert fake_anthropic.last().header("x-api-key") is None


def test_the_admin_key_never_reaches_logs_errors_or_health(start: Start, fake_anthropic: FakeAnthropic,
                                                           logged: list[dict[str, Any]]) -> None:
    # An upstream that quotes the key back: only the status is told.
    fake_anthropic.on(WORKSPACES, reply(401, anthropic_error(401, f"invalid x-api-key {ADMIN_KEY}")))
    proxy = start()
    status = anthropic_status(proxy)
    assert status["last_error"] == f"{WORKSPACES}: the admin key was refused (401)"
    assert ADMIN_KEY not in proxy.get("/health").body.decode()
    assert not any(ADMIN_KEY in repr(event) for event in logged)


# --- both providers at once -------------------------------------------------------------------

def test_both_discoveries_run_side_by_side_each_key_to_its_own_upstream(
        start: Start, fake: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    openai_admin = FakeAdmin(fake, sample_org())
    proxy = start(environ={**ANTHROPIC_KEY, "OPENAI_ADMIN_KEY": TOKEN})
    assert fake.received and fake_anthropic.received
    assert all(r.header("authorization") == f"Bearer {TOKEN}".encode() and r.header("x-api-key") is None
               for r in fake.received)
    assert all(r.header("x-api-key") == ADMIN_KEY.encode() and r.header("authorization") is None
               for r in fake_anthropic.received)
    health = proxy.get("/health").json()
    assert health["providers"]["openai"]["discovery"]["last_success"] is not None
    assert health["providers"]["anthropic"]["discovery"]["last_success"] is not None
    assert health["discovery"] == health["providers"]["openai"]["discovery"]
    openai_walks = sum(1 for r in fake.received if r.path == b"/v1/organization/projects")
    sighup(proxy)  # both walk again
    assert walks(fake_anthropic) == 2
    assert sum(1 for r in fake.received if r.path == b"/v1/organization/projects") > openai_walks
    assert openai_admin.key_names()  # (the OpenAI fake was served throughout)


def test_an_unknown_id_sets_off_its_own_provider_s_walk_alone(
        start: Start, fake: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    FakeAdmin(fake, sample_org())
    proxy = start("--discovery-cooldown", "60", environ={**ANTHROPIC_KEY, "OPENAI_ADMIN_KEY": TOKEN})
    openai_walks = sum(1 for r in fake.received if r.path == b"/v1/organization/projects" and b"after" not in r.target)
    assert name_of(proxy, fake_anthropic, "api_key_id", "apikey_NewThisMorning") == "unknown"
    assert walks(fake_anthropic) == 2
    assert sum(1 for r in fake.received
               if r.path == b"/v1/organization/projects" and b"after" not in r.target) == openai_walks


def test_with_workers_the_first_process_walks_anthropic_for_the_daemon_and_shares_what_it_learned(
        make_proxy: Callable[..., InMemoryProxy], fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    reactor = SpawningReactor()
    proxy = make_proxy("--workers", "2", "--discovery-cooldown", "60", environ=ANTHROPIC_KEY, reactor=reactor)
    proxy.start_service()
    proxy.flush()
    (worker,) = reactor.spawned
    shared_file = tmp_path / "state" / "run" / "names" / "names.json"

    def shared() -> dict[str, Any]:
        document: dict[str, Any] = json.loads(shared_file.read_text())
        return document

    def learned_for_the_workers() -> dict[str, str]:
        return {row[1]: row[2] for row in shared()["discovered"] if row[-1] == "anthropic"}

    assert walks(fake_anthropic) == 1
    assert KEY_NAMES.items() <= learned_for_the_workers().items()
    assert BILLING_KEY in shared()["listed_keys"]["anthropic"]
    assert shared()["discovery"]["anthropic"]["enabled"] is True and "openai" not in shared()["discovery"]
    assert ADMIN_KEY not in shared_file.read_text()  # no file the processes share holds the key
    fake_anthropic.org.api_keys.append(dict(fake_anthropic.org.api_keys[0], id="apikey_NewThisMorning",
                                            name="created this morning"))
    worker.protocol.childDataReceived(REQUESTS_FD, b"discover openai\n")  # no OpenAI key here: nothing to ask
    worker.protocol.childDataReceived(REQUESTS_FD, b"discover anthropic\n")  # the worker saw an unknown key
    proxy.flush()
    assert walks(fake_anthropic) == 2
    assert learned_for_the_workers()["apikey_NewThisMorning"] == "created this morning"
    # The cooldown is the daemon's: the worker asking again waits.
    worker.protocol.childDataReceived(REQUESTS_FD, b"discover anthropic\n")
    proxy.flush()
    assert walks(fake_anthropic) == 2
    stopped = proxy.service.stopService()
    worker.end(ProcessDone(0))
    proxy.resolve(stopped)


# --- when, and after failures -----------------------------------------------------------------

@pytest.mark.parametrize("field", ["api_key_id", "workspace_id"])
def test_unknown_keys_and_workspaces_set_off_a_walk_at_most_once_per_cooldown(
        start: Start, fake_anthropic: FakeAnthropic, field: str) -> None:
    proxy = start("--discovery-cooldown", "60")
    fake_anthropic.org.api_keys.append(dict(fake_anthropic.org.api_keys[0], id="apikey_NewThisMorning",
                                            name="created this morning"))
    name_of(proxy, fake_anthropic, field, "id_NobodyKnows")
    assert walks(fake_anthropic) == 2
    proxy.advance(59.9)
    name_of(proxy, fake_anthropic, field, "id_NobodyKnows")
    assert walks(fake_anthropic) == 2
    proxy.advance(0.1)
    name_of(proxy, fake_anthropic, field, "id_NobodyKnows")
    assert walks(fake_anthropic) == 3
    assert name_of(proxy, fake_anthropic, "api_key_id", "apikey_NewThisMorning") == "created this morning"


def test_an_unknown_account_alone_does_not_set_off_a_walk(start: Start, fake_anthropic: FakeAnthropic) -> None:
    proxy = start()
    assert name_of(proxy, fake_anthropic, "account_id", "user_NobodyKnows") == "unknown"
    assert walks(fake_anthropic) == 1


def test_a_walk_runs_every_discovery_interval(start: Start, fake_anthropic: FakeAnthropic) -> None:
    proxy = start("--discovery-interval", "300")
    proxy.advance(299.9)
    assert walks(fake_anthropic) == 1
    proxy.advance(0.1)
    assert walks(fake_anthropic) == 2


def test_a_rate_limited_walk_waits_as_retry_after_asks_and_keeps_what_it_learned(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    limited = reply(429, anthropic_error(429, "Number of requests has exceeded your rate limit"),
                    headers=[("retry-after", "7")])
    fake_anthropic.on(USERS, Script([limited, fake_anthropic.fallback]))
    proxy = start()
    status = anthropic_status(proxy)
    assert status["last_error"] == f"{USERS}: rate limited (429)" and status["last_success"] is None
    # What the walk learned before the failure is in force meanwhile.
    assert name_of(proxy, fake_anthropic, "workspace_id", PLATFORM) == "Platform"
    proxy.advance(6.9)
    assert walks(fake_anthropic) == 1
    proxy.advance(0.1)
    assert walks(fake_anthropic) == 2 and anthropic_status(proxy)["last_error"] is None
    assert name_of(proxy, fake_anthropic, "account_id", ZOE) == "Zoë Ångström"


@pytest.mark.parametrize("behaviour", [
    reply(401, anthropic_error(401, "invalid x-api-key")), reply(529, anthropic_error(529, "Overloaded")),
    reply(200, {"data": [], "has_more": True}), hold,
], ids=["401", "529", "endless", "hanging"])
def test_a_failed_walk_backs_off_and_never_drops_a_name(start: Start, fake_anthropic: FakeAnthropic,
                                                        behaviour: Any) -> None:
    proxy = start()
    assert name_of(proxy, fake_anthropic, "api_key_id", LEGACY_KEY) == "legacy-default-workspace-key"
    fake_anthropic.on(API_KEYS, behaviour)
    sighup(proxy)
    if behaviour is hold:
        proxy.advance(TIMEOUT)  # the held page times out
    assert anthropic_status(proxy)["last_error"].startswith(API_KEYS)
    assert name_of(proxy, fake_anthropic, "api_key_id", LEGACY_KEY) == "legacy-default-workspace-key"
    before = walks(fake_anthropic)
    proxy.advance(0.99)
    assert walks(fake_anthropic) == before
    proxy.advance(0.01)  # the first retry, a second later
    assert walks(fake_anthropic) == before + 1


# --- history ----------------------------------------------------------------------------------

def test_names_are_remembered_with_their_provider_and_served_after_a_restart_without_a_key(
        start: Start, fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    start().close()
    fake_anthropic.org.api_keys = [k for k in fake_anthropic.org.api_keys if k["id"] != LEGACY_KEY]
    again = start(environ=None)  # no key: the history alone
    assert name_of(again, fake_anthropic, "api_key_id", LEGACY_KEY) == "legacy-default-workspace-key"
    assert name_of(again, fake_anthropic, "workspace_id", PLATFORM) == "Platform"
    remembered = {(r.learned.provider, r.learned.id_field, r.learned.id): r.learned
                  for r in again.service.history.load()}
    legacy = remembered[("anthropic", "api_key_id", LEGACY_KEY)]
    assert (legacy.redacted_value, legacy.project_id) == ("sk-ant-api03-Xk9...b2QA", "wrkspc_01CONSTRUCTEDdefault00000")
    personal = remembered[("anthropic", "api_key_id", PERSONAL_KEY)]
    assert (personal.owner_type, personal.owner_id) == ("user", JANE_SMITH)
    old_shape = remembered[("anthropic", "api_key_id", BILLING_KEY_OLD)]
    assert (old_shape.owner_type, old_shape.owner_id, old_shape.project_id) == ("user", JANE_DOE, BILLING)
    bot = remembered[("anthropic", "api_key_id", BOT_KEY)]
    assert (bot.owner_type, bot.owner_id) == ("service_account", "svac_01Hk3R9TWxq7CfQak00OiVw4")
    assert remembered[("anthropic", "account_id", ZOE)].email == "zoe@example.com"
    assert {provider for provider, _, _ in remembered} == {"anthropic"}
    again.close()
    history, _ = History.open(str(tmp_path / "state"), 0)
    try:
        assert json.dumps([r.learned.provider for r in history.load()]).count("anthropic") == len(remembered)
    finally:
        history.close()


def test_a_list_paged_by_token_is_walked_by_its_next_page_until_has_more_is_false(
        start: Start, fake_anthropic: FakeAnthropic) -> None:
    # Anthropic's token-paged lists answer {"data", "next_page"} (and sometimes has_more); the
    # rbac_groups example has has_more false beside a next_page, which ends the walk.
    users = fake_anthropic.org.users
    fake_anthropic.on(USERS, Script([reply(body={"data": users[:2], "next_page": "page_Mg=="}),
                                     reply(body={"data": users[2:], "has_more": False, "next_page": "eyJ4IjoxfQ=="})]))
    proxy = start()
    assert [r.target.decode() for r in fake_anthropic.received if r.path == USERS.encode()] == [
        f"{USERS}?limit=100", f"{USERS}?limit=100&page=page_Mg%3D%3D"]
    assert name_of(proxy, fake_anthropic, "account_id", ZOE) == "Zoë Ångström"
    assert anthropic_status(proxy)["last_error"] is None


def test_a_user_s_email_is_read_under_either_name_the_api_has_used(start: Start,
                                                                     fake_anthropic: FakeAnthropic) -> None:
    zoe = fake_anthropic.org.users[2]
    zoe["email_address"] = zoe.pop("email")
    proxy = start()
    (row,) = named(proxy, fake_anthropic, [{"account_id": ZOE}])
    assert (row["account_name"], row["account_email"]) == ("Zoë Ångström", "zoe@example.com")
