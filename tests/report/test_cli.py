"""``orgproxy-report`` as a command (its ``main``, in this process), against FakeUsage with
names beside the ids on a real socket: what it prints, the files it writes, and its
failures, each one line on stderr and exit 1. The same command against the real daemon:
tests/process/test_report_cli.py."""

from __future__ import annotations

import io
import platform
import re
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orgproxy.report.cli import main
from orgproxy.report.groups import GROUP_BY, describe
from orgproxy.report.progress import ProgressLine
from tests.conftest import ROOT
from tests.report.conftest import Ran, Run
from tests.support.answers import TOKEN
from tests.support.daemon import free_port
from tests.support.fake_usage import ALIASES, COSTS, UNKNOWN_KEYS, USAGE_NUMBERS, FakeUsage, day_of
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.usage_expected import (
    MONTH,
    PLAIN_NUMBER,
    assert_costs_table,
    assert_groups,
    assert_header,
    assert_one_error_line,
    cost_contributions,
    is_unknown,
    iso,
    name_costs,
    read_csv,
    usage_contributions,
)

NAMES = sorted(set(ALIASES.values()))
ALIASES_KEY = {name: key for key, name in ALIASES.items()}  # the keys of one name


def one_error_line(ran: Ran) -> str:
    return assert_one_error_line(ran.code, ran.out, ran.err)


# Costs and usage, as JSON.

def test_costs_json_totals_per_name_equal_the_fakes_sums(report: Run, upstream: FakeUpstream,
                                                         usage: FakeUsage) -> None:
    ran = report("costs", *MONTH, "--by", "api_key_name", "--format", "json", "--proxy", upstream.url)
    document = ran.json()
    assert ran.out.endswith("}\n") and not ran.out.endswith("\n\n")  # a line like any other
    assert_header(document, "costs", ["api_key_name"])
    totals = document["totals"]
    assert all(set(entry) == {"api_key_name", "api_key_id", "api_key_ids", "cost"} for entry in totals), totals
    assert_groups(totals, ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]), what="totals")
    # "checkout" is two keys, added up; the two unknown keys are kept apart, each with its id.
    assert {e["api_key_name"] for e in totals if not is_unknown(e["api_key_name"])} == set(NAMES)
    assert sorted(e["api_key_id"] for e in totals if is_unknown(e["api_key_name"])) == [
        "key_0badc0ffee000042", "key_9f8e7d6c5b4a3210"]
    checkout = next(e for e in totals if e["api_key_name"] == "checkout")
    assert (checkout["api_key_id"], checkout["api_key_ids"]) == (None, ["key_3f9a1c0d7e2b4a01", "key_8b2e6f4a1d9c3e02"])
    assert all(e["api_key_ids"] == [ALIASES_KEY[e["api_key_name"]]] for e in totals if e["api_key_name"] in (
        "mobile-app", "batch-jobs"))
    costs = [entry["cost"] for entry in totals]
    assert costs == sorted(costs, reverse=True), "totals are sorted by cost, descending"
    assert totals[0]["api_key_name"] == "checkout"


def test_costs_json_rows_per_day_equal_the_fakes_daily_sums(report: Run, upstream: FakeUpstream,
                                                            usage: FakeUsage) -> None:
    document = report("costs", *MONTH, "--by", "api_key_name", "--format", "json", "--proxy", upstream.url).json()
    assert_groups(document["rows"], ["date", "api_key_name"], ["cost"],
                  cost_contributions(usage, ["date", "api_key_name"]), zero_rows_allowed=True, what="rows")


def test_usage_completions_totals_per_name_and_model_equal_the_fakes_sums(report: Run, upstream: FakeUpstream,
                                                                          usage: FakeUsage) -> None:
    document = report("usage", "completions", *MONTH, "--by", "api_key_name,model", "--format", "json",
                      "--proxy", upstream.url).json()
    assert_header(document, "usage/completions", ["api_key_name", "model"])
    assert {frozenset(s.group_by) for s in usage.served} == {frozenset({"api_key_id", "model"})}
    totals = document["totals"]
    assert_groups(totals, ["api_key_name", "model"], USAGE_NUMBERS,
                  usage_contributions(usage, ["api_key_name", "model"]), what="totals")
    for entry in totals:
        assert all(type(entry[number]) is int for number in USAGE_NUMBERS), entry
    tokens = [entry["input_tokens"] + entry["output_tokens"] for entry in totals]
    assert tokens == sorted(tokens, reverse=True), "totals are sorted by input+output tokens, descending"
    assert_groups(document["rows"], ["date", "api_key_name", "model"], USAGE_NUMBERS,
                  usage_contributions(usage, ["date", "api_key_name", "model"]), zero_rows_allowed=True,
                  what="rows")


