"""Tests for orgproxy.names.aliasfile: formats, results, and located errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from orgproxy.names.aliasfile import (
    FIELDS,
    MAX_BYTES,
    AliasFileError,
    load_aliases,
    parse_alias_file,
    parse_aliases,
    read_alias_bytes,
)

EXAMPLE_TOML = b"""\
[api_keys]
key_1234567890abcdef = "checkout-service-production"
[projects]
proj_abc = "checkout"
[users]
"user-abc" = "Alice Example"
"""

TABLES = ("api_keys", "projects", "users", "workspaces", "service_accounts")
EXPECTED = "(expected api_keys, projects, users, workspaces or service_accounts)"


def tables(**given: dict[str, str]) -> dict[str, dict[str, str]]:
    """A parse result: every table, the ``given`` ones filled."""
    return {table: given.get(table, {}) for table in TABLES}


EXAMPLE_ALIASES = tables(
    api_keys={"key_1234567890abcdef": "checkout-service-production"},
    projects={"proj_abc": "checkout"},
    users={"user-abc": "Alice Example"},
)

EMPTY = tables()


def parse_error(text: bytes, path: str = "aliases.toml") -> AliasFileError:
    """Parse ``text``, which must fail, and return the error."""
    with pytest.raises(AliasFileError) as info:
        parse_aliases(text, path)
    return info.value


def assert_key_error(err: AliasFileError, path: str, line: int, reason: str, column: int | None = None) -> None:
    """A semantic error: the file, the line (and for JSON the column) where the entry is
    written, and a reason that names the key path."""
    assert (err.path, err.line, err.column, err.reason) == (path, line, column, reason)
    assert str(err) == f"{path}:{line}{'' if column is None else f':{column}'}: {reason}"


def assert_error(
    err: AliasFileError, path: str, line: int | None, reason_part: str, column: int | None = None
) -> None:
    assert err.path == path
    assert (err.line, err.column) == (line, column)
    assert reason_part in err.reason
    assert str(err).startswith(path)
    if line is None:
        assert str(err) == f"{path}: {err.reason}"
    elif column is None:
        assert str(err) == f"{path}:{line}: {err.reason}"
    else:
        assert str(err) == f"{path}:{line}:{column}: {err.reason}"


# --- the API ----------------------------------------------------------------


def test_fields_are_the_tables_in_order() -> None:
    assert FIELDS == TABLES


def test_error_str_has_path_line_and_reason() -> None:
    assert str(AliasFileError("a.toml", 3, "bad thing")) == "a.toml:3: bad thing"


def test_error_str_without_line_has_path_and_reason() -> None:
    assert str(AliasFileError("a.toml", None, "bad thing")) == "a.toml: bad thing"


def test_error_keeps_its_fields_through_pickle() -> None:
    err = pickle.loads(pickle.dumps(AliasFileError("a.toml", 3, "bad thing")))
    assert (err.path, err.line, err.reason) == ("a.toml", 3, "bad thing")
    assert str(err) == "a.toml:3: bad thing"


# --- valid files ------------------------------------------------------------


def test_toml_example_parses_to_exact_dict() -> None:
    assert parse_aliases(EXAMPLE_TOML, "aliases.toml") == EXAMPLE_ALIASES


def test_result_always_has_the_tables_in_fields_order() -> None:
    assert list(parse_aliases(b'[users]\nu = "U"\n', "a.toml")) == list(FIELDS)


def test_toml_quoted_literal_and_dotted_keys_parse() -> None:
    text = b"""\
