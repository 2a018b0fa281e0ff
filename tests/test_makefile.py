"""``make run``: it installs only what running needs, and passes ``ARGS`` to the daemon. ``make
demo``: the same, in front of the demo's fake organizations, which it serves and stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo.organization import anthropic_demo, first_day, openai_demo
from tests.conftest import ROOT
from tests.support.fake_usage import FakeUsage
from tests.support.daemon import SERVING, daemon_env, event_of, free_port
from tests.support.raw_http import call
from tests.support.tcp_upstream import FakeUpstream


def test_make_run_installs_the_package_and_its_dependencies_without_the_test_extra() -> None:
    # -n: what make would do from nothing (-B), printed, not done.
    planned = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-n", "-B", "run", "ARGS=--log-level debug"],
                             capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    installs = [line for line in planned if " install " in line and "--upgrade pip" not in line]
    assert installs and all(line.split()[-1] == "." for line in installs), installs  # no extra: not '.[test]'
    assert not [line for line in planned if "[test]" in line]
    assert planned[-1].split()[-3:] == ["etc/aliases.toml", "--log-level", "debug"]


def test_make_run_passes_args_to_the_daemon(upstream: FakeUpstream, tmp_path: Path) -> None:
    port = free_port()
    args = (f"--port tcp:{port}:interface=127.0.0.1 --upstream {upstream.url} --state-dir {tmp_path / 'state'}"
            " --log-format json")
    # -o: the venv counts as installed (the suite runs on it), so make only runs the daemon.
    running = subprocess.Popen(["make", "-C", str(ROOT), "-o", ".venv/.package", "run", f"ARGS={args}"],
                               env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    ready = threading.Event()
    lines: list[str] = []
    served: list[dict[str, Any]] = []

    def read() -> None:
        assert running.stdout is not None
        for line in running.stdout:
            lines.append(line)
            event = event_of(line)
            if event is not None and event.get("event") == SERVING:
                served.append(event)
                ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "".join(lines)
        assert (served[0]["port"], served[0]["upstream"]) == (f"tcp:{port}:interface=127.0.0.1", upstream.url)
        assert call(f"http://127.0.0.1:{port}", "/health").status == 200
        assert (tmp_path / "state" / "history.sqlite3").is_file()
    finally:
        os.killpg(running.pid, signal.SIGTERM)  # make and the daemon it started
        running.wait(30)
        reader.join(5)
    assert "Traceback" not in "".join(lines)



# --- make demo ---------------------------------------------------------------------------------

DEMO_LOOK_DEADLINE = 30.0  # seconds the demo's daemon has to show its first figures
T = TypeVar("T")


def test_make_demo_installs_no_test_extra_and_its_fakes_import_no_test_tool() -> None:
    planned = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-n", "-B", "demo"],
                             capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    installs = [line for line in planned if " install " in line and "--upgrade pip" not in line]
    assert installs and all(line.split()[-1] == "." for line in installs), installs
    assert planned[-1].split()[-4:] == ["-m", "demo", "--port", "18080"]
    imported = subprocess.run([sys.executable, "-c", "import sys, demo.upstream, demo.__main__; print(sorted("
                               "m for m in ('pytest', 'hypothesis', 'selenium', 'openai') if m in sys.modules))"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert imported.stdout.strip() == "[]", imported.stdout + imported.stderr


def poll(what: str, look: Callable[[], T | None]) -> T:
    """``look()``'s first answer that is not None: the demo is another process, whose progress
    (discovery, the first cost refresh) only its pages tell."""
    deadline = time.monotonic() + DEMO_LOOK_DEADLINE
    while (found := look()) is None:
        assert time.monotonic() < deadline, f"no {what} within {DEMO_LOOK_DEADLINE} s"
        time.sleep(0.1)
    return found


def month_to_date(base: str) -> tuple[dict[str, dict[str, str]], float] | None:
    """(provider -> api_key_id -> api_key_name of every month-to-date cost series, OpenAI's
    refresh's time) on /metrics; None before both providers' first refresh."""
    body = call(base, "/metrics").body.decode()
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    names: dict[str, dict[str, str]] = {}
    for s in samples:
        if s.name == "orgproxy_cost_month_to_date_usd":
            names.setdefault(s.labels["provider"], {})[s.labels["api_key_id"]] = s.labels["api_key_name"]
    refreshed = {s.labels["provider"]: s.value for s in samples
                 if s.name == "orgproxy_cost_refresh_timestamp_seconds" and s.value > 0}
    return (names, refreshed["openai"]) if set(names) == set(refreshed) == {"openai", "anthropic"} else None


def discovered_by_both(base: str) -> dict[str, Any] | None:
    providers = json.loads(call(base, "/health").body)["providers"]
    done = all(providers[name]["discovery"]["last_success"] for name in ("openai", "anthropic"))
    return providers if done else None


def test_make_demo_shows_named_costs_and_both_providers_discovery_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    running = subprocess.Popen(["make", "-C", str(ROOT), "-o", ".venv/.package", "demo", f"DEMO_PORT={port}",
                                f"ARGS=--state-dir {tmp_path / 'state'}"], env=daemon_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    dashboard = threading.Event()

    def read() -> None:
        assert running.stdout is not None
        for line in running.stdout:
            lines.append(line)
            if f"the dashboard is at {base}/orgproxy/" in line:
                dashboard.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert dashboard.wait(60), "".join(lines)
        providers = poll("discovery of both providers", lambda: discovered_by_both(base))
        names, refreshed = poll("cost series", lambda: month_to_date(base))  # named as of now
        shown = json.loads(call(base, "/orgproxy/costs.json").body)
        page = call(base, "/orgproxy/")
    finally:
        os.killpg(running.pid, signal.SIGINT)  # Ctrl-C: make and the demo (which stops the daemon)
        running.wait(30)
        reader.join(30)
    output = "".join(lines)
    # The demo's own organization, counted here from its data: every key with costs this month,
    # the rotated ones under one name, a deleted one by the name discovery saw, the unlisted
    # ones "unknown".
    today = datetime.fromtimestamp(refreshed, UTC).date()
    demo = openai_demo(today)
    usage = FakeUsage(since=first_day(today), until=today + timedelta(days=1), keys=demo.keys)
    this_month = {row.api_key_id for row in usage.costs_rows if row.day >= today.replace(day=1)}
    assert names["openai"] == {key: demo.names.get(key, "unknown") for key in this_month}
    assert len(set(names["openai"].values())) < len(names["openai"]) and "unknown" in names["openai"].values()
    # Anthropic's, from its analytics API: its keys with costs this month, and the Console's.
    anthropic = anthropic_demo(today)
    spent = {e.dimensions["api_key_id"] for e in anthropic.costs if e.day >= today.replace(day=1).isoformat()}
    assert names["anthropic"] == {key or "": anthropic.names[key] if key else "Console" for key in spent}
    assert providers["anthropic"]["discovery"]["names"] > 0 and providers["openai"]["discovery"]["names"] > 0
    # The dashboard: both providers' blocks, with the demo's names, and its budgets (one over).
    assert page.status == 200 and b'<section class="provider" id="anthropic"' in page.body
    for provider in ("openai", "anthropic"):
        labels = {key["label"] for key in shown["providers"][provider]["keys"]}
        named = {name for name in names[provider].values() if name != "unknown"}
        assert named <= labels and len(named) >= 6, (provider, named - labels)
        assert len(shown["providers"][provider]["daily"]["series"]) == 9  # the top 8 and other
    assert {line["api_key_name"] for line in shown["budgets"] if line["over"]} >= {"storefront-staging"}
    assert "orgproxy demo: stopped (the daemon exited with 0)" in output, output
    assert "Traceback" not in output, output
    with pytest.raises(ConnectionRefusedError):
        call(base, "/health")
