"""``--aliases`` naming a directory (conf.d style): every ``*.toml`` and ``*.json`` file in
it, in name order, merged; an id named in two files is an error naming both; and stamps
that change with any file in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orgproxy.names.aliasfile import FIELDS, MAX_BYTES, AliasFileError
from orgproxy.names.aliassource import AliasSource, alias_file_names, read_source, stamp


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def conf_d(tmp_path: Path) -> Path:
    directory = tmp_path / "aliases.d"
    directory.mkdir()
    write(directory / "10-keys.toml", '[api_keys]\nkey_a = "checkout"\n')
    write(directory / "20-projects.json", '{"projects": {"proj_a": "Checkout"}}')
    write(directory / "30-flat.json", '{"key_b": "mobile"}')
    return directory


def test_every_toml_and_json_file_is_read_and_merged(conf_d: Path) -> None:
    source = read_source(str(conf_d))
    assert source.aliases == {"api_keys": {"key_a": "checkout", "key_b": "mobile"},
                              "projects": {"proj_a": "Checkout"}, "users": {}, "workspaces": {},
                              "service_accounts": {}}
    assert source.names_by_file == {str(conf_d / "10-keys.toml"): 1, str(conf_d / "20-projects.json"): 1,
                                    str(conf_d / "30-flat.json"): 1}
    assert source.count() == 3 and source.blank_files == frozenset()


def test_anthropic_s_tables_are_read_from_a_directory_too(conf_d: Path) -> None:
    write(conf_d / "40-anthropic.toml", '[api_keys]\napikey_01a = "billing-batch-prod"\n'
          '[workspaces]\nwrkspc_01a = "Research"\n[service_accounts]\nsvac_01a = "ci-deployer"\n')
    source = read_source(str(conf_d))
    assert source.aliases["api_keys"] == {"key_a": "checkout", "key_b": "mobile", "apikey_01a": "billing-batch-prod"}
    assert source.aliases["workspaces"] == {"wrkspc_01a": "Research"}
    assert source.aliases["service_accounts"] == {"svac_01a": "ci-deployer"}
    assert source.names_by_file[str(conf_d / "40-anthropic.toml")] == 3


def test_other_files_hidden_files_and_editors_leftovers_are_not_read(conf_d: Path) -> None:
    for name in ("README.md", ".10-keys.toml.swp", ".hidden.toml", "10-keys.toml~", "notes.txt", "..data"):
        write(conf_d / name, "this is not an alias file [")
    (conf_d / "sub").mkdir()
    assert alias_file_names(str(conf_d)) == ["10-keys.toml", "20-projects.json", "30-flat.json"]
    assert read_source(str(conf_d)).count() == 3


def test_files_are_read_in_name_order(conf_d: Path) -> None:
    assert alias_file_names(str(conf_d)) == sorted(os.listdir(conf_d))
    write(conf_d / "05-first.TOML", '[users]\nuser_a = "Ada"\n')
    assert alias_file_names(str(conf_d))[0] == "05-first.TOML"


def test_an_id_named_in_two_files_is_an_error_naming_both(conf_d: Path) -> None:
    later = write(conf_d / "40-again.toml", '# again\n[api_keys]\nkey_a = "checkout"\n')  # even with the same name
    with pytest.raises(AliasFileError) as info:
        read_source(str(conf_d))
    assert (info.value.path, info.value.line) == (str(later), 3)
    assert str(conf_d / "10-keys.toml") in info.value.reason and "api_keys.key_a" in info.value.reason


def test_the_same_id_in_two_tables_is_no_conflict(conf_d: Path) -> None:
    write(conf_d / "40-users.toml", '[users]\nsame-id = "someone"\n')
    write(conf_d / "41-projects.toml", '[projects]\nsame-id = "a project"\n')
    aliases = read_source(str(conf_d)).aliases
    assert (aliases["users"]["same-id"], aliases["projects"]["same-id"]) == ("someone", "a project")


def test_a_broken_file_in_the_directory_is_reported_by_its_own_name(conf_d: Path) -> None:
    broken = write(conf_d / "25-broken.toml", '[api_keys]\nkey_c = 5\n')
    with pytest.raises(AliasFileError) as info:
        read_source(str(conf_d))
    assert str(info.value) == f"{broken}:2: api_keys.key_c: name must be a string, not integer"


def test_a_fifo_in_the_directory_is_refused_not_waited_on(conf_d: Path) -> None:
    os.mkfifo(conf_d / "50-fifo.toml")
    with pytest.raises(AliasFileError) as info:
        read_source(str(conf_d))
    assert info.value.reason == "cannot read: not a regular file (a FIFO)"


def test_the_files_together_are_capped_as_one_file_is(conf_d: Path) -> None:
    half = MAX_BYTES // 2 + 1
    for name in ("60-big.toml", "61-big.toml"):
        write(conf_d / name, "# " + "x" * (half - 3) + "\n")
    with pytest.raises(AliasFileError) as info:
        read_source(str(conf_d))
    assert info.value.path == str(conf_d) and "together are larger than 16 MiB" in info.value.reason


def test_an_empty_directory_has_no_names_and_blank_files_are_told(conf_d: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    assert read_source(str(empty)) == AliasSource({table: {} for table in FIELDS}, {}, frozenset())
    write(conf_d / "10-keys.toml", "# emptied\n")
    assert read_source(str(conf_d)).blank_files == {str(conf_d / "10-keys.toml")}


def test_a_single_file_is_a_source_of_one_file(tmp_path: Path) -> None:
    path = write(tmp_path / "aliases.toml", '[api_keys]\nkey_a = "checkout"\n')
    assert read_source(str(path)) == AliasSource({**{table: {} for table in FIELDS}, "api_keys": {"key_a": "checkout"}},
                                                 {str(path): 1}, frozenset(), {str(path): {("api_keys", "key_a"): 2}})
    assert read_source(str(path)).origin("api_keys", "key_a") == (str(path), 2)
    with pytest.raises(AliasFileError) as info:
        read_source(str(tmp_path / "missing"))
    assert info.value.reason.startswith("cannot read: ")


def test_a_directory_s_stamp_changes_with_any_file_in_it_and_only_then(conf_d: Path) -> None:
    first = stamp(str(conf_d))
    assert stamp(str(conf_d)) == first
    write(conf_d / "notes.txt", "not an alias file")
    assert stamp(str(conf_d)) == first
    changes = [
        lambda: write(conf_d / "10-keys.toml", '[api_keys]\nkey_a = "checkout-v2"\n'),  # in place, size changes
        lambda: write(conf_d / "40-new.toml", "[users]\n"),  # a new file
        lambda: (conf_d / "40-new.toml").unlink(),  # a file gone
        lambda: os.rename(write(conf_d / ".tmp", '{"key_b": "mobile-2"}'), conf_d / "30-flat.json"),  # by rename
    ]
    before = first
    for change in changes:
        change()
        now = stamp(str(conf_d))
        assert now != before
        before = now
    assert stamp(str(conf_d / "missing")) is None


def test_each_entry_of_a_directory_has_its_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", '# team a\n[api_keys]\nkey_a = "A"\n')
    write(tmp_path / "b.json", '{"users": {"user-b": "B"},\n "projects": {"proj_b": "P"}}')
    source = read_source(str(tmp_path))
    assert source.origin("api_keys", "key_a") == (str(tmp_path / "a.toml"), 3)
    assert source.origin("users", "user-b") == (str(tmp_path / "b.json"), 1)
    assert source.origin("projects", "proj_b") == (str(tmp_path / "b.json"), 2)
    assert source.origin("api_keys", "key_nobody_named") is None