api_keys.key_a = "A"
[users]
'user-x' = "X"
"user y" = "Y"
"""
    assert parse_aliases(text, "a.toml") == tables(api_keys={"key_a": "A"}, users={"user-x": "X", "user y": "Y"})


def test_structured_json_parses() -> None:
    text = b"""{
  "api_keys": {"key_1234567890abcdef": "checkout-service-production"},
  "projects": {"proj_abc": "checkout"},
  "users": {"user-abc": "Alice Example"}
}"""
    assert parse_aliases(text, "aliases.json") == EXAMPLE_ALIASES


def test_flat_json_goes_to_api_keys() -> None:
    text = b'{"key_abc": "billing", "key_def": "search"}'
    assert parse_aliases(text, "aliases.json") == tables(api_keys={"key_abc": "billing", "key_def": "search"})


def test_missing_toml_tables_are_empty() -> None:
    assert parse_aliases(b'[projects]\nproj_abc = "checkout"\n', "a.toml") == tables(projects={"proj_abc": "checkout"})


def test_missing_json_tables_are_empty() -> None:
    assert parse_aliases(b'{"users": {"u": "U"}}', "a.json") == tables(users={"u": "U"})


def test_empty_tables_are_empty() -> None:
    assert parse_aliases(b"[api_keys]\n[projects]\n[users]\n", "a.toml") == EMPTY
    assert parse_aliases(b'{"api_keys": {}, "users": {}}', "a.json") == EMPTY


@pytest.mark.parametrize("path", ["aliases.toml", "aliases.json", "aliases"])
@pytest.mark.parametrize("text", [b"", b"\n  \n\t\n"])
def test_empty_file_is_valid_and_empty(text: bytes, path: str) -> None:
    assert parse_aliases(text, path) == EMPTY


def test_toml_file_of_only_comments_is_empty() -> None:
    assert parse_aliases(b"# no aliases yet\n\n# really\n", "a.toml") == EMPTY


def test_empty_json_object_is_empty() -> None:
    assert parse_aliases(b"{}", "a.json") == EMPTY


def test_unicode_names_in_toml() -> None:
    text = '[users]\nuser-abc = "Zoë Ünïcode 日本"\n'.encode()
    assert parse_aliases(text, "a.toml")["users"] == {"user-abc": "Zoë Ünïcode 日本"}


def test_unicode_names_in_json() -> None:
    text = '{"users": {"user-abc": "Zoë Ünïcode 日本", "u2": "\\u00e9"}}'.encode()
    assert parse_aliases(text, "a.json")["users"] == {
        "user-abc": "Zoë Ünïcode 日本",
        "u2": "é",
    }


def test_names_and_ids_are_kept_exactly_as_written() -> None:
    text = b'[users]\n" user-abc " = "  Alice  "\n'
    assert parse_aliases(text, "a.toml")["users"] == {" user-abc ": "  Alice  "}


def test_utf8_bom_is_ignored() -> None:
    assert parse_aliases(b"\xef\xbb\xbf" + EXAMPLE_TOML, "a.toml") == EXAMPLE_ALIASES
    assert parse_aliases(b'\xef\xbb\xbf{"k": "n"}', "a")["api_keys"] == {"k": "n"}


# --- choosing the format ----------------------------------------------------


def test_json_extension_chooses_json_even_after_leading_whitespace() -> None:
    text = b'\n   \n\t{"users": {"u": "U"}}\n'
    assert parse_aliases(text, "aliases.json")["users"] == {"u": "U"}


def test_json_extension_reports_json_errors_for_toml_content() -> None:
    err = parse_error(b'[users]\nu = "U"\n', "aliases.json")
    assert_error(err, "aliases.json", 1, "Expecting value", 2)


def test_toml_extension_chooses_toml_even_for_a_brace() -> None:
    err = parse_error(b'{"users": {"u": "U"}}', "aliases.toml")
    assert_error(err, "aliases.toml", 1, "Invalid statement", 1)


def test_unknown_extension_sniffs_json_from_a_leading_brace() -> None:
    text = b'  \n {"users": {"u": "U"}}'
    assert parse_aliases(text, "/etc/orgproxy/aliases.conf")["users"] == {"u": "U"}


def test_unknown_extension_defaults_to_toml() -> None:
    assert parse_aliases(EXAMPLE_TOML, "/etc/orgproxy/aliases") == EXAMPLE_ALIASES


def test_extension_is_case_insensitive() -> None:
    assert parse_aliases(b'  {"k": "n"}', "ALIASES.JSON")["api_keys"] == {"k": "n"}
    assert parse_aliases(EXAMPLE_TOML, "Aliases.TOML") == EXAMPLE_ALIASES


# --- reading files ----------------------------------------------------------


def test_load_aliases_reads_and_parses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "aliases.toml"
    path.write_bytes(EXAMPLE_TOML)
    assert load_aliases(str(path)) == EXAMPLE_ALIASES


def test_load_aliases_uses_the_path_for_format_and_messages(tmp_path: Path) -> None:
    path = tmp_path / "aliases.json"
    path.write_bytes(b'{\n"users": {"u": 5}\n}')
    with pytest.raises(AliasFileError) as info:
        load_aliases(str(path))
    assert_key_error(info.value, str(path), 2, "users.u: name must be a string, not number", 11)


def test_load_aliases_of_a_missing_file_cannot_read(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.toml")
    with pytest.raises(AliasFileError) as info:
        load_aliases(path)
    assert_error(info.value, path, None, "cannot read: ")
    assert info.value.reason == f"cannot read: {os.strerror(2)}"
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_load_aliases_of_a_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    # (A directory of alias files is read by aliassource, file by file.)
    with pytest.raises(AliasFileError) as info:
        load_aliases(str(tmp_path))
    assert_error(info.value, str(tmp_path), None, "cannot read: not a regular file (a directory)")


@pytest.mark.timeout(10)  # a FIFO opened for reading the usual way waits for a writer forever
def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "aliases.toml"
    os.mkfifo(fifo)
    with pytest.raises(AliasFileError) as info:
        load_aliases(str(fifo))
    assert_error(info.value, str(fifo), None, "cannot read: not a regular file (a FIFO)")


def test_a_symlink_to_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    link = tmp_path / "aliases.toml"
    link.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(AliasFileError) as info:
        load_aliases(str(link))
    assert_error(info.value, str(link), None, "cannot read: not a regular file (a character device)")


def test_a_file_over_the_size_limit_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "aliases.toml"
    with open(path, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: nothing is written, or read
    with pytest.raises(AliasFileError) as info:
        load_aliases(str(path))
    assert_error(info.value, str(path), None, "larger than 16 MiB, the most alias files may hold")
    path.write_bytes(EXAMPLE_TOML)
    assert read_alias_bytes(str(path), limit=len(EXAMPLE_TOML)) == EXAMPLE_TOML
    with pytest.raises(AliasFileError):
        read_alias_bytes(str(path), limit=len(EXAMPLE_TOML) - 1)


@pytest.mark.parametrize(("text", "path", "blank"), [
    (b"", "a.toml", True), (b" \n\t\n", "a.json", True), (b"# nothing yet\n\n# really\n", "a.toml", True),
    (b"[api_keys]\n", "a.toml", False), (b"[api_keys]\n[projects]\n[users]\n", "a.toml", False),
    (b"{}", "a.json", False), (b'{"api_keys": {}}', "a.json", False), (EXAMPLE_TOML, "a.toml", False),
])
def test_a_file_is_blank_when_it_holds_no_table_at_all(text: bytes, path: str, blank: bool) -> None:
    aliases, is_blank = parse_alias_file(text, path)
    assert is_blank is blank
    assert aliases == parse_aliases(text, path)


# --- encoding errors --------------------------------------------------------


def test_non_utf8_byte_is_reported_at_its_line() -> None:
    text = b'[users]\nu1 = "ok"\nu2 = "caf\xe9"\n'
    err = parse_error(text)
    assert_error(err, "aliases.toml", 3, "not UTF-8 text (byte 0xe9 at line 3)")


def test_non_utf8_byte_on_the_first_line() -> None:
    err = parse_error(b'\xff{"k": "n"}', "a.json")
    assert_error(err, "a.json", 1, "not UTF-8 text (byte 0xff at line 1)")


# --- TOML syntax errors -----------------------------------------------------


def test_toml_syntax_error_reports_tomllib_line_and_message() -> None:
    err = parse_error(b'[users]\nu1 = "ok"\n\nu2 = \n')
    assert_error(err, "aliases.toml", 4, "Invalid value", 6)
    assert err.reason == "Invalid value"


def test_toml_syntax_error_at_end_of_document_uses_last_line() -> None:
    err = parse_error(b'[users]\nu1 = "ok"\nu2 = "unterminated')
    assert_error(err, "aliases.toml", 3, "Unterminated string")
    assert "end of document" not in err.reason


def test_toml_syntax_error_at_end_after_final_newline_uses_last_line() -> None:
    err = parse_error(b'[users]\nu1 = """never closed\n\n')
    assert_error(err, "aliases.toml", 3, "Unterminated string")


