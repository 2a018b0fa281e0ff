"""``orgproxy-report`` as a user runs it: the installed command, in its own process, asking
the real daemon (``twistd -n orgproxy``), which names and merges the rows of FakeUsage's
month (two keys named "checkout", two keys nobody named) served by the fake OpenAI.

One daemon serves the module; it requires a client token (``--client-token-file``), which
the report sends (``ORGPROXY_CLIENT_TOKEN_FILE``). What the report does with what it is sent (every format,
windows, paging, each failure) is tested in the test process: tests/report/.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import serving
from tests.support.answers import TOKEN
from tests.support.daemon import Daemon, daemon_env
from tests.support.fake_usage import (
    ALIASES,
    ALIASES_TOML,
    COMPLETIONS,
    COSTS,
    USAGE_NUMBERS,
    FakeUsage,
)
from tests.support.focus14_rules import assert_focus_1_4_rules
from tests.support.tcp_upstream import FakeUpstream, upstream_fixture
from tests.support.usage_expected import (
    MONTH,
    assert_costs_table,
    assert_groups,
    assert_header,
    assert_one_error_line,
    usage_contributions,
)

REPORT = str(Path(sys.executable).with_name("orgproxy-report"))
CLIENT_TOKEN = "team-secret-the-report-sends"


upstream = upstream_fixture("module")  # one fake for the module's daemon


@pytest.fixture(scope="module")
def month(upstream: FakeUpstream) -> FakeUsage:
    return FakeUsage(token=TOKEN).install(upstream)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report-daemon")
    (work / "aliases.toml").write_text(ALIASES_TOML, encoding="utf-8")
    (work / "client-token").write_text(CLIENT_TOKEN + "\n")
    return work


@pytest.fixture(scope="module")
def daemon(upstream: FakeUpstream, work: Path) -> Iterator[Daemon]:
    with serving(["--upstream", upstream.url, "--aliases", str(work / "aliases.toml"), "--timeout", "5",
                  "--client-token-file", str(work / "client-token")], work) as running:
        yield running


@pytest.fixture
def usage(month: FakeUsage, upstream: FakeUpstream) -> FakeUsage:
    """The month, with nothing served yet in this test."""
    month.served.clear()
    upstream.received.clear()
    return month


def run(daemon: Daemon, *args: str, key: str = TOKEN, client_token_file: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``orgproxy-report args --proxy <daemon>``, the admin key in OPENAI_ADMIN_KEY and the
    client token's file, if given, in ORGPROXY_CLIENT_TOKEN_FILE."""
    env = daemon_env({"OPENAI_ADMIN_KEY": key})  # no ORGPROXY_*, and the same sources as the daemon
    if client_token_file is not None:
        env["ORGPROXY_CLIENT_TOKEN_FILE"] = str(client_token_file)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([REPORT, *args, "--proxy", daemon.url], capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=60, check=False)


def run_on_a_terminal(daemon: Daemon, *args: str, client_token_file: Path) -> tuple[str, bytes]:
    """``run``, with stderr a terminal (a pseudo-terminal): (stdout, what stderr's terminal got)."""
    leader, follower = pty.openpty()
    env = daemon_env({"OPENAI_ADMIN_KEY": TOKEN, "ORGPROXY_CLIENT_TOKEN_FILE": str(client_token_file)})
    try:
        done = subprocess.run([REPORT, *args, "--proxy", daemon.url], stdout=subprocess.PIPE, stderr=follower,
                              env=env, timeout=60, check=False)
        os.close(follower)
        drawn = b""
        while select.select([leader], [], [], 0)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed and read to its end
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0, drawn
    return done.stdout.decode(), drawn


