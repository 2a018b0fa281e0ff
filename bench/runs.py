"""One timed run: the load (wrk, or bench/loadgen.py) at one URL, and what it cost.

The load generator runs in a process of its own, --connections keep-alive connections in
a closed loop for --duration seconds; its result (requests/s, latency percentiles, errors)
is read from wrk's text or loadgen.py's JSON. Around the timed part, the CPU time of the
daemon and the fake upstream is read, and after it (once settled) the daemon's memory: one
``Row`` per page size and target.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes import AUTH, BenchError, get, page_target, settle
from processes import cpu_seconds, memory_kib

HERE = Path(__file__).resolve().parent


def load_python(url: str, connections: int, duration: float, timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "loadgen.py"), "--url", url, "--connections", str(connections),
               "--duration", str(duration), "--timeout", str(timeout), "--header", AUTH, "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the load generator did not finish: {shlex.join(command)}") from None
    if done.returncode != 0:
        raise BenchError(f"the load generator failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _WRK_UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    result: dict[str, Any] = {"generator": "wrk", "errors": {}}
    for p in ("50", "90", "99"):
        match = re.search(rf"^\s*{p}(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE)
        result[f"p{p}_ms"] = _wrk_ms(match.group(1)) if match else None
    match = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),", output, re.MULTILINE)
    if not match:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    total = int(match.group(1))
    result["duration"] = _wrk_ms(match.group(2) + match.group(3)) / 1000
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    bad = int(non_2xx.group(1)) if non_2xx else 0
    if bad:
        result["errors"]["non-2xx"] = bad
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        for kind, value in zip(("connect", "read", "write", "timeout"), sockets.groups()):
            if int(value):
                result["errors"][kind] = int(value)
    result["requests"] = total - bad
    result["rps"] = result["requests"] / result["duration"] if result["duration"] else 0.0
    result["first_error"] = None
    return result


def load_wrk(wrk: str, url: str, connections: int, duration: float, timeout: float) -> dict[str, Any]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", f"--timeout={max(1, round(timeout))}s",
               "--latency", "-H", AUTH, url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish: {shlex.join(command)}") from None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    result = parse_wrk(done.stdout)
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result



@dataclass
class Row:
    size: str
    via: str
    result: dict[str, Any]
    cpu: dict[str, float | None] = field(default_factory=dict)  # % of one core
    memory: tuple[int, int] | None = None  # the daemon's (VmHWM, VmRSS) KiB after the run


@dataclass
class Bench:
    args: argparse.Namespace
    wrk: str | None
    daemon_pid: int | None = None
    upstream_pid: int | None = None
    rows: list[Row] = field(default_factory=list)

    def load(self, url: str, duration: float) -> dict[str, Any]:
        a = self.args
        if self.wrk:
            return load_wrk(self.wrk, url, a.connections, duration, a.timeout)
        return load_python(url, a.connections, duration, a.timeout)

    def measure(self, size: str, via: str, base: str, proxy: bool) -> Row:
        a = self.args
        target = page_target(size, a.query)
        status, _, body = get(base, target, timeout=a.timeout)  # one answer before timing
        if status != 200:
            raise BenchError(f"GET {base}{target} answered {status}: {body[:300]!r}")
        url = base + target
        if a.warmup > 0:
            self.load(url, a.warmup)
            if proxy:
                settle(base)
        started = time.monotonic()
        cpu_before = {"proxy": cpu_seconds(self.daemon_pid), "upstream": cpu_seconds(self.upstream_pid)}
        result = self.load(url, a.duration)
        cpu_after = {"proxy": cpu_seconds(self.daemon_pid), "upstream": cpu_seconds(self.upstream_pid)}
        wall = time.monotonic() - started
        cpu: dict[str, float | None] = {}
        for name in cpu_before:
            b, e = cpu_before[name], cpu_after[name]
            cpu[name] = 100 * (e - b) / wall if b is not None and e is not None else None
        cpu["gen"] = 100 * result["cpu_seconds"] / wall if result.get("cpu_seconds") is not None else None
        if not proxy:
            cpu["proxy"] = None
        row = Row(size, via, result, cpu)
        if proxy:
            settle(base)
            row.memory = memory_kib(self.daemon_pid)
        self.rows.append(row)
        return row
