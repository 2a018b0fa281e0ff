"""What a report over FakeUsage should say, computed straight from the fake's own rows
(never through the report's code), and the checks that compare a report with it.

Shared by the in-process report tests (tests/report/) and the real-process ones
(tests/process/test_report_cli.py).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from tests.support.fake_usage import UNKNOWN_KEYS, FakeUsage, day_of, day_start

SINCE, UNTIL = "2026-10-01", "2026-11-01"  # FakeUsage's default month
MONTH = ["--since", SINCE, "--until", UNTIL]
REL = 1e-9  # float sums in another order differ in the last bits
Group = tuple[Any, ...]
UNKNOWN_LABEL = re.compile(r"unknown \((key_\w+)\)")
# A number as CSV should hold it: no thousands separators, no currency, no quotes.
PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def iso(day: date) -> str:
    return day.isoformat()


def cost_contributions(fake: FakeUsage, fields: Sequence[str]) -> Iterable[tuple[Group, str, dict[str, float]]]:
    """(group over ``fields``, key id, {"cost": dollars}) for every costs row of the fake."""
    for row in fake.costs_rows:
        values = {"date": iso(row.day), "api_key_name": row.name, "api_key_id": row.api_key_id,
                  "line_item": row.line_item}
        yield tuple(values[f] for f in fields), row.api_key_id, {"cost": row.value}


def usage_contributions(fake: FakeUsage, fields: Sequence[str]) -> Iterable[tuple[Group, str, dict[str, int]]]:
    for row in fake.usage_rows:
        values = {"date": iso(row.day), "api_key_name": row.name, "api_key_id": row.api_key_id,
                  "model": row.model}
        yield tuple(values[f] for f in fields), row.api_key_id, dict(row.numbers)


def add(into: dict[str, Any], measures: dict[str, Any]) -> None:
    for name, value in measures.items():
        into[name] = into.get(name, 0) + value


def close(actual: Any, expected: Any) -> bool:
    if isinstance(expected, int):
        return actual == expected
    return isinstance(actual, (int, float, Decimal)) and math.isclose(float(actual), expected, rel_tol=REL)


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
    assert days == expected, f"buckets served for {path}: {[iso(day_of(d)) for d in days]}"


def assert_costs_table(text: str, fake: FakeUsage) -> None:
    """A line per name with its dollars and cents, the unknown keys, and one TOTAL line."""
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


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def assert_one_error_line(code: int, stdout: str, stderr: str) -> str:
    """Exit 1, nothing on stdout, and one line on stderr saying who speaks."""
    assert code == 1, f"exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert stdout == "", stdout
    lines = stderr.splitlines()
    assert len(lines) == 1, f"stderr should be one line:\n{stderr}"
    assert lines[0].startswith("orgproxy-report: "), lines[0]
    return lines[0]
