"""Whatever the names hold, every format of ``orgproxy-report`` is written: a lone
surrogate (which JSON carries and UTF-8 cannot), a CR inside a name, a name a spreadsheet
would run as a formula, escape sequences for a terminal. Against one page of costs served
on a real socket, as orgproxy would send it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from pyarrow import parquet

from tests.report.conftest import Run
from tests.support.tcp_upstream import FakeUpstream, reply

COSTS = "/v1/organization/costs"
DAY = ["--since", "2026-10-01", "--until", "2026-10-02"]
ORG = ("--billing-account-id", "org-EXAMPLE123", "--billing-account-name", "Example Corp")
START = 1790812800  # 2026-10-01T00:00:00Z

NAMES = {
    "key_surrogate": "bad\ud800name",
    "key_formula": '=HYPERLINK("http://evil.example","click")',
    "key_cr": "line\rbreak",
    "key_dash": "-1+1",
    "key_number": "-1.5",
    "key_escape": "red\x1b[31m\x1b[2J",
}


@pytest.fixture
def hostile(upstream: FakeUpstream) -> FakeUpstream:
    results = [{"object": "organization.costs.result", "amount": {"value": 1.25, "currency": "usd"},
                "line_item": "gpt-4o, input", "project_id": "proj_a", "project_name": "p",
                "api_key_id": key, "api_key_name": name} for key, name in NAMES.items()]
    page = {"object": "page", "has_more": False, "next_page": None,
            "data": [{"object": "bucket", "start_time": START, "end_time": START + 86400, "results": results}]}
    upstream.on(COSTS, reply(body=json.dumps(page)))  # the surrogate as JSON sends it: \ud800
    return upstream


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_the_report_csv_has_one_row_per_name_and_no_formula(report: Run, hostile: FakeUpstream) -> None:
    rows = rows_of(report("costs", *DAY, "--by", "api_key_name", "--format", "csv", "--proxy", hostile.url).ok())
    assert len(rows) == 1 + len(NAMES), "a CR inside a name splits no row"
    assert sorted(row[1] for row in rows[1:]) == sorted([
        "bad\ufffdname", '\'=HYPERLINK("http://evil.example","click")', "line\rbreak", "'-1+1", "-1.5",
        "red\x1b[31m\x1b[2J"])


def test_csv_raw_writes_the_cells_as_they_are(report: Run, hostile: FakeUpstream) -> None:
    rows = rows_of(report("costs", *DAY, "--by", "api_key_name", "--format", "csv", "--csv-raw",
                          "--proxy", hostile.url).ok())
    assert {row[1] for row in rows[1:]} >= {'=HYPERLINK("http://evil.example","click")', "-1+1"}


def test_the_focus_csv_keeps_every_name_exactly_and_splits_no_row(report: Run, hostile: FakeUpstream,
                                                                   tmp_path: Path) -> None:
    printed = report("costs", *DAY, "--format", "focus", *ORG, "--proxy", hostile.url).ok()
    header, *rows = rows_of(printed)
    assert len(rows) == len(NAMES)
    names = {row[header.index("ResourceId")]: row[header.index("ResourceName")] for row in rows}
    assert names == {**NAMES, "key_surrogate": "bad\ufffdname"}
    target = tmp_path / "costs.csv"
    assert report("costs", *DAY, "--format", "focus", *ORG, "--proxy", hostile.url, "--output", str(target)).ok() == ""
    assert target.read_bytes().decode("utf-8") == printed


def test_focus_parquet_is_written_too(report: Run, hostile: FakeUpstream, tmp_path: Path) -> None:
    target = tmp_path / "costs.parquet"
    report("costs", *DAY, "--format", "focus-parquet", *ORG, "--proxy", hostile.url, "--output", str(target)).ok()
    names = parquet.read_table(target).column("ResourceName").to_pylist()
    assert sorted(names) == sorted({**NAMES, "key_surrogate": "bad\ufffdname"}.values())


def test_json_and_the_table_are_written_too(report: Run, hostile: FakeUpstream) -> None:
    document = report("costs", *DAY, "--by", "api_key_name", "--format", "json", "--proxy", hostile.url).json()
    assert {total["api_key_name"] for total in document["totals"]} == set(
        {**NAMES, "key_surrogate": "bad\ufffdname"}.values())
    table = report("costs", *DAY, "--by", "api_key_name", "--proxy", hostile.url).ok()
    assert "\x1b" not in table and "\r" not in table, "a terminal is given no escape sequence and no CR"
    assert "red\\x1b[31m\\x1b[2J" in table and "line\\x0dbreak" in table
