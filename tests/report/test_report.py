"""orgproxy-report, the CLI, run as a subprocess against the real daemon in front of
FakeUsage (tests/fakeusage.py): a month of costs and completions usage for six named keys
(two of them "checkout", merged by the daemon) and two keys nobody named.

What a report should say is computed here straight from the fake's own rows, never
through the CLI's code.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.support.daemon import Daemon, free_port
from tests.support.tcp_upstream import FakeUpstream
from tests.support.fake_usage import (ALIASES, ALIASES_TOML, COMPLETIONS, COSTS, DAY, UNKNOWN_KEYS, USAGE_NUMBERS,
                             FakeUsage, bucket_of_cursor, day_of, day_start)

REPORT = str(Path(sys.executable).with_name("orgproxy-report"))
TIMEOUT = 180  # seconds a CLI run may take (the first chart may build matplotlib's font cache)
SINCE, UNTIL = "2026-10-01", "2026-11-01"
MONTH = ["--since", SINCE, "--until", UNTIL]
REL = 1e-9
NAMES = sorted(set(ALIASES.values()))
Group = tuple[Any, ...]


@pytest.fixture
def aliases(tmp_path: Path) -> Path:
    """The daemon's alias file (overrides conftest's copy of etc/aliases.toml)."""
    path = tmp_path / "aliases.toml"
    path.write_text(ALIASES_TOML, encoding="utf-8")
    return path


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUsage:
    return FakeUsage(token=TOKEN).install(upstream)


def run(*args: str, key: str | None = TOKEN, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """orgproxy-report with ``args``; the admin key in OPENAI_ADMIN_KEY (none if None)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_ADMIN_KEY", "OPENAI_BASE_URL") and not k.startswith("ORGPROXY_")}
    if key is not None:
        env["OPENAI_ADMIN_KEY"] = key
    return subprocess.run([REPORT, *args], capture_output=True, text=True, encoding="utf-8", env=env,
                          cwd=cwd, timeout=TIMEOUT, check=False)


def report(daemon: Daemon, *args: str, cwd: Path | None = None) -> str:
    """A successful run's stdout."""
    done = run(*args, "--proxy", daemon.url, cwd=cwd)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def report_json(daemon: Daemon, *args: str) -> dict[str, Any]:
    out = report(daemon, *args, "--format", "json")
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"--format json printed no JSON:\n{out}") from None


def assert_one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"stderr should be one line:\n{done.stderr}"
    assert lines[0].startswith("orgproxy-report: "), lines[0]
    return lines[0]


# What the fake's rows add up to.

def iso(day: date) -> str:
    return day.isoformat()


def cost_contributions(fake: FakeUsage, fields: Sequence[str]) -> Iterable[tuple[Group, str, dict[str, float]]]:
    """(group over ``fields``, key id, {"cost": dollars}) for every costs row of the fake."""
    for row in fake.costs_rows:
        values = {"date": iso(row.day), "api_key_name": row.name, "line_item": row.line_item}
        yield tuple(values[f] for f in fields), row.api_key_id, {"cost": row.value}


def usage_contributions(fake: FakeUsage, fields: Sequence[str]) -> Iterable[tuple[Group, str, dict[str, int]]]:
    for row in fake.usage_rows:
        values = {"date": iso(row.day), "api_key_name": row.name, "model": row.model}
        yield tuple(values[f] for f in fields), row.api_key_id, dict(row.numbers)


def add(into: dict[str, Any], measures: dict[str, Any]) -> None:
    for name, value in measures.items():
        into[name] = into.get(name, 0) + value


def close(actual: Any, expected: Any) -> bool:
    if isinstance(expected, int):
        return actual == expected
    return isinstance(actual, (int, float)) and math.isclose(actual, expected, rel_tol=REL)


UNKNOWN_LABEL = re.compile(r"unknown \((key_\w+)\)")


def is_unknown(value: Any) -> bool:
    """"unknown" (the daemon's name for an id nobody named), or "unknown (key_...)"."""
    return value == "unknown" or (isinstance(value, str) and UNKNOWN_LABEL.fullmatch(value) is not None)


