"""``make run``: it installs only what running needs, and passes ``ARGS`` to the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from tests.conftest import ROOT
from tests.support.daemon import READY, daemon_env, free_port
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
    args = f"--port tcp:{port}:interface=127.0.0.1 --upstream {upstream.url} --state-dir {tmp_path / 'state'}"
    # -o: the venv counts as installed (the suite runs on it), so make only runs the daemon.
    running = subprocess.Popen(["make", "-C", str(ROOT), "-o", ".venv/.package", "run", f"ARGS={args}"],
                               env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert running.stdout is not None
        for line in running.stdout:
            lines.append(line)
            if READY in line:
                ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "".join(lines)
        assert f"orgproxy serving on tcp:{port}:interface=127.0.0.1, forwarding /v1/organization/ to {upstream.url}" \
            in "".join(lines)
        assert call(f"http://127.0.0.1:{port}", "/health").status == 200
        assert (tmp_path / "state" / "history.sqlite3").is_file()
    finally:
        os.killpg(running.pid, signal.SIGTERM)  # make and the daemon it started
        running.wait(30)
        reader.join(5)
    assert "Traceback" not in "".join(lines)
