"""The names snapshot (snapshot.py), and the names in force that hold it (names/current.py):
how the three sources merge, and what it counts."""

from __future__ import annotations

from orgproxy.snapshot import Learned
from orgproxy.names.current import CurrentNames, diff
from orgproxy.snapshot import Names

ALIASES = {"api_keys": {"key_a": "from the alias file"}, "projects": {"proj_p": "Aliased project"}}
DISCOVERED = [
    Learned("api_key_id", "key_a", "discovered a", redacted_value="sk-proj-...aaaa"),
    Learned("api_key_id", "key_b", "discovered b"),  # no redacted value this time
    Learned("user_id", "user-u", "Ursula", email="u@example.com"),
    Learned("service_account_id", "svc_acct_s", "a bot"),  # no field of a response carries it
]
HISTORY = [
    Learned("api_key_id", "key_a", "remembered a"),
    Learned("api_key_id", "key_b", "remembered b", redacted_value="sk-proj-...bbbb"),
    Learned("api_key_id", "key_deleted", "Deleted long ago", redacted_value="sk-proj-...dddd"),
]


def test_the_alias_file_wins_over_discovery_which_wins_over_history() -> None:
    names = Names.build(ALIASES, DISCOVERED, HISTORY)
    assert dict(names.by_field["api_key_id"]) == {
        "key_a": "from the alias file", "key_b": "discovered b", "key_deleted": "Deleted long ago"}
    assert dict(names.by_field["project_id"]) == {"proj_p": "Aliased project"}
    assert dict(names.by_field["user_id"]) == {"user-u": "Ursula"}
    # Each id counts once, for the source whose name won.
    assert dict(names.by_source) == {"aliases": 2, "discovered": 2, "history": 1}


def test_extra_fields_come_from_the_newest_source_that_has_them() -> None:
    members = Names.build(ALIASES, DISCOVERED, HISTORY).members
    # An aliased key keeps the redacted value discovery learned.
    assert members["api_key_id"]["key_a"] == ((b"api_key_name", b'"from the alias file"'),
                                              (b"api_key_redacted_value", b'"sk-proj-...aaaa"'))
    # Discovery saw no redacted value for key_b: history's stays.
    assert members["api_key_id"]["key_b"] == ((b"api_key_name", b'"discovered b"'),
                                              (b"api_key_redacted_value", b'"sk-proj-...bbbb"'))
    assert members["user_id"]["user-u"] == ((b"user_name", b'"Ursula"'), (b"user_email", b'"u@example.com"'))
    assert members["project_id"]["proj_p"] == ((b"project_name", b'"Aliased project"'),)


def test_counts_and_ids_by_name() -> None:
    names = Names.build({"api_keys": {"key_x": "checkout"}}, [Learned("api_key_id", "key_y", "checkout"),
                                                              Learned("api_key_id", "key_z", "mobile")])
    assert names.count() == 3
    assert names.counts() == {"api_key_id": 3, "project_id": 0, "user_id": 0, "workspace_id": 0, "account_id": 0,
                              "service_account_id": 0}
    # Every id known by a name, in the order the sources were merged (learned, then aliased).
    assert dict(names.ids_by_name["api_key_id"]) == {"checkout": ("key_y", "key_x"), "mobile": ("key_z",)}
    assert dict(names.ids_by_name["user_id"]) == {}


def test_each_id_counts_once_under_one_field_and_the_fields_add_up() -> None:
    """A [users] entry names OpenAI's user_id and Anthropic's account_id alike: it counts
    once, under the field discovery learned it for, else under user_id."""
    names = Names.build({"users": {"user-abc": "Alice", "user_01anthropic": "Jane"}, "api_keys": {"apikey_1": "k"}},
                        [Learned("account_id", "user_01anthropic", "Jane D", provider="anthropic"),
                         Learned("account_id", "user_02", "Joe", provider="anthropic")])
    assert names.count() == 4
    counts = names.counts()
    assert (counts["user_id"], counts["account_id"], counts["api_key_id"]) == (1, 2, 1)
    assert sum(counts.values()) == names.count()
    assert dict(names.by_field["account_id"]) == {"user_01anthropic": "Jane", "user_02": "Joe", "user-abc": "Alice"}


def test_a_rebuild_swaps_a_new_snapshot_and_leaves_the_old_one_as_it_was() -> None:
    current = CurrentNames()
    current.history = {("openai", "api_key_id", "key_a"): HISTORY[0]}
    before = current.rebuild()
    current.discovered[("openai", "api_key_id", "key_a")] = DISCOVERED[0]
    after = current.rebuild()
    assert current.names is after and after is not before
    assert before.by_field["api_key_id"]["key_a"] == "remembered a"
    assert after.by_field["api_key_id"]["key_a"] == "discovered a"


def test_diff_counts_added_removed_and_renamed_ids() -> None:
    old = {"api_keys": {"a": "A", "b": "B"}, "users": {"u": "U"}}
    new = {"api_keys": {"a": "A2", "c": "C"}, "projects": {"p": "P"}, "users": {"u": "U"}}
    assert diff(old, new) == (2, 1, 1)