def assert_groups(entries: list[dict[str, Any]], fields: Sequence[str], measures: Sequence[str],
                  contributions: Iterable[tuple[Group, str, dict[str, Any]]], zero_rows_allowed: bool = False,
                  what: str = "") -> None:
    """Every group of the fake appears once in ``entries`` with the fake's sums. The keys
    nobody named (the daemon calls each "unknown" and never merges them) may come back as
    one "unknown" group with the sum of those keys, as one "unknown" entry per key, or as
    one "unknown (<key id>)" group per key, with that key's sums."""
    contributions = list(contributions)
    labelled = any(UNKNOWN_LABEL.fullmatch(str(entry.get(f))) for entry in entries for f in fields)
    expected: dict[Group, dict[str, Any]] = {}
    per_unknown_key: dict[Group, dict[str, dict[str, Any]]] = defaultdict(dict)
    for group, key_id, amounts in contributions:
        if labelled and key_id in UNKNOWN_KEYS:
            group = tuple(f"unknown ({key_id})" if value == "unknown" else value for value in group)
        add(expected.setdefault(group, {}), amounts)
        if key_id in UNKNOWN_KEYS:
            add(per_unknown_key[group].setdefault(key_id, {}), amounts)
    actual: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        missing = [f for f in (*fields, *measures) if f not in entry]
        assert not missing, f"{what}: {entry} lacks {missing}"
        group = tuple(entry[f] for f in fields)
        if zero_rows_allowed and group not in expected and all(entry[m] == 0 for m in measures):
            continue  # a day a group had nothing, shown as zero
        actual[group].append(entry)
    assert set(actual) == set(expected), (
        f"{what}: groups the fake did not serve: {sorted(set(actual) - set(expected), key=str)[:5]}; "
        f"groups missing: {sorted(set(expected) - set(actual), key=str)[:5]}")
    for group, sums in expected.items():
        got = actual[group]
        if len(got) == 1:
            wrong = {m: (got[0][m], sums[m]) for m in measures if not close(got[0][m], sums[m])}
            assert not wrong, f"{what}: {group}: (got, expected) {wrong}"
            continue
        # Only unknown keys may come back as several entries: one per key, each its own sums.
        assert "unknown" in group, f"{what}: {group} appears {len(got)} times: {got}"
        split = list(per_unknown_key[group].values())
        assert len(got) == len(split), f"{what}: {group}: {len(got)} entries for {len(split)} unknown keys"
        main = measures[0]
        for entry, part in zip(sorted(got, key=lambda e: e[main]), sorted(split, key=lambda p: p[main])):
            wrong = {m: (entry[m], part[m]) for m in measures if not close(entry[m], part[m])}
            assert not wrong, f"{what}: {group} (one unknown key): (got, expected) {wrong}"


def cost_total(fake: FakeUsage) -> float:
    return math.fsum(row.value for row in fake.costs_rows)


def name_costs(fake: FakeUsage) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for row in fake.costs_rows:
        sums[row.name] += row.value
    return dict(sums)


def dollars(amount: float) -> set[str]:
    """``amount`` as $1,234.56, allowing for the last bit of a float sum at a half cent."""
    return {f"${value:,.2f}" for value in (amount * (1 - REL), amount, amount * (1 + REL))}


def assert_header(document: dict[str, Any], kind: str, by: list[str], since: str = SINCE,
                  until: str = UNTIL) -> None:
    assert {"kind", "since", "until", "by", "rows", "totals"} <= set(document), list(document)
    assert (document["kind"], document["since"], document["until"], document["by"]) == (kind, since, until, by)


def assert_every_day_served_once(fake: FakeUsage, path: str, since: date, until: date) -> None:
    days = sorted(fake.buckets_served(path))
    expected = [day_start(since + timedelta(days=n)) for n in range((until - since).days)]
    assert days == expected, (f"buckets served for {path}: {[iso(day_of(d)) for d in days]}")


