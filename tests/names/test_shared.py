"""The first process's learned names reaching its workers (``names/shared.py``), in the test
process: the publisher writes, the follower watches the file by polling on a clock the test
moves by hand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock

from orgproxy.names.history import Learned
from orgproxy.names.shared import FILENAME, NamesFollower, NamesPublisher
from orgproxy.names.snapshot import CurrentNames
from orgproxy.ops.watch import POLL_INTERVAL

KEY = Learned("api_key_id", "key_Ws1kProdSrvA9", "Production server", redacted_value="sk-proj-Ab...x1Yz",
              project_id="proj_Wb7sHq2LxK9mTz", owner_type="user", owner_id="user-Ada", owner_name="Ada")
DELETED = Learned("api_key_id", "key_Gone", "Deleted long ago \ud800")  # a lone surrogate, as JSON can spell
PROJECT = Learned("project_id", "proj_Wb7sHq2LxK9mTz", "Web Shop")
USER = Learned("user_id", "user-Ada", "Ada Lovelace", email="ada@example.com")


def first_process(history: list[Learned], discovered: list[Learned]) -> CurrentNames:
    current = CurrentNames()
    current.history = {(r.provider, r.id_field, r.id): r for r in history}
    current.discovered = {(r.provider, r.id_field, r.id): r for r in discovered}
    current.rebuild()
    return current


def learn(current: CurrentNames, record: Learned) -> None:
    current.discovered[(record.provider, record.id_field, record.id)] = record
    current.rebuild()


def same_names(worker: CurrentNames, first: CurrentNames) -> bool:
    a, b = worker.names, first.names
    return (a.by_field, a.members, a.by_source) == (b.by_field, b.members, b.by_source)


class Following:
    """A worker following a first process's names, on a memory clock."""

    def __init__(self, directory: Path):
        self.clock = MemoryReactorClock()
        self.names = CurrentNames()
        self.follower = NamesFollower(self.clock, str(directory), self.names, "poll")


def test_a_worker_starts_with_the_first_processs_names_sources_and_discovery_status(tmp_path: Path) -> None:
    first = first_process(history=[DELETED, KEY], discovered=[KEY, PROJECT, USER])
    status = {"enabled": True, "running": False, "names": 3, "last_success": "2026-11-26T09:00:00+00:00",
              "last_failure": None, "last_error": None}
    NamesPublisher(str(tmp_path), first, lambda: {"openai": status}).publish()
    worker = Following(tmp_path)
    assert worker.follower.load()
    # The very snapshot: names, the members added beside ids (redacted values, emails),
    # and which source each came from (discovery outranks history).
    assert same_names(worker.names, first)
    assert worker.names.names.by_source == {"aliases": 0, "discovered": 3, "history": 1}
    assert worker.follower.status() == status


def test_every_providers_names_listed_keys_and_discovery_status_reach_the_worker(tmp_path: Path) -> None:
    anthropic_key = Learned("api_key_id", "apikey_01Rj2N8SVvo6BePZj99NhmiT", "billing-batch-prod",
                            provider="anthropic")
    workspace = Learned("workspace_id", "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", "Research", provider="anthropic")
    first = first_process(history=[DELETED], discovered=[KEY, anthropic_key, workspace])
    # Both walks ran whole: OpenAI's no longer lists key_Gone, which is then marked deleted.
    first.listed_keys = {"openai": frozenset({KEY.id}), "anthropic": frozenset({anthropic_key.id})}
    first.rebuild()
    statuses = {"openai": {"enabled": True, "names": 1}, "anthropic": {"enabled": True, "names": 2}}
    NamesPublisher(str(tmp_path), first, lambda: statuses).publish()
    worker = Following(tmp_path)
    assert worker.follower.load()
    assert same_names(worker.names, first)
    assert worker.names.listed_keys == first.listed_keys
    assert (b"api_key_deleted", b"true") in worker.names.names.members["api_key_id"][DELETED.id]
    assert worker.names.names.by_field["workspace_id"] == {workspace.id: "Research"}
    assert worker.follower.status() == statuses["openai"]
    assert worker.follower.status_of("anthropic").status() == statuses["anthropic"]
    assert worker.follower.status_of("nobody").status() == {"enabled": False}


def test_a_walks_names_reach_a_running_worker_within_a_poll(tmp_path: Path) -> None:
    first = first_process(history=[], discovered=[KEY])
    publisher = NamesPublisher(str(tmp_path), first, lambda: {"openai": {"enabled": True}})
    publisher.publish()
    worker = Following(tmp_path)
    worker.follower.load()
    worker.follower.startService()
    try:
        learn(first, PROJECT)
        publisher.publish()  # a walk ended
        assert not same_names(worker.names, first)
        worker.clock.advance(POLL_INTERVAL)
        assert same_names(worker.names, first)
        assert worker.names.names.by_field["project_id"] == {PROJECT.id: "Web Shop"}
    finally:
        worker.follower.stopService()
    assert worker.clock.getDelayedCalls() == []


def test_a_file_that_cannot_be_read_leaves_the_names_in_force(tmp_path: Path, logged: list[dict[str, Any]]) -> None:
    first = first_process(history=[], discovered=[KEY])
    NamesPublisher(str(tmp_path), first, lambda: {"openai": {"enabled": True}}).publish()
    worker = Following(tmp_path)
    worker.follower.load()
    for broken in (b"{not json", b'{"format": 99}', b'{"format": 2, "history": [["api_key_id"]], "discovered": []}',
                   b'{"format": 2, "history": [], "discovered": [], "listed_keys": {"openai": "key_a"},'
                   b' "discovery": {}}'):
        (tmp_path / FILENAME).write_bytes(broken)
        assert not worker.follower.load()
        assert same_names(worker.names, first)
    errors = [e for e in logged if e.get("path") == str(tmp_path / FILENAME) and "error" in e]
    assert len(errors) == 4


def test_a_file_not_written_leaves_the_workers_names_and_says_why(
        tmp_path: Path, logged: list[dict[str, Any]]) -> None:
    first = first_process(history=[], discovered=[KEY])
    gone = tmp_path / "gone"
    NamesPublisher(str(gone), first, lambda: {"openai": {"enabled": True}}).publish()  # no such directory
    (error,) = [e for e in logged if e.get("path") == str(gone / FILENAME)]
    assert "No such file or directory" in error["error"]
    assert not gone.exists() and os.listdir(tmp_path) == []  # nor a temporary file left


def test_when_each_name_was_learned_reaches_the_worker(tmp_path: Path) -> None:
    # For /orgproxy/names: a worker says when discovery learned a name, as the first process does.
    first = first_process(history=[DELETED], discovered=[KEY])
    first.learned_at = {("openai", "api_key_id", DELETED.id): 1_700_000_000.5,
                        ("openai", "api_key_id", KEY.id): 1_780_000_000.0}
    NamesPublisher(str(tmp_path), first, lambda: {}).publish()
    worker = Following(tmp_path)
    assert worker.follower.load()
    assert worker.names.learned_at == first.learned_at
