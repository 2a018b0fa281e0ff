"""``GET /orgproxy/names``, in memory: every id's name in effect with where it comes from
(the alias file and line, discovery and when, the history and when last seen), filtered,
paged past 1,000, as JSON and as an alias file that reads back as the same names; its 400s;
and who may ask (as for /metrics)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orgproxy.names.aliasfile import parse_alias_file
from orgproxy.names.history import History, Learned
from orgproxy.ops.reload import ReloadService
from orgproxy.times import iso
from tests.support.answers import TOKEN
from tests.support.fake_admin import FakeAdmin, sample_org
from tests.support.fake_openai import FakeOpenAI
from tests.support.memory import InMemoryProxy
from tests.web.test_site import counted_since, requests_counted

MakeProxy = Callable[..., InMemoryProxy]
NAMES = "/orgproxy/names"
REMEMBERED_AT = 1_780_000_000.0


def listed(proxy: InMemoryProxy, query: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = proxy.get(NAMES + query, headers=headers)
    assert answer.status == 200, answer.body
    assert answer.header("Content-Type") == "application/json"
    return answer.json()  # type: ignore[no-any-return]


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in body["data"]}


def test_alias_names_say_their_file_and_line(proxy: InMemoryProxy, aliases: Path) -> None:
    body = listed(proxy)
    lines = aliases.read_text().splitlines()
    entries = by_id(body)
    assert set(entries) == {"key_1234567890abcdef", "key_abcdef1234567890", "key_1111222233334444", "proj_abc",
                            "user-abc"}
    for ident, entry in entries.items():
        assert (entry["source"], entry["file"]) == ("alias", str(aliases))
        assert lines[entry["line"] - 1].lstrip('"').startswith(ident)  # the line that names it
    assert entries["key_abcdef1234567890"] == {
        "table": "api_keys", "fields": ["api_key_id"], "id": "key_abcdef1234567890",
        "name": "mobile-app-production", "source": "alias", "file": str(aliases), "line": lines.index(
            'key_abcdef1234567890 = "mobile-app-production"') + 1}
    # [users] names OpenAI's user_id and Anthropic's account_id: one entry, both fields.
    assert entries["user-abc"]["fields"] == ["user_id", "account_id"]
    assert (body["has_more"], body["next_cursor"], body["next"]) == (False, None, None)


def test_after_a_reload_the_lines_are_the_new_files(proxy: InMemoryProxy, aliases: Path) -> None:
    aliases.write_text('# moved down\n\n[api_keys]\n\nkey_new = "new-one"\n')
    [reloading] = [service for service in proxy.service if isinstance(service, ReloadService)]
    reloading.on_sighup()
    proxy.flush()
    assert [(e["id"], e["line"]) for e in listed(proxy)["data"]] == [("key_new", 5)]


def test_a_directory_of_alias_files_names_the_file_of_each(make_proxy: MakeProxy, tmp_path: Path) -> None:
    directory = tmp_path / "aliases.d"
    directory.mkdir()
    (directory / "a.toml").write_text('[api_keys]\nkey_a = "A"\n')
    (directory / "b.json").write_text('{"projects": {\n  "proj_b": "B"\n}}\n')
    entries = by_id(listed(make_proxy("--aliases", str(directory))))
    assert (entries["key_a"]["file"], entries["key_a"]["line"]) == (str(directory / "a.toml"), 2)
    assert (entries["proj_b"]["file"], entries["proj_b"]["line"]) == (str(directory / "b.json"), 2)


def test_discovered_and_remembered_names_say_when(make_proxy: MakeProxy, fake: FakeOpenAI, aliases: Path,
                                                  tmp_path: Path) -> None:
    history, _ = History.open(str(tmp_path / "state"), REMEMBERED_AT)
    history.remember([Learned("api_key_id", "key_gone", "deleted-batch-job"),
                      Learned("api_key_id", "key_1234567890abcdef", "the alias wins over this")], REMEMBERED_AT)
    history.close()
    FakeAdmin(fake, sample_org())
    proxy = make_proxy("--aliases", str(aliases), environ={"OPENAI_ADMIN_KEY": TOKEN})
    proxy.advance(3600)  # before the service starts: the walk's time is not the clock's start
    proxy.start_service()
    proxy.flush()
    entries = by_id(listed(proxy))
    assert entries["key_gone"] == {"table": "api_keys", "fields": ["api_key_id"], "id": "key_gone",
                                   "name": "deleted-batch-job", "source": "history", "provider": "openai",
                                   "last_seen": iso(REMEMBERED_AT)}
    discovered = entries["key_Ws1kProdSrvA9"]
    assert (discovered["source"], discovered["provider"], discovered["name"]) == (
        "discovery", "openai", "Production server")
    assert discovered["learned_at"] == iso(3600)
    assert entries["key_1234567890abcdef"]["source"] == "alias"  # the alias file's name wins
    assert {e["source"] for e in entries.values()} == {"alias", "discovery", "history"}


def test_filters_by_field_and_by_text_case_aside(proxy: InMemoryProxy) -> None:
    assert [e["id"] for e in listed(proxy, "?field=project_id")["data"]] == ["proj_abc"]
    assert [e["id"] for e in listed(proxy, "?field=account_id")["data"]] == ["user-abc"]
    assert listed(proxy, "?field=workspace_id")["data"] == []
    assert [e["id"] for e in listed(proxy, "?q=PRODUCTION")["data"]] == ["key_1234567890abcdef",
                                                                        "key_abcdef1234567890"]
    assert [e["id"] for e in listed(proxy, "?q=1111")["data"]] == ["key_1111222233334444"]  # in the id
    assert [e["id"] for e in listed(proxy, "?q=alice&field=user_id")["data"]] == ["user-abc"]


def test_text_in_any_script_is_found(make_proxy: MakeProxy, tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.toml"
    aliases.write_text('[api_keys]\nkey_z = "Zürich Analytics"\nkey_s = "STRASSE"\n', encoding="utf-8")
    proxy = make_proxy("--aliases", str(aliases))
    assert [e["id"] for e in listed(proxy, "?q=z%C3%BCrich")["data"]] == ["key_z"]
    assert [e["id"] for e in listed(proxy, "?q=stra%C3%9Fe")["data"]] == ["key_s"]  # casefold: ß is ss


@pytest.fixture
def many(make_proxy: MakeProxy, tmp_path: Path) -> InMemoryProxy:
    aliases = tmp_path / "many.toml"
    aliases.write_text("[api_keys]\n" + "".join(f'key_{n:05d} = "service {n}"\n' for n in range(2500))
                       + '[projects]\nproj_x = "the project"\n')
    return make_proxy("--aliases", str(aliases))


def test_more_than_1000_names_come_a_page_at_a_time_each_once_in_order(many: InMemoryProxy) -> None:
    pages = [listed(many)]
    while pages[-1]["next"] is not None:
        pages.append(listed(many, pages[-1]["next"].removeprefix(NAMES)))
    assert [len(p["data"]) for p in pages] == [1000, 1000, 501]
    ids = [e["id"] for p in pages for e in p["data"]]
    assert ids == [f"key_{n:05d}" for n in range(2500)] + ["proj_x"]
    assert [p["has_more"] for p in pages] == [True, True, False]


def test_limit_cursor_and_filters_carry_over_to_the_next_page(many: InMemoryProxy) -> None:
    answer = many.get(NAMES + "?q=service%201&limit=5")
    first = answer.json()
    assert [e["name"] for e in first["data"]] == ["service 1", "service 10", "service 11", "service 12",
                                                  "service 13"]
    assert answer.header("Link") == f'<{first["next"]}>; rel="next"'
    second = listed(many, first["next"].removeprefix(NAMES))
    assert [e["name"] for e in second["data"]] == ["service 14", "service 15", "service 16", "service 17",
                                                   "service 18"]
    again = listed(many, f"?q=service%201&limit=5&cursor={first['next_cursor']}")
    assert again["data"] == second["data"]


@pytest.mark.parametrize("query, param", [
    ("?format=yaml", "format"), ("?field=api_key_name", "field"), ("?limit=0", "limit"), ("?limit=1001", "limit"),
    ("?limit=ten", "limit"), ("?cursor=not-one", "cursor"), ("?cursor=WyJub3BlIiwgIngiXQ", "cursor"),
    ("?q=" + "x" * 201, "q"),
])
def test_a_bad_parameter_is_a_400_naming_it(proxy: InMemoryProxy, query: str, param: str) -> None:
    answer = proxy.get(NAMES + query)
    assert answer.status == 400
    assert (answer.error()["code"], answer.error()["param"]) == ("invalid_parameter", param)


HOSTILE = {
    "key_quote": 'say "hi"', "key_backslash": "C:\\path\\", "key_tab": "a\tb", "key_unicode": "Zoë 日本 \u2028",
    'id "with" quotes': "fine", "key_hash": "# not a comment = x", "key_brackets": "[projects] {x}",
}


def test_the_toml_reads_back_as_an_alias_file_with_the_same_names(make_proxy: MakeProxy, tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.json"
    aliases.write_text(json.dumps({"api_keys": HOSTILE, "users": {"user-x": "X"}}))
    proxy = make_proxy("--aliases", str(aliases))
    answer = proxy.get(NAMES + "?format=toml")
    assert answer.status == 200
    assert answer.header("Content-Type") == "application/toml; charset=utf-8"
    back, _ = parse_alias_file(answer.body, "names.toml")
    assert back["api_keys"] == HOSTILE and back["users"] == {"user-x": "X"}
    assert b"# alias, " + str(aliases).encode() + b":1" in answer.body


def test_a_toml_page_says_where_the_next_is(many: InMemoryProxy) -> None:
    answer = many.get(NAMES + "?format=toml&limit=2")
    back, _ = parse_alias_file(answer.body, "names.toml")
    assert back["api_keys"] == {"key_00000": "service 0", "key_00001": "service 1"}
    link = answer.header("Link")
    assert link is not None and link.startswith("<" + NAMES + "?format=toml&limit=2&cursor=")
    assert link[1:link.index(">")].encode() in answer.body


def test_it_answers_as_metrics_does_and_is_counted(make_proxy: MakeProxy, aliases: Path, tmp_path: Path) -> None:
    token = tmp_path / "client-token"
    token.write_text("team-secret-4f9a\n")
    guarded = make_proxy("--aliases", str(aliases), "--client-token-file", str(token))
    assert guarded.get(NAMES, headers={}).status == 401
    assert guarded.get(NAMES, headers={"X-Orgproxy-Token": "team-secret-4f9a"}).status == 200
    outside = make_proxy("--aliases", str(aliases), "--allow-from", "10.0.0.0/8")
    request = b"GET /orgproxy/names HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert outside.raw(request, client="11.1.2.3").refused_at_accept
    assert outside.raw(request, client="10.1.2.3").written.startswith(b"HTTP/1.1 200 ")


class Scraping:
    """A proxy whose /metrics is read with the client token (for ``requests_counted``)."""

    def __init__(self, proxy: InMemoryProxy, token: str):
        self.proxy, self.token = proxy, token

    def get(self, target: str) -> Any:
        return self.proxy.get(target, headers={"X-Orgproxy-Token": self.token})


def test_the_route_is_counted_as_names_refused_or_answered(make_proxy: MakeProxy, aliases: Path,
                                                          tmp_path: Path) -> None:
    token = tmp_path / "client-token"
    token.write_text("team-secret-4f9a\n")
    proxy = make_proxy("--aliases", str(aliases), "--client-token-file", str(token))
    scraping = Scraping(proxy, "team-secret-4f9a")
    before = requests_counted(scraping)  # type: ignore[arg-type]
    assert scraping.get(NAMES).status == 200
    assert scraping.get(NAMES + "?format=yaml").status == 400
    assert proxy.get(NAMES, headers={}).status == 401
    assert counted_since(before, requests_counted(scraping)) == {  # type: ignore[arg-type]
        ("names", "GET", "200"): 1, ("names", "GET", "400"): 1, ("names", "GET", "401"): 1,
        ("metrics", "GET", "200"): 1}  # and the scrape before
