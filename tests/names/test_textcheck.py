"""Names learned or remembered are made text as they enter (names/textcheck.py): each
control character or lone surrogate replaced by U+FFFD, the id kept, a warning once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from orgproxy.names.history import History, Learned
from orgproxy.names.textcheck import Told, as_text
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.memory import InMemoryProxy

COSTS = "/v1/organization/costs"


def warnings(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in logged if event.get("problem") == "not_text"]


def test_every_text_of_a_record_is_made_text_and_the_id_kept(logged: list[dict[str, Any]]) -> None:
    record = Learned("api_key_id", "key_\x1bid", "a\x00b\tc", redacted_value="sk-\ud800", owner_name="Ann\u0085",
                     email="ok@example.com", provider="openai")
    (made,) = as_text([record], "OpenAI discovery")
    assert made == Learned("api_key_id", "key_\x1bid", "a\ufffdb\tc", redacted_value="sk-\ufffd",
                           owner_name="Ann\ufffd", email="ok@example.com", provider="openai")
    (warned,) = warnings(logged)
    assert (warned["source"], warned["id_field"], warned["attributes"]) == (
        "OpenAI discovery", "api_key_id", ["name", "redacted_value", "owner_name"])
    assert warned["id"] == "key_\\x1bid", "the id is written escaped"


def test_text_passes_as_it_is_without_a_word(logged: list[dict[str, Any]]) -> None:
    records = [Learned("project_id", "proj_a", "Zoë's 日本 project\t🚀"), Learned("user_id", "user-b", "Bob")]
    assert as_text(records, "the history") == records
    assert warnings(logged) == []


def test_each_record_is_warned_about_once_by_a_source_that_checks_again(logged: list[dict[str, Any]]) -> None:
    told: set[Told] = set()
    bad = Learned("project_id", "proj_a", "bad\rname")
    for _ in range(3):
        assert as_text([bad], "OpenAI discovery", told)[0].name == "bad\ufffdname"
    assert len(warnings(logged)) == 1


def test_an_id_with_a_lone_surrogate_is_left_out_and_said_so(logged: list[dict[str, Any]]) -> None:
    records = [Learned("api_key_id", "key_\ud800", "k"), Learned("api_key_id", "key_b", "b")]
    assert as_text(records, "OpenAI discovery") == records[1:]
    (warned,) = warnings(logged)
    assert (warned["id"], warned["attributes"]) == ("key_\\ud800", ["id"])


def test_a_name_the_history_remembers_is_made_text_when_it_is_read(
        make_proxy: Callable[..., InMemoryProxy], fake: FakeOpenAI, tmp_path: Path,
        logged: list[dict[str, Any]]) -> None:
    """A store written by an older orgproxy, or by hand, may hold control characters."""
    history, _ = History.open(str(tmp_path / "state"), 0.0)
    history.remember([Learned("api_key_id", "key_old", "old\x1b]0;owned\x07key")], 0.0)
    history.close()
    fake.on(COSTS, reply(body={"data": [{"api_key_id": "key_old"}]}))
    proxy = make_proxy()
    assert proxy.get(COSTS).json()["data"][0]["api_key_name"] == "old\ufffd]0;owned\ufffdkey"
    (warned,) = warnings(logged)
    assert (warned["source"], warned["id"]) == ("the history", "key_old")
