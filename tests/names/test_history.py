"""Tests for orgproxy.history: the store of every name ever learned."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgproxy.names.history import FILENAME, SCHEMA_VERSION, History, Remembered
from orgproxy.snapshot import Learned
from tests.support.properties import property_settings as examples_of

# 2026-11-26T15:30:00Z, so the moved-aside name is known exactly.
NOW = 1795707000.0
ASIDE_SUFFIX = ".corrupt-20261126T153000Z"

KEY = Learned(
    "api_key_id",
    "key_abc",
    "ci deploy key",
    redacted_value="sk-proj-...abcd",
    project_id="proj_1",
    owner_type="service_account",
    owner_id="svc_1",
    owner_name="ci-bot",
)
USER = Learned("user_id", "user_1", "Ada Lovelace", email="ada@example.com")
PROJECT = Learned("project_id", "proj_1", "Analytics")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[History]:
    history, problem = History.open(str(tmp_path / "state"), NOW)
    assert problem is None
    yield history
    history.close()


def valid_database(directory: Path, rows: int) -> bytes:
    """The bytes of a closed, checkpointed store holding ``rows`` keys."""
    history, _ = History.open(str(directory), NOW)
    keys = (Learned("api_key_id", f"key_{i:05}", f"name {i}" * 10) for i in range(rows))
    history.remember(keys, NOW)
    history.close()
    return (directory / FILENAME).read_bytes()


def test_remember_then_load_round_trips_every_field(store: History) -> None:
    assert store.remember([USER, KEY, PROJECT], NOW) == 3
    assert store.load() == [
        Remembered(KEY, NOW, NOW),
        Remembered(PROJECT, NOW, NOW),
        Remembered(USER, NOW, NOW),
    ]


def test_second_remember_keeps_first_seen_and_moves_last_seen(store: History) -> None:
    store.remember([KEY], 100.0)
    renamed = dataclasses.replace(KEY, name="renamed", owner_name="ci-bot-2")
    assert store.remember([renamed], 250.5) == 0
    assert store.load() == [Remembered(renamed, 100.0, 250.5)]


def test_none_does_not_erase_a_stored_value(store: History) -> None:
    store.remember([KEY], 100.0)
    sparse = Learned("api_key_id", "key_abc", "new name")
    store.remember([sparse], 200.0)
    assert store.load() == [Remembered(dataclasses.replace(KEY, name="new name"), 100.0, 200.0)]


def test_remember_returns_how_many_ids_were_new(store: History) -> None:
    assert store.remember([KEY, USER], 1.0) == 2
    # One known id, one new id, and the new id twice in the same batch.
    assert store.remember([KEY, PROJECT, PROJECT], 2.0) == 1
    assert store.remember([], 3.0) == 0
    # The same id under another id_field is a different id.
    assert store.remember([Learned("user_id", "key_abc", "x")], 4.0) == 1


def test_remembered_names_survive_close_and_reopen(tmp_path: Path) -> None:
    history, _ = History.open(str(tmp_path), 100.0)
    history.remember([KEY, USER], 100.0)
    history.close()

    reopened, problem = History.open(str(tmp_path), 200.0)
    assert problem is None
    assert reopened.load() == [Remembered(KEY, 100.0, 100.0), Remembered(USER, 100.0, 100.0)]
    # A key deleted upstream is no longer listed; it keeps its name all the same.
    reopened.remember([USER], 200.0)
    assert reopened.load() == [Remembered(KEY, 100.0, 100.0), Remembered(USER, 100.0, 200.0)]
    reopened.close()


def test_garbage_file_is_moved_aside_and_a_new_store_works(tmp_path: Path) -> None:
    garbage = b"this is not a database\x00\xff" * 100
    (tmp_path / FILENAME).write_bytes(garbage)

    history, problem = History.open(str(tmp_path), NOW)
    aside = tmp_path / (FILENAME + ASIDE_SUFFIX)
    assert problem is not None and str(aside) in problem
    assert aside.read_bytes() == garbage
    assert history.load() == []
    assert history.remember([KEY], NOW) == 1
    assert history.load() == [Remembered(KEY, NOW, NOW)]
    history.close()


def test_second_corruption_in_the_same_second_does_not_overwrite_the_first(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"first garbage" * 100)
    History.open(str(tmp_path), NOW)[0].close()
    (tmp_path / FILENAME).write_bytes(b"second garbage" * 100)
    history, problem = History.open(str(tmp_path), NOW)
    history.close()
    second = tmp_path / (FILENAME + ASIDE_SUFFIX + ".1")
    assert problem is not None and str(second) in problem
    assert (tmp_path / (FILENAME + ASIDE_SUFFIX)).read_bytes() == b"first garbage" * 100
    assert second.read_bytes() == b"second garbage" * 100


def test_garbage_companion_files_are_moved_aside_too(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"garbage" * 100)
    # (A garbage -journal would be discarded by SQLite itself, so use a -wal.)
    (tmp_path / (FILENAME + "-wal")).write_bytes(b"wal garbage")

    history, problem = History.open(str(tmp_path), NOW)
    history.close()
    aside = tmp_path / (FILENAME + ASIDE_SUFFIX)
    assert Path(str(aside) + "-wal").read_bytes() == b"wal garbage"
    assert not (tmp_path / (FILENAME + "-wal")).exists()


def test_truncated_database_is_treated_as_corrupt(tmp_path: Path) -> None:
    content = valid_database(tmp_path / "source", rows=2000)
    half = content[: len(content) // 2]
    (tmp_path / FILENAME).write_bytes(half)

    history, problem = History.open(str(tmp_path), NOW)
    aside = tmp_path / (FILENAME + ASIDE_SUFFIX)
    assert problem is not None and str(aside) in problem
    assert aside.read_bytes() == half
    assert history.load() == []
    history.close()


def test_unrelated_table_with_the_same_name_is_moved_aside(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / FILENAME)
    with conn:
        conn.execute("CREATE TABLE learned (x INTEGER PRIMARY KEY, y TEXT)")
        conn.execute("INSERT INTO learned VALUES (1, 'keep me')")
    conn.close()

    history, problem = History.open(str(tmp_path), NOW)
    aside = tmp_path / (FILENAME + ASIDE_SUFFIX)
    assert problem is not None and str(aside) in problem and "columns x, y" in problem
    assert history.remember([KEY], NOW) == 1
    assert history.load() == [Remembered(KEY, NOW, NOW)]
    history.close()
    old = sqlite3.connect(aside)
    assert old.execute("SELECT y FROM learned").fetchall() == [("keep me",)]
    old.close()


def test_newer_schema_version_is_moved_aside(tmp_path: Path) -> None:
    valid_database(tmp_path, rows=1)
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    history, problem = History.open(str(tmp_path), NOW)
    history.close()
    assert problem is not None and f"schema version {SCHEMA_VERSION + 1}" in problem
    assert (tmp_path / (FILENAME + ASIDE_SUFFIX)).exists()


def test_zero_byte_file_is_a_new_empty_store(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"")
    history, problem = History.open(str(tmp_path), NOW)
    assert problem is None
    assert history.load() == []
    assert history.remember([KEY], NOW) == 1
    history.close()
    assert os.listdir(tmp_path) == [FILENAME]


def test_directory_created_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "state"
    old_umask = os.umask(0o277)  # would leave the directory unwritable and the file read-only
    try:
        history, problem = History.open(str(directory), NOW)
        history.remember([KEY], NOW)
    finally:
        os.umask(old_umask)
    assert problem is None
    assert mode(directory) == 0o700
    assert mode(directory / FILENAME) == 0o600
    # SQLite gives the WAL companion the database file's mode.
    assert mode(directory / (FILENAME + "-wal")) == 0o600
    history.close()


def test_unopenable_paths_raise_oserror_and_move_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        History.open(str(tmp_path / "file"), NOW)  # the state directory is a file
    (tmp_path / FILENAME).mkdir()
    with pytest.raises(OSError, match="unable to open"):
        History.open(str(tmp_path), NOW)  # the store is a directory: not corrupt, just unusable
    assert sorted(os.listdir(tmp_path)) == ["file", FILENAME]


def test_misuse_is_not_disguised_as_a_storage_failure(store: History) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.remember([Learned("user_id", "u", None)], NOW)  # type: ignore[arg-type]
    assert store.load() == []
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.load()


def test_a_failed_batch_keeps_nothing(store: History) -> None:
    store.remember([KEY], 1.0)
    with pytest.raises(sqlite3.IntegrityError):
        store.remember([USER, Learned("user_id", "u", None)], 2.0)  # type: ignore[arg-type]
    assert store.load() == [Remembered(KEY, 1.0, 1.0)]


def test_five_thousand_rows_in_one_call(store: History) -> None:
    batch = [
        Learned("api_key_id", f"key_{i:05}", f"key {i}", redacted_value=f"sk-...{i:04}")
        for i in range(5000)
    ]
    assert store.remember(batch, NOW) == 5000
    assert store.load() == [Remembered(learned, NOW, NOW) for learned in batch]


# -- property: the store behaves like a dict applying the documented rules ------------

optional_text = st.none() | st.text(max_size=8)
learned_records = st.builds(
    Learned,
    id_field=st.sampled_from(["api_key_id", "project_id", "user_id"]),
    id=st.sampled_from(["a", "b", "c", "key_1"]),
    name=st.text(max_size=8),
    redacted_value=optional_text,
    email=optional_text,
    project_id=optional_text,
    owner_type=optional_text,
    owner_id=optional_text,
    owner_name=optional_text,
)
# (records, seconds since the previous batch, whether to close and reopen afterwards)
batches = st.lists(
    st.tuples(
        st.lists(learned_records, max_size=6),
        st.floats(min_value=0.001, max_value=1e6),
        st.booleans(),
    ),
    max_size=8,
)

_OPTIONAL = [f.name for f in dataclasses.fields(Learned)][3:]


def model_remember(
    model: dict[tuple[str, str], Remembered], batch: list[Learned], now: float
) -> int:
    """The documented rules, applied record by record to a dict; how many ids were new."""
    new = 0
    for learned in batch:
        key = (learned.id_field, learned.id)
        old = model.get(key)
        if old is None:
            new += 1
            model[key] = Remembered(learned, now, now)
            continue
        kept = {f: getattr(old.learned, f) for f in _OPTIONAL if getattr(learned, f) is None}
        model[key] = Remembered(dataclasses.replace(learned, **kept), old.first_seen, now)
    return new


@examples_of(150)
@given(batches)
def test_store_matches_a_dict_model(steps: list[tuple[list[Learned], float, bool]]) -> None:
    model: dict[tuple[str, str], Remembered] = {}
    now = 1_700_000_000.0
    with tempfile.TemporaryDirectory() as directory:
        history, problem = History.open(directory, now)
        assert problem is None
        try:
            for batch, elapsed, reopen in steps:
                now += elapsed
                assert history.remember(batch, now) == model_remember(model, batch, now)
                if reopen:
                    history.close()
                    history, problem = History.open(directory, now)
                    assert problem is None
                assert history.load() == [model[key] for key in sorted(model)]
        finally:
            history.close()


# --- schema 1 (OpenAI's names alone), migrated -------------------------------------------

V1_CREATE = (
    "CREATE TABLE learned (id_field TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,"
    " redacted_value TEXT, email TEXT, project_id TEXT, owner_type TEXT, owner_id TEXT, owner_name TEXT,"
    " first_seen REAL NOT NULL, last_seen REAL NOT NULL, PRIMARY KEY (id_field, id))"
)


def test_a_schema_1_store_is_migrated_in_place_its_names_kept_as_openai_s(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / FILENAME)
    with conn:
        conn.execute(V1_CREATE)
        conn.execute("INSERT INTO learned VALUES ('api_key_id', 'key_old', 'Old key', 'sk-proj-...0ld', NULL,"
                     " 'proj_a', 'user', 'user-u', 'Ursula', 100.0, 200.0)")
        conn.execute("PRAGMA user_version = 1")
    conn.close()

    history, problem = History.open(str(tmp_path), NOW)
    try:
        assert problem is None
        assert history.load() == [Remembered(Learned("api_key_id", "key_old", "Old key", "sk-proj-...0ld", None,
                                                     "proj_a", "user", "user-u", "Ursula", provider="openai"),
                                             100.0, 200.0)]
        # The same id field and id from the other provider is a record of its own.
        anthropic = Learned("api_key_id", "key_old", "Anthropic's", provider="anthropic")
        assert history.remember([anthropic], NOW) == 1
        assert [r.learned.provider for r in history.load()] == ["anthropic", "openai"]
    finally:
        history.close()
    assert not any("corrupt" in name for name in os.listdir(tmp_path))  # migrated, not moved aside
    conn = sqlite3.connect(tmp_path / FILENAME)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables == ["learned"]
    finally:
        conn.close()


def test_a_schema_1_table_under_a_schema_2_version_is_not_ours(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / FILENAME)
    with conn:
        conn.execute(V1_CREATE)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.close()
    history, problem = History.open(str(tmp_path), NOW)
    history.close()
    assert problem is not None and "table learned has columns" in problem


# --- a state directory that cannot be written ---------------------------------------------------

def test_a_store_is_read_without_writing_anything(tmp_path: Path) -> None:
    history, _ = History.open(str(tmp_path), NOW)
    history.remember([KEY, USER], NOW)
    history.close()
    before = (tmp_path / FILENAME).read_bytes()
    assert [r.learned for r in History.read_only(str(tmp_path))] == sorted([KEY, USER], key=lambda r: (r.id_field, r.id))
    assert (tmp_path / FILENAME).read_bytes() == before
    assert History.read_only(str(tmp_path / "missing")) == []
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / FILENAME).write_bytes(b"not a database at all, not even close" * 10)
    assert History.read_only(str(tmp_path / "garbage")) == []


def test_an_unkept_store_remembers_in_memory_only(tmp_path: Path) -> None:
    history = History.unkept(str(tmp_path / "state"))
    assert history.remember([KEY], NOW) == 1
    assert [r.learned for r in history.load()] == [KEY]
    history.close()
    assert not (tmp_path / "state").exists()
