"""Every shell and Python block of the README runs as written.

They run in the README's order against the real daemon (``twistd -n orgproxy``) in front of
the fake OpenAI serving FakeUsage's month (October 2026) and the fake Anthropic (its sample
organization, whose usage is of August 2026; its names learned by Anthropic's discovery),
with these substitutions, and nothing else changed:

- ``http://127.0.0.1:18080`` (where ``make run`` serves) becomes the daemon's address, and
  ``ORGPROXY_URL`` (``orgproxy-report``'s default ``--proxy``) names it too;
- ``sk-admin-...`` (the placeholder for your admin key) becomes the fake's admin key, which is
  also in ``OPENAI_ADMIN_KEY``, as the README's readers have it; ``sk-ant-admin01-...``
  (Anthropic's) becomes the fake Anthropic's, also in ``ANTHROPIC_ADMIN_KEY``;
- shell blocks run with ``bash -e -o pipefail`` in an empty directory, with the installed
  commands (``orgproxy-report``) first on ``PATH``; Python blocks run one after the other in
  one namespace, as a reader pastes them into one session (the second uses the first's
  ``client``).

A block right after an HTML comment ``<!-- not run: <why> -->`` is not run; the comment says
why (it changes the system, needs systemd, ...). The report the README shows as printed is
checked to be what its command prints.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, TOKEN, assert_clean_output
from tests.support.anthropic_socket import AnthropicOnASocket
from tests.support.daemon import Daemon, daemon_env
from tests.support.fake_anthropic import ADMIN_KEY as ANTHROPIC_ADMIN_KEY
from tests.support.fake_usage import ALIASES_TOML, FakeUsage
from tests.support.readme_setup import fenced_blocks
from tests.support.tcp_upstream import FakeUpstream

README = ROOT / "README.md"
RUN_LANGUAGES = {"sh": "shell", "bash": "shell", "shell": "shell", "python": "python", "py": "python"}
NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")
MAKE_RUN_URL = "http://127.0.0.1:18080"
KEY_PLACEHOLDER = "sk-admin-..."
ANTHROPIC_KEY_PLACEHOLDER = "sk-ant-admin01-..."


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str  # "shell" or "python"
    code: str
    not_run: str | None  # why, when it is not run


def blocks() -> list[Block]:
    """The README's shell and Python blocks, in order."""
    lines = README.read_text().splitlines()
    found = []
    for fenced in fenced_blocks(lines):
        n = fenced.opening
        marker = NOT_RUN.match(lines[n - 1]) if n else None
        language = RUN_LANGUAGES.get(fenced.language)
        assert language is not None or marker is None, f"README.md:{n}: a not-run mark on a block never run"
        if language is not None:
            found.append(Block(n + 1, language, fenced.code, marker.group(1) if marker else None))
    return found


def test_the_blocks_not_run_say_why_and_are_few() -> None:
    found = blocks()
    not_run = [b for b in found if b.not_run is not None]
    assert all(len(b.not_run.split()) >= 3 for b in not_run), [(b.line, b.not_run) for b in not_run]
    assert len([b for b in found if b.not_run is None]) >= 4  # the curl, SDK and report examples
    assert len(not_run) <= 7, "more blocks not run than the deployment ones: run them"


@pytest.fixture
def served(upstream: FakeUpstream, tmp_path: Path) -> Iterator[Daemon]:
    """The daemon where make run would serve, with FakeUsage's month and its names, and the
    fake Anthropic on the same socket (its paths are its own), named by its discovery."""
    FakeUsage(token=TOKEN).install(upstream)
    AnthropicOnASocket().install(upstream)
    aliases = tmp_path / "aliases.toml"
    aliases.write_text(ALIASES_TOML, encoding="utf-8")
    running = Daemon(["--upstream", upstream.url, "--anthropic-upstream", upstream.url, "--aliases", str(aliases)],
                     cwd=tmp_path, env={"ANTHROPIC_ADMIN_KEY": ANTHROPIC_ADMIN_KEY}).wait_ready()
    running.wait_for("discovery_done", provider="Anthropic", why="start")  # it serves at once; the names follow
    yield running
    running.stop()
    assert_clean_output(running)


def as_run_here(code: str, daemon: Daemon) -> str:
    return (code.replace(MAKE_RUN_URL, daemon.url).replace(KEY_PLACEHOLDER, TOKEN)
            .replace(ANTHROPIC_KEY_PLACEHOLDER, ANTHROPIC_ADMIN_KEY))


def run_shell(block: Block, daemon: Daemon, directory: Path) -> str:
    env = daemon_env({"OPENAI_ADMIN_KEY": TOKEN, "ANTHROPIC_ADMIN_KEY": ANTHROPIC_ADMIN_KEY, "ORGPROXY_URL": daemon.url,
                      "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    env.pop("OPENAI_BASE_URL", None)
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", as_run_here(block.code, daemon)], cwd=directory,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 0, f"README.md:{block.line}: exit {done.returncode}\n{said}"
    assert "Traceback" not in said and '"error"' not in said, f"README.md:{block.line}:\n{said}"
    return done.stdout


def run_python(block: Block, daemon: Daemon, namespace: dict[str, object]) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(as_run_here(block.code, daemon), f"README.md:{block.line}", "exec"), namespace)
    return printed.getvalue()


def shown_report() -> str:
    """The report the README shows as printed (``$ orgproxy-report ...`` and what follows)."""
    shown = re.search(r"^```\n\$ orgproxy-report .*?\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    assert shown, "the README shows no report"
    return shown.group(1)


def test_every_shell_and_python_block_runs_as_written(served: Daemon, upstream: FakeUpstream, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", TOKEN)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    directory = tmp_path / "reader"
    directory.mkdir()
    namespace: dict[str, object] = {"__name__": "__readme__"}
    ran = []
    printed = ""
    for block in blocks():
        if block.not_run is None:
            printed += (run_shell if block.language == "shell" else run_python)(
                block, served, directory if block.language == "shell" else namespace)  # type: ignore[arg-type]
            ran.append(block.line)
    assert ran
    assert shown_report() in printed  # the report shown is what the README's command prints
    # They did reach the daemon, and it OpenAI: nothing above was answered by anyone else.
    assert len(upstream.received) >= len(ran)
    assert (directory / "costs.csv").stat().st_size > 0 and (directory / "costs.svg").stat().st_size > 0
    # Anthropic's examples reached the fake Anthropic, and named what they asked for.
    anthropic = [r for r in upstream.received if r.target.startswith(b"/v1/organizations/usage_report/")]
    assert anthropic and b"api_key_ids[]=apikey_01Rj2N8SVvo6BePZj99NhmiT" in b" ".join(r.target for r in anthropic)
    costs = (directory / "anthropic-costs.csv").read_text().splitlines()
    assert costs[0] == "date,workspace_name,workspace_id,cost" and {line.split(",")[1] for line in costs[1:]} == {
        "Billing", "Default", "Platform"}
    # The report and the FOCUS export read Anthropic's analytics API, per key, for both vendors.
    analytics = [r for r in upstream.received if r.target.startswith(b"/v1/organizations/analytics/")]
    assert {r.target.split(b"?")[0] for r in analytics} == {b"/v1/organizations/analytics/cost",
                                                          b"/v1/organizations/analytics/usage"}
    assert all(r.header("anthropic-beta") == "analytics-usage-cost-2026-08-24" for r in analytics)
    focus = (directory / "ai-costs.csv").read_text().splitlines()
    assert focus[0].startswith("AllocatedMethodDetails,") and any(",Anthropic," in line for line in focus[1:])