def test_toml_duplicate_key_is_an_error_at_the_second() -> None:
    err = parse_error(b'[api_keys]\nkey_a = "a"\nkey_b = "b"\nkey_a = "a"\n')
    assert_error(err, "aliases.toml", 4, "Cannot overwrite a value", 12)


def test_toml_duplicate_key_on_the_last_line_without_newline() -> None:
    err = parse_error(b'[api_keys]\nkey_a = "a"\nkey_a = "b"')
    assert_error(err, "aliases.toml", 3, "Cannot overwrite a value")


def test_toml_duplicate_table_is_an_error_at_the_second() -> None:
    err = parse_error(b'[users]\nu = "U"\n[projects]\n[users]\n')
    assert_error(err, "aliases.toml", 4, "Cannot declare", 7)


# --- TOML semantic errors ---------------------------------------------------


def test_toml_unknown_table_api_key_typo() -> None:
    err = parse_error(b'[projects]\np = "P"\n\n[api_key]\nkey_a = "A"\n')
    assert_key_error(
        err, "aliases.toml", 4, f'unknown table "api_key" {EXPECTED}'
    )


def test_toml_unknown_table_project_typo() -> None:
    err = parse_error(b'# aliases\n[project]\nproj_a = "A"\n')
    assert_key_error(
        err, "aliases.toml", 2, f'unknown table "project" {EXPECTED}'
    )


