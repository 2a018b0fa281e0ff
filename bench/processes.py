"""The processes the benchmark starts, stops and measures: CPU time, RSS, idle RSS.

The fake upstream and the daemon are started as users start them, in processes of their
own with none of this shell's ``ORGPROXY_*`` settings or admin keys; each is stopped with
SIGTERM (SIGKILL if it does not stop). Their CPU time and memory are read from
``/proc/<pid>/stat`` and ``/proc/<pid>/status``, summed over the process and its
descendants (the daemon's workers).
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from probes import BenchError, get, in_flight, settle

HERE = Path(__file__).resolve().parent
READY = "orgproxy serving on"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The daemon's --idle-trim default (orgproxy.ops.memory.IDLE_TRIM_DELAY), written here
# too: the benchmark imports nothing of the daemon's, so that it measures any orgproxy.
IDLE_TRIM_DEFAULT = 5.0


# ---------------------------------------------------------------------------------------
# /proc: CPU time and memory of a process and its descendants


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo and len(tree) < 1000:  # bounded
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process and its descendants; None when unreadable."""
    if pid is None:
        return None
    total, seen = 0.0, False
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        seen = True
    return total if seen else None


def memory_kib(pid: int | None) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) in KiB, summed over a process and its descendants."""
    if pid is None:
        return None
    hwm = rss = 0
    seen = False
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        values = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB$", status, re.MULTILINE))
        if values:
            hwm += int(values.get("VmHWM", 0))
            rss += int(values.get("VmRSS", 0))
            seen = True
    return (hwm, rss) if seen else None


# ---------------------------------------------------------------------------------------
# The processes the benchmark starts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    # No ORGPROXY_* setting of this shell, and no admin key (discovery would call the
    # fake upstream's admin endpoints, or Anthropic's real ones), reaches the daemon.
    return {k: v for k, v in os.environ.items()
            if not k.startswith("ORGPROXY_") and k not in ("OPENAI_ADMIN_KEY", "OPENAI_BASE_URL", "ANTHROPIC_ADMIN_KEY")}


def start_upstream(sizes: list[str], log: Path, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, str(HERE / "fakeupstream.py"), "--port", "0", "--sizes", ",".join(sizes)]
    with open(log, "wb") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=clean_env())
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
        elif process.poll() is not None:
            break
    match = re.search(rb"listening on (http://127\.0\.0\.1:\d+)", line)
    if not match:
        stop_process(process, 5)
        raise BenchError(f"the fake upstream did not start: {line!r} {log.read_text()[-2000:]}")
    process.stdout.close()
    return process, match.group(1).decode()


def start_daemon(workdir: Path, upstream: str, aliases: Path, extra: list[str],
                 timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str, list[str], Path]:
    twistd = Path(sys.executable).with_name("twistd")
    if not twistd.exists():
        raise BenchError(f"{twistd} not found: run `make bench` (it installs orgproxy into .venv)")
    port = free_port()
    command = [str(twistd), "--nodaemon", "--pidfile=", "orgproxy",
               "--port", f"tcp:{port}:interface=127.0.0.1", "--upstream", upstream,
               "--aliases", str(aliases), *extra]
    log = workdir / "orgproxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=clean_env())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if READY in log.read_text(errors="replace"):
            return process, url, command, log
        if process.poll() is not None:
            break
        # With --log-level warn or error the "serving" line is not logged: /health answering
        # says the same.
        if time.monotonic() > deadline - timeout + 2 and _health_ok(url):
            return process, url, command, log
        time.sleep(0.05)
    code = stop_process(process, 10)
    raise BenchError(f"orgproxy did not start (exit status {code}); its output:\n"
                     + log.read_text(errors="replace")[-3000:])


def _health_ok(base: str) -> bool:
    try:
        return get(base, "/health", timeout=2)[0] == 200
    except BenchError:
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; the exit status (negative: a signal)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            return None  # did not stop on SIGTERM
    return process.returncode


# ---------------------------------------------------------------------------------------
# Idle RSS: the daemon's size once its idle trim has run


def idle_trim_delay(extra: list[str]) -> float:
    """The --idle-trim the daemon runs with: the last one in its options, else the default."""
    delay = IDLE_TRIM_DEFAULT
    for i, arg in enumerate(extra):
        if arg == "--idle-trim" and i + 1 < len(extra):
            delay = float(extra[i + 1])
        elif arg.startswith("--idle-trim="):
            delay = float(arg.split("=", 1)[1])
    return delay


def idle_rss_kib(proxy: str, pid: int, wait: float, timeout: float = 60.0) -> int | None:
    """The daemon's RSS (KiB) once it has had no request in flight for ``wait`` seconds:
    its idle trim has run by then (a second more than its delay, for the timer's slack)."""
    settle(proxy, timeout)
    time.sleep(wait + 1.0)
    if in_flight(proxy) not in (0, None):
        raise BenchError(f"{proxy} had requests in flight while it should have been idle")
    memory = memory_kib(pid)
    return memory[1] if memory else None