# Costs.

def test_costs_json_totals_per_name_equal_the_fakes_sums(daemon: Daemon, fake: FakeUsage) -> None:
    document = report_json(daemon, "costs", *MONTH, "--by", "api_key_name")
    assert_header(document, "costs", ["api_key_name"])
    assert {s.group_by for s in fake.served_for(COSTS)} == {("api_key_id",)}, "the daemon asks OpenAI for ids"
    totals = document["totals"]
    assert all(set(entry) == {"api_key_name", "cost"} for entry in totals), totals
    assert_groups(totals, ["api_key_name"], ["cost"], cost_contributions(fake, ["api_key_name"]), what="totals")
    # "checkout" is two keys, merged; the two unknown keys are never merged with each other.
    assert {e["api_key_name"] for e in totals if not is_unknown(e["api_key_name"])} == set(NAMES)
    assert any(is_unknown(e["api_key_name"]) for e in totals)
    costs = [entry["cost"] for entry in totals]
    assert costs == sorted(costs, reverse=True), "totals are sorted by cost, descending"
    assert totals[0]["api_key_name"] == "checkout"


def test_costs_json_rows_per_day_equal_the_fakes_daily_sums(daemon: Daemon, fake: FakeUsage) -> None:
    document = report_json(daemon, "costs", *MONTH, "--by", "api_key_name")
    assert_header(document, "costs", ["api_key_name"])
    assert_groups(document["rows"], ["date", "api_key_name"], ["cost"],
                  cost_contributions(fake, ["date", "api_key_name"]), zero_rows_allowed=True, what="rows")


def test_costs_walks_every_page_of_the_month_once(daemon: Daemon, fake: FakeUsage) -> None:
    report_json(daemon, "costs", *MONTH, "--by", "api_key_name")
    served = fake.served_for(COSTS)
    paged = [s for s in served if s.page is not None]
    assert len(paged) >= 2, f"31 days in pages of at most {fake.page_size} buckets: {len(served)} requests"
    issued = {s.next_page for s in served if s.next_page}
    # The cursors came back exactly as issued ("+", "/" and "=" survived the URL).
    assert {s.page for s in paged} <= issued
    assert all(bucket_of_cursor(s.page) is not None for s in paged)
    # Every page that said has_more was followed, and the walk ended on has_more false.
    assert {s.next_page for s in served if s.has_more} == {s.page for s in paged}
    assert any(not s.has_more for s in served)
    assert_every_day_served_once(fake, COSTS, date(2026, 10, 1), date(2026, 11, 1))


def test_costs_range_over_180_days_is_split_into_windows_of_at_most_180_days(
        daemon: Daemon, upstream: FakeUpstream) -> None:
    since, until = date(2026, 3, 1), date(2026, 10, 1)  # 214 days
    fake = FakeUsage(since=since, until=until, token=TOKEN, page_size=31).install(upstream)
    document = report_json(daemon, "costs", "--since", iso(since), "--until", iso(until), "--by", "api_key_name")
    assert_header(document, "costs", ["api_key_name"], iso(since), iso(until))
    windows = sorted(fake.windows(COSTS))
    assert len(windows) >= 2, windows
    assert all(end - start <= 180 * DAY for start, end in windows), windows
    assert_every_day_served_once(fake, COSTS, since, until)
    assert_groups(document["totals"], ["api_key_name"], ["cost"], cost_contributions(fake, ["api_key_name"]),
                  what="totals")


# Usage.