def test_toml_unknown_top_level_key() -> None:
    err = parse_error(b'# aliases\n\nname = "x"\n[users]\n')
    assert_key_error(
        err, "aliases.toml", 3, f'unknown table "name" {EXPECTED}'
    )


def test_toml_unknown_table_from_a_dotted_header() -> None:
    err = parse_error(b'[users]\nu = "U"\n[user.extra]\n')
    assert_key_error(
        err, "aliases.toml", 3, f'unknown table "user" {EXPECTED}'
    )


def test_toml_table_that_is_not_a_table() -> None:
    err = parse_error(b'# aliases\napi_keys = "x"\n')
    assert_key_error(err, "aliases.toml", 2, "api_keys: must be a table, not string")


def test_toml_array_of_tables_is_not_a_table() -> None:
    err = parse_error(b'[projects]\n[[users]]\nu = "U"\n')
    assert_key_error(err, "aliases.toml", 2, "users: must be a table, not array")


def test_toml_name_that_is_an_integer() -> None:
    err = parse_error(b'[api_keys]\nkey_b = "B"\nkey_a = 5\n')
    assert_key_error(err, "aliases.toml", 3, "api_keys.key_a: name must be a string, not integer")


def test_toml_name_that_is_a_nested_table() -> None:
    err = parse_error(b'[api_keys]\nkey_b = "B"\n\n[api_keys.key_a]\nx = "y"\n')
    assert_key_error(err, "aliases.toml", 4, "api_keys.key_a: name must be a string, not table")