# CSV.

def test_costs_csv_has_one_row_per_day_and_group_with_plain_numbers_matching_the_fakes_daily_sums(
        report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    text = report("costs", *MONTH, "--by", "api_key_name,line_item", "--format", "csv",
                  "--proxy", upstream.url).ok()
    header, rows = read_csv(text)
    assert header == ["date", "api_key_name", "api_key_id", "line_item", "cost"]
    entries = []
    for row in rows:
        assert None not in row and all(v is not None for v in row.values()), f"ragged row {row}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date"]), row
        assert PLAIN_NUMBER.fullmatch(row["cost"]), f"not a plain number: {row['cost']!r}"
        assert set(row["api_key_id"].split()) <= {k for k in ALIASES if ALIASES[k] == row["api_key_name"]} or (
            row["api_key_name"] == "unknown" and row["api_key_id"] in UNKNOWN_KEYS), row
        entries.append({**row, "cost": float(row["cost"])})
    # Line items hold commas ("gpt-4o-2024-08-06, input"): quoted, they come back whole.
    assert any(", " in entry["line_item"] for entry in entries)
    assert_groups(entries, ["date", "api_key_name", "line_item"], ["cost"],
                  cost_contributions(usage, ["date", "api_key_name", "line_item"]), zero_rows_allowed=True,
                  what="csv")


def test_usage_csv_has_one_row_per_day_and_group_with_integer_tokens_matching_the_fakes_daily_sums(
        report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    text = report("usage", "completions", *MONTH, "--by", "api_key_name,model", "--format", "csv",
                  "--proxy", upstream.url).ok()
    header, rows = read_csv(text)
    assert header[:4] == ["date", "api_key_name", "api_key_id", "model"], header
    assert set(USAGE_NUMBERS) <= set(header[4:]), header
    entries = []
    for row in rows:
        assert None not in row and all(v is not None for v in row.values()), f"ragged row {row}"
        for number in USAGE_NUMBERS:
            assert re.fullmatch(r"\d+", row[number]), f"{number}: not a plain integer: {row[number]!r}"
        entries.append({**row, **{number: int(row[number]) for number in USAGE_NUMBERS}})
    assert_groups(entries, ["date", "api_key_name", "model"], USAGE_NUMBERS,
                  usage_contributions(usage, ["date", "api_key_name", "model"]), zero_rows_allowed=True,
                  what="csv")


# The table, the default.

def test_costs_table_has_a_line_per_name_and_a_total_line_in_dollars_and_cents(
        report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    assert_costs_table(report("costs", *MONTH, "--proxy", upstream.url).ok(), usage)


# The chart.

def test_chart_svg_parses_as_xml_and_names_the_top_names_and_other_as_text(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, tmp_path: Path) -> None:
    chart = tmp_path / "out.svg"
    printed = report("costs", *MONTH, "--by", "api_key_name", "--chart", str(chart), "--top", "3",
                     "--format", "csv", "--proxy", upstream.url).ok()
    assert read_csv(printed)[0] == ["date", "api_key_name", "api_key_id", "cost"], "the chart comes beside the output"
    root = ET.parse(chart).getroot()
    assert root.tag.endswith("svg"), root.tag
    text = " ".join(" ".join(element.itertext()) for element in root.iter())
    ranked = sorted(name_costs(usage).items(), key=lambda item: item[1], reverse=True)
    top = [name for name, _ in ranked[:3]]
    assert top == ["checkout", "mobile-app", "R&D notebooks"]
    for name in top:
        assert name in text, f"{name!r} is not text in the SVG"
    assert "other" in text
    for name, _ in ranked[3:]:
        assert name not in text, f"{name!r} is not among the top 3 but is in the chart"


# Where the key and the proxy come from.

def test_admin_key_file_is_used_without_the_environment_variable(report: Run, upstream: FakeUpstream,
                                                                 usage: FakeUsage, tmp_path: Path) -> None:
    key_file = tmp_path / "admin-key"
    key_file.write_text(TOKEN + "\n")
    key_file.chmod(0o600)
    ran = report("costs", *MONTH, "--format", "json", "--admin-key-file", str(key_file), "--proxy", upstream.url,
                 key=None)
    assert_groups(ran.json()["totals"], ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]),
                  what="totals")
    assert TOKEN not in ran.out + ran.err