def test_usage_completions_totals_per_name_and_model_equal_the_fakes_sums(daemon: Daemon,
                                                                          fake: FakeUsage) -> None:
    document = report_json(daemon, "usage", "completions", *MONTH, "--by", "api_key_name,model")
    assert_header(document, "usage/completions", ["api_key_name", "model"])
    assert {frozenset(s.group_by) for s in fake.served_for(COMPLETIONS)} == {frozenset({"api_key_id", "model"})}
    totals = document["totals"]
    assert_groups(totals, ["api_key_name", "model"], USAGE_NUMBERS,
                  usage_contributions(fake, ["api_key_name", "model"]), what="totals")
    for entry in totals:
        assert all(type(entry[number]) is int for number in USAGE_NUMBERS), entry
    tokens = [entry["input_tokens"] + entry["output_tokens"] for entry in totals]
    assert tokens == sorted(tokens, reverse=True), "totals are sorted by input+output tokens, descending"
    assert_groups(document["rows"], ["date", "api_key_name", "model"], USAGE_NUMBERS,
                  usage_contributions(fake, ["date", "api_key_name", "model"]), zero_rows_allowed=True,
                  what="rows")


def test_usage_range_of_62_days_is_split_into_windows_of_at_most_31_days(daemon: Daemon,
                                                                         upstream: FakeUpstream) -> None:
    since, until = date(2026, 9, 1), date(2026, 11, 2)  # 62 days
    fake = FakeUsage(since=since, until=until, token=TOKEN).install(upstream)
    document = report_json(daemon, "usage", "completions", "--since", iso(since), "--until", iso(until),
                           "--by", "api_key_name")
    assert_header(document, "usage/completions", ["api_key_name"], iso(since), iso(until))
    windows = sorted(fake.windows(COMPLETIONS))
    assert len({start for start, _ in windows}) >= 2, windows
    assert all(end - start <= 31 * DAY for start, end in windows), windows
    assert windows[0][0] == day_start(since) and windows[-1][1] == day_start(until), windows
    assert all(s.limit is None or s.limit <= 31 for s in fake.served_for(COMPLETIONS))
    assert_every_day_served_once(fake, COMPLETIONS, since, until)
    assert_groups(document["totals"], ["api_key_name"], USAGE_NUMBERS,
                  usage_contributions(fake, ["api_key_name"]), what="totals")


# CSV.

PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_costs_csv_has_one_row_per_day_and_group_with_plain_numbers_matching_the_fakes_daily_sums(
        daemon: Daemon, fake: FakeUsage) -> None:
    text = report(daemon, "costs", *MONTH, "--by", "api_key_name,line_item", "--format", "csv")
    assert {frozenset(s.group_by) for s in fake.served_for(COSTS)} == {frozenset({"api_key_id", "line_item"})}
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
                  cost_contributions(fake, ["date", "api_key_name", "line_item"]), zero_rows_allowed=True,
                  what="csv")


def test_usage_csv_has_one_row_per_day_and_group_with_integer_tokens_matching_the_fakes_daily_sums(
        daemon: Daemon, fake: FakeUsage) -> None:
    text = report(daemon, "usage", "completions", *MONTH, "--by", "api_key_name,model", "--format", "csv")
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
                  usage_contributions(fake, ["date", "api_key_name", "model"]), zero_rows_allowed=True,
                  what="csv")


# Table.

def test_costs_table_has_a_line_per_name_and_a_total_line_in_dollars_and_cents(daemon: Daemon,
                                                                                fake: FakeUsage) -> None:
    text = report(daemon, "costs", *MONTH, "--by", "api_key_name")
    lines = text.splitlines()
    total_lines = [line for line in lines if line.strip().startswith("TOTAL")]
    assert len(total_lines) == 1, text
    total = cost_total(fake)
    assert total > 1000  # the thousands separator shows
    assert any(amount in total_lines[0] for amount in dollars(total)), (total_lines[0], sorted(dollars(total)))
    for name, cost in name_costs(fake).items():
        if name == "unknown":
            continue
        named = [line for line in lines if name in line]
        assert len(named) == 1, f"{name!r}: {named}"
        assert any(amount in named[0] for amount in dollars(cost)), (named[0], sorted(dollars(cost)))
    assert any("unknown" in line for line in lines), text


# Charts.