def test_toml_name_that_is_a_dotted_key_table() -> None:
    err = parse_error(b'[users]\nu1 = "U"\nu2.first = "A"\n')
    assert_key_error(err, "aliases.toml", 3, "users.u2: name must be a string, not table")


def test_toml_name_that_is_an_inline_table() -> None:
    err = parse_error(b'[users]\nu1 = "U"\nu2 = { first = "A" }\n')
    assert_key_error(err, "aliases.toml", 3, "users.u2: name must be a string, not table")


def test_toml_bad_name_in_a_top_level_inline_table_names_its_key() -> None:
    err = parse_error(b'# aliases\nusers = { u1 = "U", u2 = [1,\n 2], u3 = true }\n')
    assert_key_error(err, "aliases.toml", 2, "users.u2: name must be a string, not array")


def test_toml_name_that_is_a_datetime() -> None:
    err = parse_error(b"[users]\nu1 = 1979-05-27 07:32:00\n")
    assert_key_error(err, "aliases.toml", 2, "users.u1: name must be a string, not datetime")


def test_toml_name_that_is_a_date_or_a_time() -> None:
    err = parse_error(b"[users]\nu1 = 1979-05-27\n")
    assert_key_error(err, "aliases.toml", 2, "users.u1: name must be a string, not date")
    err = parse_error(b"[users]\nu1 = 07:32:00\n")
    assert_key_error(err, "aliases.toml", 2, "users.u1: name must be a string, not time")


def test_toml_quoted_key_is_named_bare_when_it_can_be() -> None:
    err = parse_error(b'[users]\n"user-ok" = "U"\n"user-abc" = false\n')
    assert_key_error(err, "aliases.toml", 3, "users.user-abc: name must be a string, not boolean")


def test_toml_literal_quoted_key_is_named_quoted() -> None:
    err = parse_error(b"[users]\n'user ok' = 'U'\n'user x' = 1.5\n")
    assert_key_error(err, "aliases.toml", 3, 'users."user x": name must be a string, not float')


def test_toml_escaped_quoted_key_is_named_decoded() -> None:
    err = parse_error(b'[users]\nuser = "U"\n"us\\u0065r2" = 1\n')
    assert_key_error(err, "aliases.toml", 3, "users.user2: name must be a string, not integer")


def test_toml_top_level_dotted_key_names_the_whole_path() -> None:
    err = parse_error(b'api_keys.key_b = "B"\n\napi_keys . "key_a" = 3\n')
    assert_key_error(err, "aliases.toml", 3, "api_keys.key_a: name must be a string, not integer")


def test_toml_same_id_in_another_table_names_the_right_table() -> None:
    text = b'[projects]\nx = "P"\n[users]\nu = "U"\nx = 7\n'
    assert_key_error(parse_error(text), "aliases.toml", 5, "users.x: name must be a string, not integer")


def test_toml_key_inside_a_multiline_string_is_not_taken_for_a_key() -> None:
    # The error is about the real api_keys.key_a; the text in users.note is only a name.
    # (A backslash at a line's end joins the lines: the name itself holds no newline.)
    text = b'[users]\nnote = """\\\nkey_a = 5 \\\n"""\n[api_keys]\nkey_a = 5\n'
    err = parse_error(text)
    assert_key_error(err, "aliases.toml", 6, "api_keys.key_a: name must be a string, not integer")


def test_toml_key_inside_a_multiline_array_is_not_taken_for_a_key() -> None:
    text = b'[users]\nu = "U"\nlist = [\n  "key_a = 5", # key_a = 5\n]\n'
    err = parse_error(text)
    assert_key_error(err, "aliases.toml", 3, "users.list: name must be a string, not array")


def test_toml_empty_name() -> None:
    err = parse_error(b'[projects]\nproj_a = "A"\nproj_b = ""\n')
    assert_key_error(err, "aliases.toml", 3, "projects.proj_b: name must not be empty")


