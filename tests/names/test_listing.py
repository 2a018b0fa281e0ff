"""orgproxy.names.listing, pure: the pages of /orgproxy/names. Walking every page, whatever
the page size, the most ids a page may look at, the field and the text, gives each entry
that matches exactly once, in order; a page never looks at more ids than its budget."""

from __future__ import annotations

import tomllib

from hypothesis import given
from hypothesis import strategies as st

from orgproxy.fields import ALIAS_TABLES, ALL_ID_FIELDS, ID_FIELDS_FOR_TABLE
from orgproxy.names.history import Learned
from orgproxy.names.listing import Entry, as_alias_file, page
from orgproxy.names.snapshot import CurrentNames
from orgproxy.names.tomltext import comment_text, toml_key, toml_string
from tests.support.properties import property_settings as examples_of

IDS = st.text(st.sampled_from("abcXY_-1é"), min_size=1, max_size=5)
ALIASES = st.dictionaries(st.sampled_from(ALIAS_TABLES), st.dictionaries(IDS, IDS, max_size=8), max_size=5)


def current_names(aliases: dict[str, dict[str, str]], learned: list[Learned] = ()) -> CurrentNames:  # type: ignore[assignment]
    current = CurrentNames()
    current.aliases = aliases
    current.discovered = {(r.provider, r.id_field, r.id): r for r in learned}
    current.rebuild()
    return current


def walk(current: CurrentNames, **how: object) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    after = None
    pages = 0
    while True:
        found = page(current, after=after, **how)  # type: ignore[arg-type]
        entries += found.entries
        pages += 1
        if found.after is None:
            return entries, pages
        assert found.after != after, "a page that moves nowhere"
        after = found.after


@examples_of(300)
@given(aliases=ALIASES, limit=st.integers(1, 4), budget=st.integers(1, 6),
       field=st.one_of(st.none(), st.sampled_from(ALL_ID_FIELDS)), text=st.one_of(st.none(), IDS))
def test_every_page_walked_gives_each_match_once_in_order(aliases: dict[str, dict[str, str]], limit: int,
                                                          budget: int, field: str | None, text: str | None) -> None:
    current = current_names(aliases)
    expected = [(table, i) for table in ALIAS_TABLES for i in sorted(aliases.get(table, {}))
                if (field is None or field in ID_FIELDS_FOR_TABLE[table])
                and (text is None or text.casefold() in i.casefold() or text.casefold() in aliases[table][i].casefold())]
    entries, pages = walk(current, limit=limit, budget=budget, field=field, text=text)
    assert [(e.table, e.id) for e in entries] == expected
    assert all(e.name == aliases[e.table][e.id] and e.source == "alias" for e in entries)
    looked_at = sum(len(aliases.get(t, {})) for t in ALIAS_TABLES if field is None or field in ID_FIELDS_FOR_TABLE[t])
    assert pages <= looked_at // budget + len(expected) // limit + 1  # no page is wasted


def test_a_page_looks_at_no_more_ids_than_its_budget() -> None:
    current = current_names({"api_keys": {f"key_{n:03d}": f"name {n}" for n in range(100)}})
    found = page(current, text="nothing is called this", budget=10)
    assert found.entries == [] and found.after == ("api_keys", "key_009")
    found = page(current, text="nothing is called this", budget=10, after=found.after)
    assert found.after == ("api_keys", "key_019")


def test_an_id_named_by_discovery_for_one_provider_only_has_that_provider_s_fields() -> None:
    # An Anthropic user names its usage report's account_id and its analytics actor's user_id.
    account = Learned("account_id", "user_01Anthropic", "Ada", provider="anthropic")
    (entry,) = page(current_names({}, [account])).entries
    assert (entry.table, entry.fields, entry.source, entry.provider) == (
        "users", ("user_id", "account_id"), "discovery", "anthropic")
    key = Learned("api_key_id", "key_openai", "checkout")
    service_account = Learned("service_account_id", "user-x", "bot")  # OpenAI's: it names nothing
    (entry,) = page(current_names({}, [key, service_account])).entries
    assert (entry.table, entry.fields, entry.provider) == ("api_keys", ("api_key_id",), "openai")


def test_the_alias_file_escapes_what_toml_must_and_comments_what_it_cannot_spell() -> None:
    entries = [Entry("api_keys", "key_a", 'a "quoted"\\ name\x07\n', ("api_keys",), "history", "openai",
                     at=1_780_000_000.0),
               Entry("api_keys", "key_\ud800", "x", ("api_keys",), "alias", file="/etc/o\nx.toml", line=3),
               Entry("projects", "proj b", "P", ("project_id",), "alias", file="/etc/orgproxy/a.toml", line=None)]
    text = as_alias_file(entries, "/orgproxy/names?cursor=abc")
    text.encode("utf-8")  # every line is UTF-8 text, a lone surrogate included (as its escape)
    assert tomllib.loads(text) == {"api_keys": {"key_a": 'a "quoted"\\ name\x07\n'}, "projects": {"proj b": "P"}}
    lines = text.splitlines()
    assert '# "key_\\ud800" cannot be written in TOML (its id or name holds a lone surrogate): name it in a .json' \
           ' alias file instead; alias, /etc/o\\u000ax.toml:3' in lines
    assert 'key_a = "a \\"quoted\\"\\\\ name\\u0007\\u000a"  # history (openai), last seen 2026-05-28T20:26:40+00:00' \
           in lines
    assert "#   /orgproxy/names?cursor=abc" in lines


@examples_of(300)
@given(key=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
       value=st.text(st.characters(blacklist_categories=("Cs",))))
def test_any_key_and_name_read_back_from_the_toml_written_for_them(key: str, value: str) -> None:
    assert tomllib.loads(f"{toml_key(key)} = {toml_string(value)}  # {comment_text(key + value)}\n") == {key: value}
