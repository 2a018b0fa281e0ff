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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orgproxy.report.cli import main
from orgproxy.report.groups import GROUP_BY, describe
from tests.conftest import ROOT
from tests.report.conftest import Ran, Run
from tests.support.answers import TOKEN
from tests.support.daemon import free_port
from tests.support.fake_usage import ALIASES, COSTS, USAGE_NUMBERS, FakeUsage, day_of
from tests.support.tcp_upstream import FakeUpstream
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
    assert all(set(entry) == {"api_key_name", "cost"} for entry in totals), totals
    assert_groups(totals, ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]), what="totals")
    # "checkout" is two keys, added up; the two unknown keys are kept apart by their ids.
    assert {e["api_key_name"] for e in totals if not is_unknown(e["api_key_name"])} == set(NAMES)
    assert sorted(e["api_key_name"] for e in totals if is_unknown(e["api_key_name"])) == [
        "unknown (key_0badc0ffee000042)", "unknown (key_9f8e7d6c5b4a3210)"]
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
    assert header == ["date", "api_key_name", "line_item", "cost"]
    entries = []
    for row in rows:
        assert None not in row and all(v is not None for v in row.values()), f"ragged row {row}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date"]), row
        assert PLAIN_NUMBER.fullmatch(row["cost"]), f"not a plain number: {row['cost']!r}"
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
    assert header[:3] == ["date", "api_key_name", "model"], header
    assert set(USAGE_NUMBERS) <= set(header[3:]), header
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
    assert read_csv(printed)[0] == ["date", "api_key_name", "cost"], "the chart comes beside the output"
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


# A bar of pages on a terminal.

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_progress_bar_of_pages_is_drawn_on_stderr_and_cleared(
        upstream: FakeUpstream, usage: FakeUsage, monkeypatch: pytest.MonkeyPatch, report: Run) -> None:
    plain = report("costs", *MONTH, "--proxy", upstream.url)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    on_terminal = report("costs", *MONTH, "--proxy", upstream.url)
    assert on_terminal.ok() == plain.ok()
    drawn = terminal.getvalue()
    assert drawn.startswith("\rpages: "), drawn
    assert drawn.endswith("\r") and drawn.rsplit("\r", 2)[-2].strip() == "", f"the bar is left behind: {drawn!r}"
    assert plain.err == "", "no bar where nobody watches"


def test_without_tqdm_the_report_runs_on_a_terminal_with_no_bar(
        upstream: FakeUpstream, usage: FakeUsage, monkeypatch: pytest.MonkeyPatch, report: Run) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    document = report("costs", *MONTH, "--format", "json", "--proxy", upstream.url).json()
    assert_groups(document["totals"], ["api_key_name"], ["cost"], cost_contributions(usage, ["api_key_name"]),
                  what="totals")
    assert terminal.getvalue() == ""


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


def test_proxy_not_running_exits_1_with_one_line_on_stderr(report: Run) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert one_error_line(report("costs", *MONTH, "--proxy", url)).startswith(
        f"orgproxy-report: cannot reach orgproxy at {url}")


def test_a_proxy_that_hangs_up_without_answering_exits_1_with_one_line(report: Run, hangs_up: str) -> None:
    assert "hung up" in one_error_line(report("costs", *MONTH, "--proxy", hangs_up))