def test_toml_whitespace_name() -> None:
    err = parse_error(b'[projects]\nproj_b = "  \\t "\n')
    assert_key_error(err, "aliases.toml", 2, "projects.proj_b: name must not be empty")


def test_toml_empty_id() -> None:
    err = parse_error(b'[users]\nu = "U"\n"" = "Nobody"\n')
    assert_key_error(err, "aliases.toml", 3, 'users."": id must not be empty')


def test_toml_whitespace_id() -> None:
    err = parse_error(b'[users]\n"   " = "Nobody"\n')
    assert_key_error(err, "aliases.toml", 2, 'users."   ": id must not be empty')


def test_toml_nesting_too_deep_is_an_alias_file_error() -> None:
    err = parse_error(b"users = " + b"[" * 100_000)
    assert_error(err, "aliases.toml", None, "nested too deeply")


# --- JSON syntax errors -----------------------------------------------------


def test_json_syntax_error_reports_decoder_line_and_message() -> None:
    err = parse_error(b'{\n  "users": {\n    "u": "U",\n  }\n}', "a.json")
    assert_error(err, "a.json", 4, "Expecting property name enclosed in double quotes", 3)


def test_json_top_level_must_be_an_object() -> None:
    err = parse_error(b'\n["key_a", "A"]', "a.json")
    assert_key_error(err, "a.json", 2, "top level must be an object, not array", 1)


def test_json_nesting_too_deep_is_an_alias_file_error() -> None:
    err = parse_error(b"[" * 100_000, "a.json")
    assert_error(err, "a.json", None, "nested too deeply")


# --- JSON semantic errors ---------------------------------------------------


def test_json_unknown_table() -> None:
    text = b'{\n  "users": {},\n  "project": {"p": "P"}\n}'
    err = parse_error(text, "a.json")
    assert_key_error(
        err, "a.json", 3, f'unknown table "project" {EXPECTED}', 3
    )


def test_json_table_that_is_not_an_object() -> None:
    text = b'{\n  "users": {},\n  "api_keys": ["k"]\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, "api_keys: must be an object, not array", 3)


def test_json_name_that_is_not_a_string() -> None:
    text = b'{\n  "api_keys": {\n    "key_b": "B",\n    "key_a": 5\n  }\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 4, "api_keys.key_a: name must be a string, not number", 5)


def test_json_name_that_is_an_object() -> None:
    text = b'{"users": {\n"u": {"first": "A"}\n}}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 2, "users.u: name must be a string, not object", 1)


def test_json_same_id_in_another_table_names_the_right_table() -> None:
    text = b'{\n"projects": {"x": "P"},\n"users": {\n"x": null\n}}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 4, "users.x: name must be a string, not null", 1)


def test_json_id_appearing_as_a_name_does_not_mislead_the_key_path() -> None:
    text = b'{"users": {\n"a": "x",\n"x": ""\n}}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, "users.x: name must not be empty", 1)


def test_json_empty_id() -> None:
    text = b'{"users": {\n"u": "U",\n" ": "Nobody"\n}}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, 'users." ": id must not be empty', 1)


def test_json_duplicate_id_with_the_same_name_is_fine() -> None:
    text = b'{"users": {\n"u": "Alice",\n"v": "Bob",\n"u": "Alice"\n}}'
    assert parse_aliases(text, "a.json")["users"] == {"u": "Alice", "v": "Bob"}


def test_json_duplicate_id_with_a_different_name_is_an_error_naming_its_key_path() -> None:
    text = b'{"api_keys": {\n"key_a": "a",\n"key_b": "x",\n"key_a": "a",\n"key_a": "b"\n}}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 5, "api_keys.key_a is given two different names", 1)
    # The message is shown on /health, which never shows names.
    assert '"a"' not in str(err) and '"b"' not in str(err)


def test_json_same_id_in_two_tables_is_not_a_duplicate() -> None:
    text = b'{"projects": {"x": "P"}, "users": {"x": "U"}}'
    aliases = parse_aliases(text, "a.json")
    assert (aliases["projects"], aliases["users"]) == ({"x": "P"}, {"x": "U"})


