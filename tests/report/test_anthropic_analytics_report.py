"""``orgproxy-report --provider anthropic`` (and ``all``): Anthropic's costs and usage per key
from its Usage and Cost Analytics API, through a stand-in for orgproxy's naming in front of
the pure fake of that API on a real socket (tests/support/analytics_month.py): the query as
the API wants it, every page walked, exact dollars from cents, the id columns, and one table
for both vendors with a provider column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

from tests.report.conftest import ANTHROPIC_KEY, Run
from tests.support.analytics_month import (
    MONTH,
    NAMES,
    UNKNOWN_KEY,
    AnalyticsNamesBesideIds,
    cost_cents,
    usage_sums,
)
from tests.support.answers import TOKEN
from tests.support.fake_analytics import BETA, COST, USAGE
from tests.support.fake_usage import COSTS, FakeUsage
from tests.support.tcp_upstream import FakeUpstream
from tests.support.usage_expected import MONTH as OCTOBER
from tests.support.usage_expected import assert_one_error_line, read_csv

ANTHROPIC = ("--provider", "anthropic")


def dollars(cents: Decimal) -> Decimal:
    return cents / 100


def test_costs_per_key_name_come_from_the_analytics_cost_endpoint_in_exact_dollars(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    analytics.page_size = 100  # the month's rows on several pages
    document = report("costs", *ANTHROPIC, *OCTOBER, "--format", "json", "--proxy", upstream.url, key=None).json(
        exact=True)
    assert document["kind"] == "costs" and document["by"] == ["api_key_name"]
    totals = {t["api_key_name"]: t for t in document["totals"]}
    want = {name: dollars(cents) for (name,), cents in cost_cents(("api_key_name",)).items()}
    assert {name: t["cost"] for name, t in totals.items()} == want  # one unknown key: its own line
    # Every digit: cents with four decimals are dollars with six, summed with none lost.
    assert all(isinstance(t["cost"], Decimal) for t in document["totals"])
    assert any(t["cost"].as_tuple().exponent <= -5 for t in document["totals"])
    # The two keys of one name are one line, with both ids; the unknown key keeps its id.
    assert totals["billing-batch"]["api_key_id"] is None and sorted(totals["billing-batch"]["api_key_ids"]) == sorted(
        key for key, name in NAMES.items() if name == "billing-batch")
    assert (totals["unknown"]["api_key_id"], totals["Console"]["api_key_ids"]) == (UNKNOWN_KEY, [])
    # Asked as the API wants it: one 31-day window, daily buckets, by the key's name, beta header.
    asked = [(pairs, headers) for path, pairs, headers in analytics.asked if path == COST]
    assert len(asked) >= 2 and analytics.pages(USAGE) == 0
    received = [r for r in upstream.received if r.target.startswith(COST.encode())]
    sent = parse_qsl(received[0].target.decode().partition("?")[2])
    assert sent == [("starting_at", "2026-10-01T00:00:00Z"), ("ending_at", "2026-11-01T00:00:00Z"),
                    ("time_bucket_width", "1d"), ("group_by[]", "api_key_name")]
    for _, headers in asked:
        assert (headers["anthropic-beta"], headers["x-api-key"], headers["anthropic-version"]) == (
            BETA, ANTHROPIC_KEY, "2023-06-01")
    # Each next page asked with the cursor the last one gave, the same query otherwise.
    assert all(dict(parse_qsl(r.target.decode().partition("?")[2])).get("page") for r in received[1:])
    assert all(parse_qsl(r.target.decode().partition("?")[2])[:4] == sent for r in received[1:])
    assert not any(r.target.startswith(b"/v1/organizations/cost_report") for r in upstream.received)


def test_usage_per_key_name_and_model_comes_from_the_analytics_usage_endpoint(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    document = report("usage", *ANTHROPIC, *OCTOBER, "--by", "api_key_name,model", "--format", "json",
                      "--proxy", upstream.url, key=None).json()
    assert document["kind"] == "usage" and analytics.pages(USAGE) >= 1 and analytics.pages(COST) == 0
    got = {(t["api_key_name"], t["model"]): t for t in document["totals"]}
    for measure, field in (("uncached_input_tokens", "uncached_input_tokens"), ("output_tokens", "output_tokens"),
                           ("cache_creation.ephemeral_1h_input_tokens", "ephemeral_1h_input_tokens"),
                           ("requests", "requests")):
        want = usage_sums(("api_key_name", "model"), field)
        assert {group: t[measure] for group, t in got.items()} == want, measure
    assert all(type(t["output_tokens"]) is int for t in document["totals"])


def test_csv_has_the_id_column_beside_the_name_and_exact_amounts(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    text = report("costs", *ANTHROPIC, *OCTOBER, "--by", "api_key_name,workspace_name", "--format", "csv",
                  "--proxy", upstream.url, key=None).ok()
    header, rows = read_csv(text)
    assert header == ["date", "api_key_name", "api_key_id", "workspace_name", "workspace_id", "cost"]
    want = cost_cents(("date", "api_key_name", "workspace_name"))
    got: dict[tuple[object, ...], Decimal] = {}
    for row in rows:
        got[(row["date"], row["api_key_name"], row["workspace_name"])] = Decimal(row["cost"]) * 100
        if row["api_key_name"] == "Console":
            assert row["api_key_id"] == ""
        elif row["api_key_name"] == "billing-batch":
            assert set(row["api_key_id"].split()) <= {k for k, n in NAMES.items() if n == "billing-batch"}
        else:
            assert NAMES.get(row["api_key_id"], "unknown") == row["api_key_name"], row
        assert row["workspace_id"] == "" if row["workspace_name"] == "Default" else NAMES[row["workspace_id"]] == \
            row["workspace_name"]
        assert "e" not in row["cost"].lower(), row["cost"]
    assert got == want
    # On days both rotated keys ran, the row lists both.
    assert any(len(row["api_key_id"].split()) == 2 for row in rows if row["api_key_name"] == "billing-batch")


def test_all_providers_are_one_table_with_a_provider_column(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds, usage: FakeUsage) -> None:
    table = report("costs", "--provider", "all", *OCTOBER, "--proxy", upstream.url).ok()
    lines = table.splitlines()
    assert lines[0] == "costs from 2026-10-01 to 2026-11-01 (exclusive), by provider, api_key_name"
    assert lines[2].split() == ["provider", "api_key_name", "cost"]
    body = lines[4:-2]
    assert {line.split()[0] for line in body} == {"openai", "anthropic"}
    assert any(line.split()[:2] == ["anthropic", "billing-batch"] for line in body)
    assert any(line.split()[:2] == ["openai", "checkout"] for line in body)
    openai_dollars = sum(Decimal(repr(row.value)) for row in usage.costs_rows)
    anthropic_dollars = sum(Decimal(entry.amount) for entry in MONTH.costs) / 100
    assert lines[-1].split() == ["TOTAL", f"${openai_dollars + anthropic_dollars:,.2f}"]
    document = report("costs", "--provider", "all", *OCTOBER, "--format", "json", "--proxy", upstream.url).json(
        exact=True)
    assert document["by"] == ["provider", "api_key_name"]
    assert sum(t["cost"] for t in document["totals"] if t["provider"] == "anthropic") == anthropic_dollars
    # FakeUsage adds up its own float rows into what it serves: the digits it sent, to the cent.
    openai = sum(t["cost"] for t in document["totals"] if t["provider"] == "openai")
    assert openai.quantize(Decimal("0.000001")) == openai_dollars.quantize(Decimal("0.000001"))
    assert {r.target.split(b"?")[0] for r in upstream.received} >= {COSTS.encode(), COST.encode()}


def test_the_legacy_reports_are_asked_only_with_legacy(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    refused = report("costs", *ANTHROPIC, "--legacy", *OCTOBER, "--by", "api_key_name", "--proxy", upstream.url,
                     key=None)
    assert "Anthropic's legacy costs cannot be grouped by api_key_name" in assert_one_error_line(
        refused.code, refused.out, refused.err)
    assert upstream.received == []


def test_a_range_before_the_analytics_api_begins_is_refused_before_anything_is_asked(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    ran = report("costs", *ANTHROPIC, "--since", "2025-12-01", "--until", "2026-01-10", "--proxy", upstream.url,
                 key=None)
    line = assert_one_error_line(ran.code, ran.out, ran.err)
    assert "nothing before 2026-01-01" in line and "--legacy" in line
    assert upstream.received == []


def test_a_kind_of_usage_is_refused_for_the_analytics_api(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    ran = report("usage", "messages", *ANTHROPIC, *OCTOBER, "--proxy", upstream.url, key=None)
    assert "--legacy usage messages" in assert_one_error_line(ran.code, ran.out, ran.err)
    assert upstream.received == []


def test_by_is_checked_against_the_analytics_dimensions(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    ran = report("usage", *ANTHROPIC, *OCTOBER, "--by", "api_key_name,cost_type", "--proxy", upstream.url, key=None)
    assert "Anthropic's usage cannot be grouped by cost_type" in assert_one_error_line(ran.code, ran.out, ran.err)
    document = report("costs", *ANTHROPIC, *OCTOBER, "--by", "workspace_name,token_type", "--format", "json",
                      "--proxy", upstream.url, key=None).json(exact=True)
    got = {(t["workspace_name"], t["token_type"]): t["cost"] for t in document["totals"]}
    assert got == {group: dollars(c) for group, c in cost_cents(("workspace_name", "token_type")).items()}
    asked = [v for k, v in parse_qsl(upstream.received[-1].target.decode().partition("?")[2]) if k == "group_by[]"]
    assert asked == ["workspace_name", "token_type"]


def test_each_provider_s_admin_key_goes_to_that_provider_alone(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds, usage: FakeUsage,
        tmp_path: Path) -> None:
    (tmp_path / "openai").write_text(TOKEN + "\n")
    (tmp_path / "anthropic").write_text("sk-ant-admin01-from-a-file\n")
    keys = f"openai={tmp_path / 'openai'},anthropic={tmp_path / 'anthropic'}"
    report("costs", "--provider", "all", *OCTOBER, "--admin-key-file", keys, "--proxy", upstream.url,
           key=None).ok()
    for received in upstream.received:
        if received.target.startswith(COSTS.encode()):
            assert (received.header("Authorization"), received.header("x-api-key")) == (f"Bearer {TOKEN}", None)
        else:
            assert (received.header("x-api-key"), received.header("Authorization")) == (
                "sk-ant-admin01-from-a-file", None)
    one_file = report("costs", "--provider", "all", *OCTOBER, "--admin-key-file", str(tmp_path / "openai"),
                      "--proxy", upstream.url)
    assert "with --provider all, give openai=...,anthropic=..." in assert_one_error_line(
        one_file.code, one_file.out, one_file.err)


def test_legacy_is_refused_for_openai_alone(report: Run, upstream: FakeUpstream) -> None:
    ran = report("costs", "--legacy", *OCTOBER, "--proxy", upstream.url)
    assert "--legacy is for Anthropic's reports" in assert_one_error_line(ran.code, ran.out, ran.err)
    assert upstream.received == []