@pytest.mark.parametrize("given", ["flag", "environment"])
def test_the_client_token_is_sent_as_x_orgproxy_token(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      given: str) -> None:
    token_file = tmp_path / "client-token"
    token_file.write_text("team-secret-for-reports\n")
    if given == "flag":
        ran = report("costs", *MONTH, "--client-token-file", str(token_file), "--proxy", upstream.url)
    else:
        monkeypatch.setenv("ORGPROXY_CLIENT_TOKEN_FILE", str(token_file))
        ran = report("costs", *MONTH, "--proxy", upstream.url)
    ran.ok()
    assert upstream.received and {r.header("X-Orgproxy-Token") for r in upstream.received} == {
        "team-secret-for-reports"}
    assert "team-secret-for-reports" not in ran.out + ran.err


def test_without_a_client_token_none_is_sent(report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    report("costs", *MONTH, "--proxy", upstream.url).ok()
    assert upstream.received and all(r.header("X-Orgproxy-Token") is None for r in upstream.received)


def test_an_unreadable_client_token_file_exits_1_with_one_line_naming_it(report: Run, upstream: FakeUpstream,
                                                                         tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    line = one_error_line(report("costs", *MONTH, "--client-token-file", str(missing), "--proxy", upstream.url))
    assert str(missing) in line
    assert upstream.received == []


def test_a_group_the_endpoint_does_not_accept_exits_1_listing_the_valid_ones_and_asks_nothing(
        report: Run, upstream: FakeUpstream) -> None:
    line = one_error_line(report("costs", *MONTH, "--by", "model", "--proxy", upstream.url))
    assert line == f"orgproxy-report: costs cannot be grouped by model; --by takes {describe('costs')}"
    assert upstream.received == []


@pytest.mark.parametrize(("command", "kinds"), [
    (["costs"], ["costs"]),
    (["usage", "completions"], [kind for kind in GROUP_BY if kind.startswith("usage/")]),
])
def test_help_lists_the_groups_each_endpoint_accepts_and_the_default(
        capsys: pytest.CaptureFixture[str], command: list[str], kinds: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--help"])
    assert stopped.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    for kind in kinds:
        assert describe(kind) in shown, kind


def test_version_is_orgproxys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out == f"orgproxy-report {version} (Python {platform.python_version()})\n"


def test_orgproxy_url_names_the_proxy_when_proxy_is_not_given(report: Run, upstream: FakeUpstream,
                                                              usage: FakeUsage,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGPROXY_URL", upstream.url)
    document = report("costs", *MONTH, "--format", "json").json()
    assert_groups(document["totals"], ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]),
                  what="totals")


def test_relative_days_count_back_from_today_utc(report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    today = datetime.now(UTC).date()
    document = report("costs", "--since", "3d", "--until", "1d", "--format", "json", "--proxy", upstream.url).json()
    assert (document["since"], document["until"]) == (iso(today - timedelta(days=3)), iso(today - timedelta(days=1)))
    assert min(day_of(s.start_time) for s in usage.served_for(COSTS)) == today - timedelta(days=3)


def test_until_defaults_to_today_utc(report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    today = datetime.now(UTC).date()
    document = report("costs", "--since", "2d", "--format", "json", "--proxy", upstream.url).json()
    assert (document["since"], document["until"]) == (iso(today - timedelta(days=2)), iso(today))


# A progress line on a terminal.

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_progress_line_of_days_pages_and_rows_is_drawn_on_stderr_and_wiped(
        upstream: FakeUpstream, install_usage: Callable[..., FakeUsage], monkeypatch: pytest.MonkeyPatch,
        report: Run) -> None:
    install_usage(since=date(2026, 3, 1), until=date(2026, 10, 1), page_size=31)
    months = ("--since", "2026-03-01", "--until", "2026-10-01")
    plain = report("costs", *months, "--proxy", upstream.url)
    upstream.received.clear()
    monkeypatch.setattr(ProgressLine, "INTERVAL", 0)  # every change drawn, for the test to read
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    on_terminal = report("costs", *months, "--proxy", upstream.url)
    assert on_terminal.ok() == plain.ok()
    drawn = terminal.getvalue()
    assert plain.err == "", "no line where nobody watches"
    states = [part.strip() for part in drawn.split("\r") if part.strip()]
    assert states[0] == "orgproxy-report: openai 0 of 214 days, 0 pages, 0 rows"
    pages = len([r for r in upstream.received if r.target.startswith(COSTS.encode())])
    assert states[-1].startswith(f"orgproxy-report: openai 214 of 214 days, {pages} pages, ") and pages >= 7
    days = [int(state.split()[2]) for state in states]
    assert days == sorted(days) and len(set(days)) > 3, "the days covered, as they grow"
    rows = [int(state.rsplit(", ", 1)[1].removesuffix(" rows").replace(",", "")) for state in states]
    assert rows == sorted(rows) and rows[-1] > 1000, "rows read so far, with thousands separators"
    assert drawn.endswith("\r") and drawn.rsplit("\r", 2)[-2].strip() == "", f"the line is left behind: {drawn!r}"


def test_quiet_draws_nothing_even_on_a_terminal_and_nothing_optional_is_needed(
        upstream: FakeUpstream, usage: FakeUsage, monkeypatch: pytest.MonkeyPatch, report: Run) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the line needs nothing beyond the standard library
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    drawn = report("costs", *MONTH, "--format", "json", "--proxy", upstream.url)
    assert_groups(drawn.json()["totals"], ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]),
                  what="totals")
    assert terminal.getvalue().startswith("\rorgproxy-report: ")
    terminal.truncate(0)
    for quiet in (["--quiet", "costs"], ["costs", "--quiet"]):
        report(*quiet, *MONTH, "--format", "json", "--proxy", upstream.url).ok()
        assert terminal.getvalue() == "", quiet


def test_the_line_is_drawn_at_most_ten_times_a_second() -> None:
    terminal = Terminal()
    now = [0.0]
    line = ProgressLine(terminal, clock=lambda: now[0])
    for _ in range(5):
        line.fetched(10)
    now[0] = 0.11
    line.fetched(10)
    assert [part for part in terminal.getvalue().split("\r") if part.strip()] == [
        "orgproxy-report: 1 page, 10 rows", "orgproxy-report: 6 pages, 60 rows"]
    line.close()
    assert terminal.getvalue().endswith("\r" + " " * len("orgproxy-report: 6 pages, 60 rows") + "\r")


# Failures: one line on stderr, exit 1.

def test_a_bad_date_exits_1_with_one_line_and_asks_nothing(report: Run, upstream: FakeUpstream) -> None:
    line = one_error_line(report("costs", "--since", "yesterdayish", *MONTH[2:], "--proxy", upstream.url))
    assert "'yesterdayish'" in line
    assert upstream.received == []


def test_until_not_after_since_exits_1_with_one_line_and_asks_nothing(report: Run, upstream: FakeUpstream) -> None:
    line = one_error_line(report("costs", "--since", "2026-10-02", "--until", "2026-10-02", "--proxy", upstream.url))
    assert line == "orgproxy-report: --until (2026-10-02) must be after --since (2026-10-02)"
    assert upstream.received == []


def test_no_admin_key_exits_1_with_one_line_and_asks_nothing(report: Run, upstream: FakeUpstream) -> None:
    line = one_error_line(report("costs", *MONTH, "--proxy", upstream.url, key=None))
    assert line == "orgproxy-report: no admin key: set OPENAI_ADMIN_KEY or pass --admin-key-file"
    assert upstream.received == []


def test_an_unreadable_admin_key_file_exits_1_with_one_line_naming_it(report: Run, upstream: FakeUpstream,
                                                                      tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    line = one_error_line(report("costs", *MONTH, "--admin-key-file", str(missing), "--proxy", upstream.url,
                                 key=None))
    assert line == f"orgproxy-report: {missing}: No such file or directory"
    assert upstream.received == []


def test_openai_answering_401_exits_1_with_one_line_mentioning_401(report: Run, upstream: FakeUpstream,
                                                                   usage: FakeUsage) -> None:
    wrong = "sk-admin-WRONG-key-0000"
    ran = report("costs", *MONTH, "--proxy", upstream.url, key=wrong)
    line = one_error_line(ran)
    assert f"{COSTS}: 401: Incorrect API key provided" in line, line
    assert wrong not in ran.out + ran.err, "the admin key was printed"
    assert usage.served == [], "nothing is served to a wrong key"


@pytest.mark.parametrize("value", [b"1e999999", b'"abc"', b"[1]"])
def test_an_amount_that_is_not_a_decimal_number_of_sane_size_exits_1_naming_it_rather_than_counting_nothing(
        report: Run, upstream: FakeUpstream, value: bytes) -> None:
    day = 1790812800
    body = (b'{"has_more": false, "data": [{"start_time": %d, "end_time": %d, "results": ['
            b'{"amount": {"value": %s, "currency": "usd"}, "api_key_id": "key_a", "api_key_name": "a"},'
            b'{"amount": {"value": 0.5, "currency": "usd"}, "api_key_id": "key_a", "api_key_name": "a"}]}]}'
            % (day, day + 86400, value))
    upstream.on(COSTS, reply(body=body))
    for output in ("table", "csv", "json"):
        line = one_error_line(report("costs", "--since", "2026-10-01", "--until", "2026-10-02", "--format", output,
                                     "--proxy", upstream.url))
        assert "amount.value" in line and "not a decimal number" in line, line


def test_proxy_not_running_exits_1_with_one_line_on_stderr(report: Run) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert one_error_line(report("costs", *MONTH, "--proxy", url)).startswith(
        f"orgproxy-report: cannot reach orgproxy at {url}")


def test_a_proxy_that_hangs_up_without_answering_exits_1_with_one_line(report: Run, hangs_up: str) -> None:
    assert "hung up" in one_error_line(report("costs", *MONTH, "--proxy", hangs_up))



# Where options go, and what --help says.

@pytest.mark.parametrize("order", [
    ["--provider", "anthropic", "costs"], ["costs", "--provider", "anthropic"],
    ["--provider", "openai", "costs", "--provider", "anthropic"],  # the later one wins
])
def test_provider_is_taken_before_or_after_the_command(report: Run, upstream: FakeUpstream, analytics: Any,
                                                       order: list[str]) -> None:
    document = report(*order, *MONTH, "--format", "json", "--proxy", upstream.url).json()
    assert document["by"] == ["api_key_name"] and document["totals"]
    assert {r.target.split(b"?")[0] for r in upstream.received} == {b"/v1/organizations/analytics/cost"}


def test_options_before_the_command_are_kept_when_the_command_has_its_own(report: Run, upstream: FakeUpstream,
                                                                          analytics: Any) -> None:
    report("--provider", "anthropic", "--quiet", "usage", *MONTH, "--proxy", upstream.url).ok()
    assert {r.target.split(b"?")[0] for r in upstream.received} == {b"/v1/organizations/analytics/usage"}


@pytest.mark.parametrize("command", [[], ["costs"], ["usage"]])
def test_help_is_plain_text(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    assert "``" not in shown and "::" not in shown and shown.startswith("usage: orgproxy-report")
    assert "--provider" in shown and "--quiet" in shown
    if not command:
        assert "examples:\n  orgproxy-report costs --since" in shown


# Exact amounts.

def test_amounts_are_summed_and_written_exactly(report: Run, upstream: FakeUpstream) -> None:
    day = 1790812800  # 2026-10-01
    results = [{"amount": {"value": value, "currency": "usd"}, "api_key_id": "key_a", "api_key_name": "a"}
               for value in (0.1, 0.2, 10.2374875146, 1e-07)]
    upstream.on(COSTS, reply(body={"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": day, "end_time": day + 86400, "results": results}]}))
    week = ("--since", "2026-10-01", "--until", "2026-10-02")
    text = report("costs", *week, "--format", "csv", "--proxy", upstream.url).ok()
    assert text.splitlines()[1] == "2026-10-01,a,key_a,10.5374876146"  # not 10.537487614600002
    printed = report("costs", *week, "--format", "json", "--proxy", upstream.url).ok()
    assert '"cost": 10.5374876146\n' in printed
    assert report("costs", *week, "--proxy", upstream.url).ok().splitlines()[-1].endswith("$10.54")


def test_a_wide_table_fits_120_columns_unless_wide(report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    narrow = report("usage", "completions", *MONTH, "--by", "api_key_name,model", "--proxy", upstream.url).ok()
    wide = report("usage", "completions", *MONTH, "--by", "api_key_name,model", "--wide", "--proxy",
                  upstream.url).ok()
    assert max(map(len, narrow.splitlines())) <= 120 < max(map(len, wide.splitlines()))
    assert all(number in wide.splitlines()[2] for number in USAGE_NUMBERS)
    assert "--wide shows every column" in narrow and "--wide" not in wide