def test_json_duplicate_table_is_an_error() -> None:
    text = b'{\n"users": {"u": "U"},\n"projects": {},\n"users": {"u": "U"}\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 4, 'duplicate table "users"', 1)


def test_flat_json_duplicate_id_with_the_same_name_is_fine() -> None:
    text = b'{"k": "A", "k": "A"}'
    assert parse_aliases(text, "a.json")["api_keys"] == {"k": "A"}


def test_flat_json_duplicate_id_with_a_different_name_is_an_error() -> None:
    text = b'{\n"k": "A",\n"k": "B"\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, "api_keys.k is given two different names", 1)


def test_flat_json_name_that_is_not_a_string() -> None:
    text = b'{\n"k": "A",\n"j": true\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, "api_keys.j: name must be a string, not boolean", 1)


def test_json_mixture_of_tables_then_strings_is_an_error() -> None:
    text = b'{\n"users": {"u": "U"},\n"key_a": "A"\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, 'mixes tables and flat entries ("users" is an object, "key_a" is a string)', 1)


def test_json_mixture_of_strings_then_tables_is_an_error() -> None:
    text = b'{\n"key_a": "A",\n"key_b": "B",\n"users": {"u": "U"}\n}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 4, 'mixes tables and flat entries ("key_a" is a string, "users" is an object)', 1)


def test_json_key_escapes_are_decoded_in_the_key_path() -> None:
    text = b'{"users": {\n"u": "U",\n"\\u0078": 1\n}}'
    err = parse_error(text, "a.json")
    assert_key_error(err, "a.json", 3, "users.x: name must be a string, not number", 1)


def test_anthropic_s_workspaces_and_service_accounts_have_tables_and_its_ids_share_the_others() -> None:
    text = b"""\
[api_keys]
key_1234567890abcdef = "checkout-service-production"
apikey_01Rj2N8SVvo6BePZj99NhmiT = "billing-batch-prod"
[users]
"user-abc" = "Alice Example"
user_01WCz1FkmYMm4gnmykNKUu3Q = "Jane Doe"
[workspaces]
wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ = "Billing"
[service_accounts]
svac_01Hk3R9TWxq7CfQak00OiVw4 = "ci-deploy-bot"
"""
    assert parse_aliases(text, "aliases.toml") == tables(
        api_keys={"key_1234567890abcdef": "checkout-service-production",
                  "apikey_01Rj2N8SVvo6BePZj99NhmiT": "billing-batch-prod"},
        users={"user-abc": "Alice Example", "user_01WCz1FkmYMm4gnmykNKUu3Q": "Jane Doe"},
        workspaces={"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ": "Billing"},
        service_accounts={"svac_01Hk3R9TWxq7CfQak00OiVw4": "ci-deploy-bot"})
    as_json = b'{"workspaces": {"wrkspc_a": "Billing"}, "service_accounts": {"svac_a": "bot"}}'
    assert parse_aliases(as_json, "aliases.json") == tables(workspaces={"wrkspc_a": "Billing"},
                                                            service_accounts={"svac_a": "bot"})
    assert_key_error(
        parse_error(b'[workspace]\nw = "W"\n'), "aliases.toml", 1, f'unknown table "workspace" {EXPECTED}'
    )