def test_chart_svg_parses_as_xml_and_names_the_top_names_and_other_as_text(daemon: Daemon, fake: FakeUsage,
                                                                           tmp_path: Path) -> None:
    chart = tmp_path / "out.svg"
    report(daemon, "costs", *MONTH, "--by", "api_key_name", "--chart", str(chart), "--top", "3", cwd=tmp_path)
    assert chart.is_file(), "no chart written"
    root = ET.parse(chart).getroot()
    assert root.tag.endswith("svg"), root.tag
    text = " ".join(" ".join(element.itertext()) for element in root.iter())
    ranked = sorted(name_costs(fake).items(), key=lambda item: item[1], reverse=True)
    top = [name for name, _ in ranked[:3]]
    assert top == ["checkout", "mobile-app", "R&D notebooks"]
    for name in top:
        assert name in text, f"{name!r} is not text in the SVG"
    assert "other" in text
    for name, _ in ranked[3:]:
        if name != "unknown":
            assert name not in text, f"{name!r} is not among the top 3 but is in the chart"


def test_chart_png_starts_with_the_png_signature(daemon: Daemon, fake: FakeUsage, tmp_path: Path) -> None:
    chart = tmp_path / "out.png"
    report(daemon, "costs", *MONTH, "--by", "api_key_name", "--chart", str(chart), cwd=tmp_path)
    assert chart.is_file(), "no chart written"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Keys and dates.

def test_admin_key_file_is_used_without_the_environment_variable(daemon: Daemon, fake: FakeUsage,
                                                                 tmp_path: Path) -> None:
    key_file = tmp_path / "admin-key"
    key_file.write_text(TOKEN + "\n")
    key_file.chmod(0o600)
    done = run("costs", *MONTH, "--by", "api_key_name", "--format", "json", "--admin-key-file", str(key_file),
               "--proxy", daemon.url, key=None)
    assert done.returncode == 0, done.stderr
    assert_groups(json.loads(done.stdout)["totals"], ["api_key_name"], ["cost"],
                  cost_contributions(fake, ["api_key_name"]), what="totals")
    assert TOKEN not in done.stdout + done.stderr


def test_relative_days_count_back_from_today_utc(daemon: Daemon, fake: FakeUsage) -> None:
    today = datetime.now(timezone.utc).date()
    document = report_json(daemon, "costs", "--since", "3d", "--until", "1d", "--by", "api_key_name")
    assert (document["since"], document["until"]) == (iso(today - timedelta(days=3)), iso(today - timedelta(days=1)))
    assert min(day_of(s.start_time) for s in fake.served_for(COSTS)) == today - timedelta(days=3)


# Errors.

def test_proxy_not_running_exits_1_with_one_line_on_stderr(tmp_path: Path) -> None:
    done = run("costs", *MONTH, "--by", "api_key_name", "--proxy", f"http://127.0.0.1:{free_port()}")
    assert_one_error_line(done)


def test_openai_answering_401_exits_1_with_one_line_mentioning_401(daemon: Daemon, fake: FakeUsage) -> None:
    wrong = "sk-admin-WRONG-key-0000"
    done = run("costs", *MONTH, "--by", "api_key_name", "--proxy", daemon.url, key=wrong)
    line = assert_one_error_line(done)
    assert "401" in line, line
    assert wrong not in done.stdout + done.stderr, "the admin key was printed"
    assert fake.served == [], "nothing is served to a wrong key"


def test_a_bad_date_exits_1_with_one_line_and_asks_nothing(daemon: Daemon, fake: FakeUsage,
                                                           upstream: FakeUpstream) -> None:
    done = run("costs", "--since", "yesterdayish", "--until", UNTIL, "--by", "api_key_name", "--proxy", daemon.url)
    assert_one_error_line(done)
    assert upstream.received == []


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """The URL of a server that reads each request and closes the connection unanswered
    (a proxy killed mid-request, or something else on the port)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return  # closed: the test is over
            with connection:
                connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
    server.close()
    thread.join(5)


def test_a_proxy_that_hangs_up_without_answering_exits_1_with_one_line(hangs_up: str) -> None:
    done = run("costs", *MONTH, "--by", "api_key_name", "--proxy", hangs_up)
    assert_one_error_line(done)