def succeeded(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stderr == "", done.stderr
    return done.stdout


def test_costs_table_per_name_from_the_daemon_s_names(daemon: Daemon, usage: FakeUsage, work: Path) -> None:
    table = succeeded(run(daemon, "costs", *MONTH, "--by", "api_key_name", client_token_file=work / "client-token"))
    assert {s.group_by for s in usage.served_for(COSTS)} == {("api_key_id",)}, "the daemon asks OpenAI for ids"
    # A line per name with the fake's sums (the two "checkout" keys together), and the total.
    assert_costs_table(table, usage)


def test_usage_json_per_name_and_model_from_the_daemon_s_names(daemon: Daemon, usage: FakeUsage, work: Path) -> None:
    document = json.loads(succeeded(run(daemon, "usage", "completions", *MONTH, "--by", "api_key_name,model",
                                        "--format", "json", client_token_file=work / "client-token")))
    assert_header(document, "usage/completions", ["api_key_name", "model"])
    assert {frozenset(s.group_by) for s in usage.served_for(COMPLETIONS)} == {frozenset({"api_key_id", "model"})}
    assert_groups(document["totals"], ["api_key_name", "model"], USAGE_NUMBERS,
                  usage_contributions(usage, ["api_key_name", "model"]), what="totals")
    assert all(type(entry[n]) is int for entry in document["totals"] for n in USAGE_NUMBERS)


def test_openai_answering_401_exits_1_with_one_line_mentioning_401(daemon: Daemon, usage: FakeUsage,
                                                                   upstream: FakeUpstream, work: Path) -> None:
    wrong = "sk-admin-WRONG-key-0000"
    done = run(daemon, "costs", *MONTH, key=wrong, client_token_file=work / "client-token")
    line = assert_one_error_line(done.returncode, done.stdout, done.stderr)
    assert f"{COSTS}: 401: Incorrect API key provided" in line, line
    assert wrong not in done.stdout + done.stderr, "the admin key was printed"
    assert len(upstream.received) == 1 and usage.served == [], "one call, refused, and no retry"


def test_focus_export_through_the_daemon_keeps_every_rule_and_every_cent(daemon: Daemon, usage: FakeUsage,
                                                                        work: Path, tmp_path: Path) -> None:
    target = tmp_path / "costs.csv"
    succeeded(run(daemon, "costs", *MONTH, "--format", "focus", "--billing-account-id", "org-EXAMPLE123",
                  "--billing-account-name", "Example Corp", "--output", str(target),
                  client_token_file=work / "client-token"))
    rows = assert_focus_1_4_rules(target.read_text(encoding="utf-8"))
    assert {frozenset(s.group_by) for s in usage.served_for(COSTS)} == {
        frozenset({"project_id", "api_key_id", "line_item"})}, "by id: the daemon merges nothing"
    assert sum(Decimal(r["BilledCost"]) for r in rows) == sum(Decimal(json.dumps(c.value)) for c in usage.costs_rows)
    # The daemon's names: the alias file's, the two "checkout" keys apart, unknown keys unnamed.
    names = {r["ResourceId"]: r["ResourceName"] for r in rows}
    assert names == {c.api_key_id: ALIASES.get(c.api_key_id) for c in usage.costs_rows}
    assert {r["SubAccountName"] for r in rows if r["SubAccountId"] == "proj_shop"} == {"shop"}
    assert json.loads((tmp_path / "costs.csv.metadata.json").read_text())["Schema"]["FocusVersion"] == "1.4"


def test_on_a_terminal_a_progress_line_is_drawn_on_stderr_and_wiped_and_quiet_draws_none(
        daemon: Daemon, usage: FakeUsage, work: Path) -> None:
    for quiet in ([], ["--quiet"]):
        table, drawn = run_on_a_terminal(daemon, "costs", *MONTH, *quiet, client_token_file=work / "client-token")
        assert_costs_table(table, usage)
        if quiet:
            assert drawn == b""
            continue
        assert drawn.startswith(b"\rorgproxy-report: ") and b" rows" in drawn
        assert drawn.endswith(b"\r") and drawn.rsplit(b"\r", 2)[-2].strip() == b"", drawn


def test_without_the_client_token_the_daemon_refuses_and_the_report_exits_1_with_one_line(
        daemon: Daemon, usage: FakeUsage, upstream: FakeUpstream) -> None:
    done = run(daemon, "costs", *MONTH)
    line = assert_one_error_line(done.returncode, done.stdout, done.stderr)
    assert f"{COSTS}: 401: orgproxy needs the right X-Orgproxy-Token" in line, line
    assert upstream.received == []