# --- ids in their own table ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "reason"), [
    (b'[projects]\nproj_a = "A"\nkey_abc = "a key"\n', 3,
     "projects.key_abc: an id starting 'key_' belongs in [api_keys], not [projects]"),
    (b'[api_keys]\nproj_abc = "a project"\n', 2,
     "api_keys.proj_abc: an id starting 'proj_' belongs in [projects], not [api_keys]"),
    (b'[api_keys]\nwrkspc_01 = "Billing"\n', 2,
     "api_keys.wrkspc_01: an id starting 'wrkspc_' belongs in [workspaces], not [api_keys]"),
    (b'[workspaces]\napikey_01 = "a key"\n', 2,
     "workspaces.apikey_01: an id starting 'apikey_' belongs in [api_keys], not [workspaces]"),
    (b'[users]\nsvac_01 = "a bot"\n', 2,
     "users.svac_01: an id starting 'svac_' belongs in [service_accounts], not [users]"),
    (b'[service_accounts]\n"user-abc" = "Alice"\n', 2,
     "service_accounts.user-abc: an id starting 'user-' belongs in [users], not [service_accounts]"),
])
def test_an_id_under_another_kind_s_table_is_refused_naming_its_table(text: bytes, line: int, reason: str) -> None:
    assert_key_error(parse_error(text), "aliases.toml", line, reason)


def test_an_id_in_the_wrong_table_is_refused_in_json_and_flat_json_too() -> None:
    assert_key_error(parse_error(b'{"projects": {\n  "key_a": "A"}}', "a.json"), "a.json", 2,
                     "projects.key_a: an id starting 'key_' belongs in [api_keys], not [projects]", 3)
    assert_key_error(parse_error(b'{"key_a": "A",\n "proj_b": "B"}', "a.json"), "a.json", 2,
                     "api_keys.proj_b: an id starting 'proj_' belongs in [projects], not [api_keys]", 2)


def test_ids_without_a_known_prefix_go_in_any_table() -> None:
    aliases = parse_aliases(b'[projects]\nsomething-new = "P"\n[users]\nsomething-new = "U"\n', "aliases.toml")
    assert (aliases["projects"], aliases["users"]) == ({"something-new": "P"}, {"something-new": "U"})


# --- names are text ----------------------------------------------------------------------


@pytest.mark.parametrize(("escape", "code", "kind"), [
    ("\\u001b", "001B", "a control character"),  # ESC: a terminal's escape sequences
    ("\\r", "000D", "a control character"),
    ("\\n", "000A", "a control character"),
    ("\\u0000", "0000", "a control character"),
    ("\\u007f", "007F", "a control character"),  # DEL
    ("\\u0085", "0085", "a control character"),  # a C1 control: NEL
])
def test_a_name_with_a_control_character_is_refused_where_it_is_written(escape: str, code: str, kind: str) -> None:
    text = f'[api_keys]\nkey_a = "fine"\nkey_b = "bad{escape}name"\n'.encode()
    reason = f"api_keys.key_b: name holds {kind} (U+{code}) at character 4"
    assert_key_error(parse_error(text), "aliases.toml", 3, reason)
    as_json = f'{{"api_keys": {{"key_a": "fine",\n "key_b": "bad{escape}name"}}}}'.encode()
    assert_key_error(parse_error(as_json, "a.json"), "a.json", 2, reason, 2)


def test_a_name_with_a_lone_surrogate_is_refused_where_it_is_written() -> None:
    text = b'{\n  "api_keys": {\n    "key_a": "bad\\ud800name"\n  }\n}'
    assert_key_error(parse_error(text, "a.json"), "a.json", 3,
                     "api_keys.key_a: name holds a lone surrogate (U+D800) at character 4", 5)


def test_a_tab_and_any_printable_text_are_fine_in_a_name() -> None:
    aliases = parse_aliases('[api_keys]\nkey_a = "a\\tb"\nkey_b = "Zoë 日本 🚀 \u202e"\n'.encode(), "aliases.toml")
    assert aliases["api_keys"] == {"key_a": "a\tb", "key_b": "Zoë 日本 🚀 \u202e"}


def test_an_id_is_shown_escaped_in_a_message() -> None:
    err = parse_error(b'{"api_keys": {"key_\\u001b[31m\\ud800": 5}}', "a.json")
    assert err.reason == 'api_keys."key_\\u001b[31m\\ud800": name must be a string, not number'
    assert str(err).isprintable()
