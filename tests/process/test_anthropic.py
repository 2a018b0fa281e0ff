"""Anthropic through the real daemon (``twistd -n orgproxy``): its second upstream on a real
socket, the names it adds, discovery with an Anthropic admin key, and ``orgproxy-report
--provider anthropic`` as a user runs it, through the daemon, merging rotated keys by name.
What each piece does in detail is tested in memory: tests/web/test_anthropic.py,
tests/names/test_anthropic_discovery.py, tests/report/test_anthropic_report.py."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import serving
from tests.support.daemon import Daemon, daemon_env
from tests.support.anthropic_socket import AnthropicOnASocket
from tests.support.fake_anthropic import ADMIN_KEY, MESSAGES, WORKSPACES
from tests.support.tcp_upstream import FakeUpstream, upstream_fixture

REPORT = str(Path(sys.executable).with_name("orgproxy-report"))
CALLER_KEY = "sk-ant-admin01-process-caller-5e1a"


upstream = upstream_fixture("module")  # one fake for the module's daemon


@pytest.fixture(scope="module")
def anthropic(upstream: FakeUpstream) -> AnthropicOnASocket:
    return AnthropicOnASocket().install(upstream)


@pytest.fixture(scope="module")
def daemon(upstream: FakeUpstream, anthropic: AnthropicOnASocket,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """OpenAI's upstream nowhere (nothing here calls it); Anthropic's the fake; discovery on."""
    with serving(["--upstream", "http://127.0.0.1:9", "--anthropic-upstream", upstream.url, "--timeout", "5"],
                 tmp_path_factory.mktemp("anthropic-daemon"), env={"ANTHROPIC_ADMIN_KEY": ADMIN_KEY}) as running:
        running.wait_for("discovery_done", provider="Anthropic", why="start")  # it serves at once; the names follow
        yield running
    assert ADMIN_KEY not in running.output and CALLER_KEY not in running.output


def test_the_daemon_forwards_organizations_to_anthropic_and_names_what_discovery_learned(
        daemon: Daemon, upstream: FakeUpstream) -> None:
    target = MESSAGES + "?starting_at=2026-08-01T00:00:00Z&ending_at=2026-08-04T00:00:00Z&group_by=workspace_id"
    request = urllib.request.Request(daemon.url + target,
                                     headers={"x-api-key": CALLER_KEY, "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.loads(response.read())
    names = {row["workspace_id"]: row["workspace_name"] for bucket in page["data"] for row in bucket["results"]}
    assert names == {"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ": "Billing", "wrkspc_01XYZ789ABC123DEF456MNO": "Platform",
                     None: "Default"}
    forwarded = [r for r in upstream.received if r.target.startswith(MESSAGES.encode())][-1]
    assert forwarded.target == target.replace("group_by=", "group_by[]=").encode()
    assert forwarded.header("x-api-key") == CALLER_KEY
    discovery = [r for r in upstream.received if r.target.startswith(WORKSPACES.encode())]
    assert discovery and all(r.header("x-api-key") == ADMIN_KEY for r in discovery)


def test_the_report_through_the_daemon_merges_rotated_keys_by_name(
        daemon: Daemon, anthropic: AnthropicOnASocket, upstream: FakeUpstream) -> None:
    ran = subprocess.run([REPORT, "--provider", "anthropic", "usage", "--since", "2026-08-01",
                          "--until", "2026-08-04", "--by", "api_key_name", "--format", "json", "--proxy", daemon.url],
                         env=daemon_env({"ANTHROPIC_ADMIN_KEY": CALLER_KEY}), capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    document = json.loads(ran.stdout)
    totals = {t["api_key_name"]: t for t in document["totals"]}
    # Two keys named billing-batch-prod (one expired), one line; the Console named.
    august = [e for e in anthropic.fake.org.analytics.usage if "2026-08-01" <= e.day < "2026-08-04"]
    billing = {k["id"] for k in anthropic.fake.org.api_keys if k["name"] == "billing-batch-prod"}
    assert totals["billing-batch-prod"]["uncached_input_tokens"] == sum(
        e.tokens["uncached_input_tokens"] for e in august if e.dimensions["api_key_id"] in billing) > 0
    assert totals["Console"]["output_tokens"] == sum(
        e.tokens["output_tokens"] for e in august if e.dimensions["api_key_id"] is None) > 0
    assert set(totals) == {"billing-batch-prod", "Console"}
    daily = [row for row in document["rows"] if row["api_key_name"] == "billing-batch-prod"]
    assert [row["date"] for row in daily] == ["2026-08-01"]
    assert len(totals["billing-batch-prod"]["api_key_ids"]) == 2 and totals["Console"]["api_key_ids"] == []
    # From the analytics API, with its beta header, through the daemon.
    asked = [r for r in upstream.received if r.target.startswith(b"/v1/organizations/analytics/usage")]
    assert asked and all(r.header("anthropic-beta") == "analytics-usage-cost-2026-08-24" for r in asked)
