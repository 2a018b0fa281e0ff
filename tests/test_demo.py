"""``make demo``'s organizations (demo/): what the README promises is in them, whatever the day,
and their upstream answers as the daemon reads it. (``make demo`` itself, with the daemon:
tests/test_makefile.py.)"""

from __future__ import annotations

import json
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from demo.organization import anthropic_demo, first_day, openai_demo, today_utc
from demo.upstream import ANTHROPIC_ADMIN_KEY, DemoUpstream, serve
from tests.support.fake_admin import PROJECTS, api_keys_path
from tests.support.fake_analytics import BETA, COST
from tests.support.fake_usage import FakeUsage

DAYS = [date(2027, 1, 1), date(2026, 12, 7), date(2027, 2, 28), date(2027, 3, 31)]


def openai_costs(today: date) -> tuple[dict[str, set[date]], dict[str, str]]:
    """key id -> the days it cost something; key id -> name (listed keys only)."""
    demo = openai_demo(today)
    usage = FakeUsage(since=first_day(today), until=today + timedelta(days=1), keys=demo.keys)
    days: dict[str, set[date]] = defaultdict(set)
    for row in usage.costs_rows:
        days[row.api_key_id].add(row.day)
    return days, demo.names


@pytest.mark.parametrize("today", DAYS, ids=str)
def test_the_last_30_days_hold_rotated_deleted_and_unnamed_keys(today: date) -> None:
    days, names = openai_costs(today)
    last_30_days = {today - timedelta(days=n) for n in range(30)}
    recent = {key for key, spent in days.items() if spent & last_30_days}
    deleted = {key for keys in openai_demo(today).deleted.values() for key in keys}
    by_name: dict[str, set[str]] = defaultdict(set)
    for key in recent & set(names):
        by_name[names[key]].add(key)
    assert any(len(keys) == 2 for keys in by_name.values()), "a rotated key: two keys, one name"
    assert recent & deleted, "a deleted key with costs"
    assert recent - set(names), "a key nobody named"
    assert today in {d for spent in days.values() for d in spent}, "costs today: this month has data"
    assert len({key for key, spent in days.items() if spent}) + len(anthropic_demo(today).names) >= 24


@pytest.mark.parametrize("today", DAYS, ids=str)
def test_anthropic_has_a_rotated_key_the_console_and_the_default_workspace(today: date) -> None:
    demo = anthropic_demo(today)
    in_reach = [e for e in demo.costs if date.fromisoformat(e.day) > today - timedelta(days=30)]
    names = [demo.names[e.dimensions["api_key_id"]] for e in in_reach if e.dimensions["api_key_id"]]
    keys_by_name: dict[str, set[str]] = defaultdict(set)
    for entry in in_reach:
        if entry.dimensions["api_key_id"]:
            keys_by_name[demo.names[entry.dimensions["api_key_id"]]].add(entry.dimensions["api_key_id"])
    assert any(len(keys) == 2 for keys in keys_by_name.values())
    assert any(e.dimensions["api_key_id"] is None for e in in_reach), "the Console's usage"
    assert any(e.dimensions["workspace_id"] is None and e.dimensions["api_key_id"] for e in in_reach)
    assert len(set(names)) >= 6
    assert {e.day for e in demo.costs} >= {today.isoformat()}


@pytest.fixture(scope="module")
def upstream() -> Iterator[DemoUpstream]:
    served = serve(today_utc())
    yield served
    served.stop()


def get(upstream: DemoUpstream, target: str, headers: dict[str, str]) -> dict:
    with urllib.request.urlopen(urllib.request.Request(upstream.url + target, headers=headers),
                                timeout=10) as response:
        return json.loads(response.read())


def test_a_deleted_key_is_listed_by_the_first_walk_only(upstream: DemoUpstream) -> None:
    admin = {"Authorization": "Bearer sk-admin-anything"}
    (project, (key, *_)), *_ = upstream.openai.deleted.items()

    def listed() -> set[str]:
        get(upstream, f"{PROJECTS}?include_archived=true&limit=100", admin)  # a walk begins
        page = get(upstream, f"{api_keys_path(project)}?owner_project_access=any&limit=100", admin)
        return {item["id"] for item in page["data"]}
    assert key in listed()
    assert key not in listed()


def test_anthropic_s_analytics_cost_sums_the_demo_s_ledger(upstream: DemoUpstream) -> None:
    start = today_utc().replace(day=1)
    headers = {"x-api-key": ANTHROPIC_ADMIN_KEY, "anthropic-beta": BETA, "anthropic-version": "2023-06-01"}
    target = f"{COST}?starting_at={start}T00:00:00Z&group_by[]=api_key_id&limit=1000"
    page = get(upstream, target, headers)
    got = {row["group"]["api_key_id"]: Decimal(row["cost"]["amount"]) for row in page["data"]}
    want: dict[str | None, Decimal] = defaultdict(Decimal)
    for entry in upstream.anthropic.costs:
        if date.fromisoformat(entry.day) >= start:
            want[entry.dimensions["api_key_id"]] += Decimal(entry.amount)
    assert got == want and not page["has_more"]
