"""Ids and names from upstreams in the log: escaped in the text lines (an ESC, CR or NUL
never reaches a terminal or forges a line), and valid JSON in the JSON lines."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from orgproxy.ops import logs
from orgproxy.ops.logs import ClassicText
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.memory import InMemoryProxy

COSTS = "/v1/organization/costs"
HOSTILE_IDS = ["key_\x1b[2J\x1b[31mred", "key_\r\n2026-11-28T00:00:00+0000 [orgproxy#info] forged", "key_\x00nul",
               "key_\ud800", "key_\u202eright-to-left", "key_\x7f\x85"]


@pytest.fixture
def at_debug() -> Iterator[None]:
    logs.set_level("debug")
    yield
    logs.set_level("info")


def utf8_stream() -> io.TextIOWrapper:
    """What standard output is: text encoded as UTF-8, strictly."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def written(stream: io.TextIOWrapper) -> str:
    return stream.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]


def test_upstream_ids_are_escaped_in_the_text_log_and_valid_in_the_json_log(
        proxy: InMemoryProxy, fake: FakeOpenAI, logged: list[dict[str, Any]], at_debug: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake.on(COSTS, reply(body={"data": [{"api_key_id": i} for i in HOSTILE_IDS]}))
    assert proxy.get(COSTS + "?start_time=1").status == 200
    events = [event for event in logged if event.get("log_namespace") == "orgproxy"]
    about_ids = [event for event in events if "unknown_ids" in event or "id_field" in event]
    assert len(about_ids) == 1 + len(HOSTILE_IDS)  # the access line, and one debug line per id

    text = "".join(ClassicText()(event) or "" for event in events)
    for raw in ("\x1b", "\r", "\x00", "\ud800", "\u202e", "\x7f", "\x85"):
        assert raw not in text
    assert text.count("\n") == len(events), "one line per event: none forged"
    assert "key_\\x1b[2J\\x1b[31mred" in text and "key_\\ud800" in text and "key_\\u202eright-to-left" in text

    out = utf8_stream()
    monkeypatch.setattr("sys.__stdout__", out)
    observe = logs.json_lines()
    for event in about_ids:
        observe(event)
    records = [json.loads(line) for line in written(out).splitlines()]
    assert len(records) == len(about_ids)
    (access,) = [record for record in records if "unknown_ids" in record]
    assert len(access["unknown_ids"]) == len(HOSTILE_IDS)
    assert all(listed.isprintable() for listed in access["unknown_ids"])
    assert "key_\\x00nul" in access["unknown_ids"]


def test_the_json_log_writes_any_event_as_valid_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone surrogate has no UTF-8 form: the line holds its \\u escape instead."""
    out = utf8_stream()
    monkeypatch.setattr("sys.__stdout__", out)
    logs.json_lines()({"log_format": "{x}", "x": "bad\ud800\x1b", "log_namespace": "orgproxy",
                       "log_time": 1_780_000_000.0, "names": ["Zoë", "\udfff"]})
    (record,) = [json.loads(line) for line in written(out).splitlines()]
    assert (record["x"], record["names"], record["message"]) == ("bad\ud800\x1b", ["Zoë", "\udfff"], "bad\ud800\x1b")
