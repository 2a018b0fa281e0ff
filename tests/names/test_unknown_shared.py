"""The unknown-ids report of a daemon of several processes (``names/unknown_shared.py``), in
the test process: each "process" is a SharedUnknownIds under a pid of its own, writing to
one directory on a clock the test moves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock

from orgproxy.snapshot import NO_NAMES, Names
from orgproxy.names.unknown import UnknownIds
from orgproxy.names.unknown_shared import WRITE_INTERVAL, SharedUnknownIds

FIRST, WORKER = 101, 102
SURROGATE = "key_\ud800x"  # valid JSON ("key_\\ud800x"), no UTF-8 form


class Process:
    """One process's unknown ids, shared through ``directory``."""

    def __init__(self, clock: MemoryReactorClock, directory: Path, pid: int, limit: int = 10_000):
        self.clock = clock
        self.unknown = UnknownIds(limit)
        self.shared = SharedUnknownIds(clock, str(directory), self.unknown, pid)
        self.shared.startService()

    def sees(self, *ids: str, field: str = "api_key_id", provider: str = "openai") -> None:
        """A response carried these ids, unnamed (what the proxy's note does)."""
        self.unknown.record({(field, i): 1 for i in ids}, dict.fromkeys(ids, field), self.clock.seconds(), provider)
        self.shared.changed()


def report(process: Process, names: Names = NO_NAMES) -> dict[str, Any]:
    return process.shared.merged().report(names)


def rows(process: Process) -> dict[str, tuple[str | None, str | None, int]]:
    return {row["id"]: (row["first_seen"], row["last_seen"], row["count"]) for row in report(process)["data"]}


def test_either_process_reports_what_both_saw(tmp_path: Path) -> None:
    clock = MemoryReactorClock()
    clock.advance(1_700_000_000)
    first, worker = Process(clock, tmp_path, FIRST), Process(clock, tmp_path, WORKER)
    first.sees("key_both", "key_first")
    clock.advance(60)
    worker.sees("key_both", SURROGATE)
    worker.sees("key_both")
    assert SURROGATE not in rows(first), "shared before its write"
    clock.advance(WRITE_INTERVAL)
    expected = {"key_both": ("2023-11-14T22:13:20+00:00", "2023-11-14T22:14:20+00:00", 3),
                "key_first": ("2023-11-14T22:13:20+00:00", "2023-11-14T22:13:20+00:00", 1),
                SURROGATE: ("2023-11-14T22:14:20+00:00", "2023-11-14T22:14:20+00:00", 1)}
    assert rows(first) == rows(worker) == expected
    # A process's own ids are current at once; the others' as last written.
    first.sees("key_first")
    assert rows(first)["key_first"][2] == 2 and rows(worker)["key_first"][2] == 1
    # Ids named since are no longer listed, wherever they were seen.
    named = Names.from_aliases({"api_keys": {"key_both": "checkout"}})
    assert "key_both" not in {row["id"] for row in report(worker, named)["data"]}
    for process in (first, worker):
        process.shared.stopService()
    assert clock.getDelayedCalls() == []


def test_a_process_writes_only_when_it_saw_something_new(tmp_path: Path) -> None:
    clock = MemoryReactorClock()
    first = Process(clock, tmp_path, FIRST)
    clock.advance(WRITE_INTERVAL * 3)
    assert os.listdir(tmp_path) == []
    first.sees("key_a")
    clock.advance(WRITE_INTERVAL)
    written = (tmp_path / f"{FIRST}.json").stat().st_mtime_ns
    clock.advance(WRITE_INTERVAL * 3)
    assert (tmp_path / f"{FIRST}.json").stat().st_mtime_ns == written
    first.shared.stopService()


def test_a_worker_that_ended_leaves_its_ids_to_the_first_process(tmp_path: Path) -> None:
    clock = MemoryReactorClock()
    first, worker = Process(clock, tmp_path, FIRST), Process(clock, tmp_path, WORKER)
    first.sees("key_both")
    worker.sees("key_both", "key_worker")
    clock.advance(WRITE_INTERVAL)
    before = rows(first)
    worker.shared.stopService()
    first.shared.absorb(WORKER)
    assert not (tmp_path / f"{WORKER}.json").exists()
    assert rows(first) == before  # nothing lost, nothing counted twice
    assert first.unknown.seen[("api_key_id", "key_both")].count == 2
    first.shared.absorb(WORKER)  # a worker with no file left (or none written): nothing
    assert rows(first) == before
    first.shared.stopService()


def test_the_merged_report_is_bounded_and_counts_what_it_dropped(tmp_path: Path) -> None:
    clock = MemoryReactorClock()
    first, worker = Process(clock, tmp_path, FIRST, limit=3), Process(clock, tmp_path, WORKER, limit=3)
    first.sees("key_1", "key_2", "key_3", "key_4")  # one over its own limit
    worker.sees("key_5", "key_6")
    clock.advance(WRITE_INTERVAL)
    merged = report(first)
    assert len(merged["data"]) == 3 and merged["dropped"] == 1 + 2
    for process in (first, worker):
        process.shared.stopService()


def test_another_processs_unreadable_file_is_passed_over_with_a_warning(
        tmp_path: Path, logged: list[dict[str, Any]]) -> None:
    clock = MemoryReactorClock()
    first = Process(clock, tmp_path, FIRST)
    first.sees("key_first")
    (tmp_path / f"{WORKER}.json").write_text('{"format": 2, "dropped": 0, "seen": [["api_key_id", 5]]}')
    assert list(rows(first)) == ["key_first"]
    (warning,) = [e for e in logged if e.get("path") == str(tmp_path / f"{WORKER}.json")]
    assert "malformed" in warning["error"]
    first.shared.stopService()


def test_each_id_keeps_the_provider_whose_answer_carried_it_across_processes(tmp_path: Path) -> None:
    clock = MemoryReactorClock()
    first, worker = Process(clock, tmp_path, FIRST), Process(clock, tmp_path, WORKER)
    first.sees("key_openai")
    worker.sees("apikey_01anthropic", provider="anthropic")
    worker.sees("wrkspc_01anthropic", field="workspace_id", provider="anthropic")
    clock.advance(WRITE_INTERVAL)
    for answering in (first, worker):
        providers = {row["id"]: (row["provider"], row["field"]) for row in report(answering)["data"]}
        assert providers == {"key_openai": ("openai", "api_key_id"),
                             "apikey_01anthropic": ("anthropic", "api_key_id"),
                             "wrkspc_01anthropic": ("anthropic", "workspace_id")}
    assert "[workspaces]" in first.shared.merged().toml_skeleton(NO_NAMES)
    first.shared.absorb(WORKER)  # the worker ended: its ids, with their provider, are the first's
    assert {s.provider for s in first.unknown.seen.values()} == {"openai", "anthropic"}
    for process in (first, worker):
        process.shared.stopService()
