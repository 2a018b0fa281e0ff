"""``orgproxy-report --provider anthropic --legacy``: Anthropic's legacy messages usage and cost
reports, asked for in Anthropic's spelling (RFC 3339 days, ``group_by[]``, the key as
``x-api-key`` with ``anthropic-version``), every ``next_page`` walked, and the same outputs as
OpenAI's. (Its analytics API, the default: test_anthropic_analytics_report.py.)

Against the fake Anthropic's ledgers on a real socket, behind a stand-in for orgproxy that
only puts names beside the ids (as tests/report/conftest.py's does for OpenAI): rows of two
keys that share a name arrive apart, and the report adds them up itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest

from orgproxy.report.apis import AnthropicLegacyReports
from tests.report.conftest import Run
from tests.support.fake_anthropic import COSTS, MESSAGES, BadRequest, FakeAnthropic, anthropic_error
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply

KEY = "sk-ant-admin01-report-key-never-logged"
AUGUST = ("--since", "2026-08-01", "--until", "2026-08-04")
NULL_NAMES = {"api_key_id": "Console", "workspace_id": "Default"}
PAGE = 2  # buckets a page, whatever the limit: the report must walk next_page


class NamesBesideAnthropicIds:
    """orgproxy's contract, as far as the report needs it, in front of the fake's ledgers."""

    def __init__(self) -> None:
        self.fake = FakeAnthropic()
        org = self.fake.org
        self.names = {**{k["id"]: k["name"] for k in org.api_keys}, **{w["id"]: w["name"] for w in org.workspaces}}
        self.pages = 0

    def install(self, upstream: FakeUpstream) -> NamesBesideAnthropicIds:
        upstream.on(MESSAGES, self.answer)
        upstream.on(COSTS, self.answer)
        return self

    def answer(self, handler: Handler, received: Received) -> None:
        path, _, query = received.target.decode("latin-1").partition("?")
        pairs = [(k, v.replace("_name", "_id") if k == "group_by[]" else str(PAGE) if k == "limit" else v)
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        grouped = {v for k, v in pairs if k == "group_by[]"}
        try:
            page = (self.fake.messages_report if path == MESSAGES else self.fake.cost_report)(pairs)
        except BadRequest as e:
            handler.send_reply(Reply(400, body=json.dumps(anthropic_error(400, str(e))).encode()))
            return
        for bucket in page["data"]:
            for row in bucket["results"]:
                for field in ("api_key_id", "workspace_id"):
                    if field in row:
                        value = row[field]
                        row[field.replace("_id", "_name")] = (
                            self.names.get(value, "unknown") if value is not None
                            else NULL_NAMES[field] if field in grouped else None)
        self.pages += 1
        handler.send_reply(Reply(body=json.dumps(page).encode()))


@pytest.fixture
def anthropic(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[NamesBesideAnthropicIds]:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", KEY)
    yield NamesBesideAnthropicIds().install(upstream)


def tokens(entry: dict[str, Any]) -> int:
    cache = entry.get("cache_creation", {})
    return (entry.get("uncached_input_tokens", 0) + entry.get("cache_read_input_tokens", 0)
            + sum(cache.values()) + entry.get("output_tokens", 0))


def test_messages_usage_per_key_name_adds_up_rotated_keys_and_names_the_console(
        report: Run, upstream: FakeUpstream, anthropic: NamesBesideAnthropicIds) -> None:
    document = report("--provider", "anthropic", "--legacy", "usage", "messages", *AUGUST, "--format", "json",
                      "--proxy", upstream.url, key=None).json()
    assert document["kind"] == "usage/messages" and document["by"] == ["api_key_name"]
    expected: dict[str, int] = {}
    for entry in anthropic.fake.org.usage:
        name = anthropic.names[entry["api_key_id"]] if entry["api_key_id"] else "Console"
        expected[name] = expected.get(name, 0) + tokens(entry)
    totals = {t["api_key_name"]: t for t in document["totals"]}
    assert {name: sum(v for k, v in t.items() if type(v) is int and k != "server_tool_use.web_search_requests")
            for name, t in totals.items()} == expected
    # Beside each name, the ids it stood for: two keys for the rotated one, none for the Console.
    assert totals["billing-batch-prod"]["api_key_id"] is None and len(totals["billing-batch-prod"]["api_key_ids"]) == 2
    assert (totals["Console"]["api_key_id"], totals["Console"]["api_key_ids"]) == (None, [])
    assert totals["billing-batch-prod"]["uncached_input_tokens"] == 15800 + 100  # two keys, one name
    assert totals["legacy-default-workspace-key"]["cache_creation.ephemeral_1h_input_tokens"] == 2000
    assert [t["api_key_name"] for t in document["totals"]][0] == "legacy-default-workspace-key"  # most tokens first
    # Asked as Anthropic's API wants it, one window, every page walked.
    asked = [r for r in upstream.received if r.target.startswith(MESSAGES.encode())]
    assert len(asked) == 2 == anthropic.pages
    first = parse_qsl(asked[0].target.decode().partition("?")[2])
    # The first call is a day; the next as many as keep a call small (all the rest, here).
    assert first == [("starting_at", "2026-08-01T00:00:00Z"), ("ending_at", "2026-08-02T00:00:00Z"),
                     ("bucket_width", "1d"), ("limit", "1"), ("group_by[]", "api_key_name")]
    second = parse_qsl(asked[1].target.decode().partition("?")[2])
    assert second[:4] == [("starting_at", "2026-08-02T00:00:00Z"), ("ending_at", "2026-08-04T00:00:00Z"),
                          ("bucket_width", "1d"), ("limit", "2")]
    assert not any(dict(parse_qsl(a.target.decode().partition("?")[2])).get("page") for a in asked)
    for received in asked:
        assert received.header("x-api-key") == KEY and received.header("anthropic-version") == "2023-06-01"
        assert received.header("Authorization") is None


def test_costs_default_to_workspace_names_in_dollars_from_cents(
        report: Run, upstream: FakeUpstream, anthropic: NamesBesideAnthropicIds) -> None:
    document = report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--format", "json",
                      "--proxy", upstream.url, key=None).json()
    assert document["by"] == ["workspace_name"]
    totals = {t["workspace_name"]: t["cost"] for t in document["totals"]}
    assert totals == {"Billing": 15.204517, "Default": 0.875, "Platform": 1.2378912}, "exact: cents / 100"
    assert '"cost": 15.204517' in report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--format", "json",
                                          "--proxy", upstream.url, key=None).ok()
    table = report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--proxy", upstream.url, key=None).ok()
    assert "Billing" in table and "$15.20" in table and "$17.32" in table.splitlines()[-1]


def test_a_key_file_and_anthropic_s_errors_read_as_one_line(
        report: Run, upstream: FakeUpstream, anthropic: NamesBesideAnthropicIds, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    missing = report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--proxy", upstream.url, key=None)
    assert missing.code == 1 and "ANTHROPIC_ADMIN_KEY" in missing.err
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    refused = json.dumps(anthropic_error(401, "invalid x-api-key")).encode()
    upstream.on(COSTS, lambda handler, received: handler.send_reply(Reply(401, body=refused)))
    failed = report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--admin-key-file", str(key_file),
                    "--proxy", upstream.url, key=None)
    assert failed.code == 1 and failed.err.strip() == f"orgproxy-report: {COSTS}: 401: invalid x-api-key"
    assert upstream.last().header("x-api-key") == KEY
    other = report("--provider", "anthropic", "--legacy", "usage", "claude_code", *AUGUST, "--proxy", upstream.url,
                   key=None)
    assert other.code == 1 and "messages" in other.err


def test_the_anthropic_window_query_and_day_of_a_bucket() -> None:
    from datetime import date

    api = AnthropicLegacyReports()
    assert api.path("costs") == COSTS and api.path("usage/messages") == MESSAGES
    assert api.max_days("costs") == api.max_days("usage/messages") == 31
    bucket = {"starting_at": "2026-08-03T00:00:00Z", "results": [{"amount": "123.78912", "workspace_id": None}]}
    assert list(api.entries("costs", bucket)) == [
        ("2026-08-03", bucket["results"][0], {"cost": Decimal("1.2378912")})], "cents to dollars, exactly"
    assert api.window_query(date(2026, 8, 1), date(2026, 9, 1), ["workspace_name", "description"])[-2:] == [
        ("group_by[]", "workspace_name"), ("group_by[]", "description")]


def test_by_is_checked_against_anthropic_s_group_by_values_before_anything_is_asked(
        report: Run, upstream: FakeUpstream, anthropic: NamesBesideAnthropicIds) -> None:
    for kind, wrong in ((("costs",), "api_key_name"), (("usage", "messages"), "project_name")):
        refused = report("--provider", "anthropic", "--legacy", *kind, *AUGUST, "--by", wrong, "--proxy", upstream.url,
                         key=None)
        assert refused.code == 1 and refused.out == ""
        assert f"cannot be grouped by {wrong}" in refused.err and "(default: " in refused.err
    assert upstream.received == []
    document = report("--provider", "anthropic", "--legacy", "usage", "messages", *AUGUST, "--by",
                      "workspace_name,model", "--format", "json", "--proxy", upstream.url, key=None).json()
    assert document["by"] == ["workspace_name", "model"]
    asked = parse_qsl(upstream.received[0].target.decode().partition("?")[2])
    assert [v for k, v in asked if k == "group_by[]"] == ["workspace_name", "model"]


def test_the_focus_export_is_refused_from_the_legacy_reports_in_one_line(
        report: Run, upstream: FakeUpstream, anthropic: NamesBesideAnthropicIds) -> None:
    refused = report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--format", "focus",
                     "--billing-account-id", "org-x", "--billing-account-name", "X", "--proxy", upstream.url, key=None)
    assert refused.code == 1 and refused.out == "" and upstream.received == []
    assert refused.err == ("orgproxy-report: --format focus reads Anthropic's analytics API (costs per key),"
                           " not --legacy\n")


def test_the_client_token_goes_beside_anthropic_s_key_and_output_goes_to_its_file(
        report: Run, upstream: FakeUpstream, anthropic: NamesBesideAnthropicIds, tmp_path: Any) -> None:
    token_file = tmp_path / "client-token"
    token_file.write_text("team-token-5b2c\n")
    written = tmp_path / "costs.csv"
    ran = report("--provider", "anthropic", "--legacy", "costs", *AUGUST, "--format", "csv", "--client-token-file",
                 str(token_file), "--output", str(written), "--proxy", upstream.url, key=None)
    assert ran.ok() == ""
    assert written.read_text().splitlines()[0] == "date,workspace_name,workspace_id,cost"
    for received in upstream.received:
        assert received.header("X-Orgproxy-Token") == "team-token-5b2c" and received.header("x-api-key") == KEY
