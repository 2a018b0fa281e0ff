"""orgproxy's own benchmark: how fast and how big is the daemon on this machine?

    make bench                                   # the defaults: about 40 s
    make bench BENCH_ARGS="--sizes small --duration 3"
    .venv/bin/python bench/bench.py --help       # the options
    .venv/bin/python bench/bench.py --sizes small,medium --duration 10 --connections 64
    .venv/bin/python bench/bench.py --orgproxy-args "--workers 2 --cache-ttl 5"

What it does, all on 127.0.0.1 and all cleaned up afterwards:

1. starts a fake OpenAI (bench/fakeupstream.py) serving three precomputed usage pages,
   chosen by a ``size=`` query parameter: small (1 bucket x 3 rows), medium (7 x 50,
   ~120 KB) and large (31 x 1000, ~10 MB), generated deterministically (bench/pages.py)
   with ids ``key_%016x``, half of them named in a generated TOML alias file;
2. starts the daemon exactly as users do, ``.venv/bin/twistd --nodaemon --pidfile=
   orgproxy --port ... --upstream <fake> --aliases <generated file>`` (plus
   --orgproxy-args), in a temporary directory, and waits for "orgproxy serving on";
3. checks one medium page through it: every row named in the alias file must come back
   with that ``api_key_name`` (and every other row with one too), or it stops here;
4. for each page size, drives load directly at the fake upstream (the ceiling of this
   machine and harness) and then through orgproxy: --connections keep-alive connections
   in a closed loop for --duration seconds, after a --warmup not counted. The load
   generator is wrk when it is on PATH, else bench/loadgen.py (asyncio, raw HTTP/1.1);
   either runs in a process of its own;
5. prints, per size and target: requests/s, latency p50/p90/p99 in ms (per request, first
   byte sent to last byte received, under that many concurrent connections), the
   errors, the CPU used by the daemon / the fake upstream / the load generator (% of one
   core), and the daemon's peak RSS so far (VmHWM) and current RSS (VmRSS) from
   /proc/<pid>/status;
6. waits until the daemon has been idle past its --idle-trim delay (the default, or the one
   given in --orgproxy-args), then prints its RSS then ("RSS after the burst, idle") beside
   its RSS before any request and after the sanity check's page (warm); then stops the
   daemon with SIGTERM and checks it exited 0.

To measure an orgproxy you started yourself (your own options, build or host), point it
at a fake upstream and give its URL:

    .venv/bin/python bench/fakeupstream.py --port 18999 --write-aliases /tmp/bench-aliases.toml &
    .venv/bin/twistd -n --pidfile= orgproxy --port tcp:18080:interface=127.0.0.1 \\
        --upstream http://127.0.0.1:18999 --aliases /tmp/bench-aliases.toml &
    .venv/bin/python bench/bench.py --proxy http://127.0.0.1:18080 --pid $! \\
        --upstream-url http://127.0.0.1:18999

With --proxy nothing is started; direct numbers need --upstream-url, and CPU/RSS figures
need --pid (the idle RSS assumes that daemon's --idle-trim is the default; --idle-wait
says otherwise). Exit status: 0 when every check passed and no request failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pages  # noqa: E402

READY = "orgproxy serving on"
AUTH = "Authorization: Bearer sk-admin-bench"  # the fake upstream accepts any key
PATH = "/v1/organization/usage/completions"
DEFAULT_QUERY = "start_time=1730419200&group_by=api_key_id"
CLK_TCK = os.sysconf("SC_CLK_TCK")
OWN_OPTIONS = {"--port", "-p", "--upstream", "-u", "--aliases", "-a"}
# The daemon's --idle-trim default (orgproxy.ops.memory.IDLE_TRIM_DELAY), written here
# too: the benchmark imports nothing of the daemon's, so that it measures any orgproxy.
IDLE_TRIM_DEFAULT = 5.0


class BenchError(Exception):
    """Something that makes the numbers meaningless: reported, exit status 1."""


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
# Plain requests (checks, settling), not timed


def get(base: str, target: str, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"only http:// URLs can be measured, not {base!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", target, headers={"Authorization": AUTH.split(": ", 1)[1]})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"GET {base}{target}: {e!r}") from None
    finally:
        connection.close()


def page_target(size: str, query: str) -> str:
    return f"{PATH}?{query}&size={size}"


def sanity_check(proxy: str, strict: bool) -> str:
    """One medium page through the proxy: every row gets api_key_name, and the named ones
    the alias file's name. Returns a one-line summary; raises BenchError otherwise."""
    status, headers, body = get(proxy, page_target("medium", DEFAULT_QUERY))
    if status != 200:
        raise BenchError(f"sanity check: the medium page through {proxy} answered {status}: {body[:300]!r}")
    try:
        document = json.loads(body)
        rows = [row for bucket in document["data"] for row in bucket["results"]]
    except (ValueError, KeyError, TypeError) as e:
        raise BenchError(f"sanity check: the medium page through {proxy} is not a usage page: {e!r}") from None
    expected = pages.aliases()
    wanted_rows = pages.SIZES["medium"][0] * pages.SIZES["medium"][1]
    if len(rows) != wanted_rows:
        raise BenchError(f"sanity check: {len(rows)} rows through {proxy}, the page has {wanted_rows}")
    missing = [row.get("api_key_id") for row in rows if "api_key_name" not in row]
    if missing:
        raise BenchError(f"sanity check: {len(missing)} of {len(rows)} rows came back without api_key_name"
                         f" (first: {missing[0]!r}); is {proxy} an orgproxy?")
    wrong = [(row["api_key_id"], row["api_key_name"]) for row in rows
             if row["api_key_id"] in expected and row["api_key_name"] != expected[row["api_key_id"]]]
    named = sum(1 for row in rows if row["api_key_id"] in expected)
    unknown = sum(1 for row in rows if row["api_key_id"] not in expected and row["api_key_name"] == "unknown")
    if wrong:
        message = (f"sanity check: {len(wrong)} of the {named} rows named in the alias file came back"
                   f" with another name (first: {wrong[0][0]} -> {wrong[0][1]!r},"
                   f" expected {expected[wrong[0][0]]!r})")
        if strict:
            raise BenchError(message)
        return f"WARNING: {message}; is the proxy using bench/fakeupstream.py --write-aliases' file?"
    return (f"medium page through orgproxy: {len(rows)} rows, all with api_key_name;"
            f" {named} named as the alias file says, {unknown} \"unknown\"")


def in_flight(proxy: str) -> int | None:
    try:
        status, _, body = get(proxy, "/metrics", timeout=10)
    except BenchError:
        return None
    match = re.search(rb"^orgproxy_requests_in_flight\s+([0-9.eE+]+)\s*$", body, re.MULTILINE)
    return int(float(match.group(1))) if status == 200 and match else None


def settle(proxy: str, timeout: float = 60.0) -> None:
    """Wait (bounded) until the daemon has no request in flight, so runs do not overlap."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = in_flight(proxy)
        if count is None:  # no /metrics: a fixed pause instead
            time.sleep(1.0)
            return
        if count == 0:
            time.sleep(0.2)
            return
        time.sleep(0.2)
    raise BenchError(f"{proxy} still had requests in flight {timeout:g} s after a run")


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


# ---------------------------------------------------------------------------------------
# Load: bench/loadgen.py (asyncio) or wrk


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


# ---------------------------------------------------------------------------------------
# The runs and the table


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


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_cpu(cpu: dict[str, float | None]) -> str:
    return "/".join("-" if cpu.get(k) is None else f"{cpu[k]:.0f}" for k in ("proxy", "upstream", "gen"))


def fmt_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) if errors else "0"


def table(rows: list[Row], page_bytes: dict[str, int]) -> str:
    header = ["size", "page", "via", "req/s", "p50 ms", "p90 ms", "p99 ms", "requests", "errors",
              "CPU% proxy/upstream/gen", "peak RSS MiB", "RSS MiB"]
    lines = []
    for row in rows:
        r = row.result
        mem = row.memory
        lines.append([
            row.size, _human_bytes(page_bytes.get(row.size)), row.via, fmt_rate(r.get("rps")),
            fmt_ms(r.get("p50_ms")), fmt_ms(r.get("p90_ms")), fmt_ms(r.get("p99_ms")),
            f"{r.get('requests', 0):,}", fmt_errors(r.get("errors", {})), fmt_cpu(row.cpu),
            "-" if mem is None else f"{mem[0] / 1024:.1f}", "-" if mem is None else f"{mem[1] / 1024:.1f}",
        ])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    left = {0, 1, 2, 8}

    def render(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def machine() -> str:
    model = ""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = match.group(1).strip() if match else ""
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0))
    versions = []
    for package in ("orgproxy", "twisted"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    parts = [f"nproc {usable}" + (f" (of {os.cpu_count()})" if os.cpu_count() != usable else ""),
             model, f"{platform.system()} {platform.release()}",
             f"Python {platform.python_version()} ({platform.python_implementation()})", *versions]
    return ", ".join(p for p in parts if p)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark orgproxy against a fake upstream: requests/s, latency, CPU and RSS.",
        epilog="See the docstring of bench/bench.py for measuring an orgproxy you started yourself.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds timed per run (default 5; whole seconds with wrk)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of load before each run, not counted (default 1; 0: none)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (default 16)")
    parser.add_argument("--sizes", default="small,medium,large",
                        help="page sizes to run, comma-separated: small,medium,large (default: all three)")
    parser.add_argument("--orgproxy-args", default="", metavar="ARGS",
                        help='extra options for the daemon, one shell-quoted string, e.g. "--log-level warn"')
    parser.add_argument("--proxy", metavar="URL", help="measure this running orgproxy instead of starting one")
    parser.add_argument("--pid", type=int, help="with --proxy: its process id, for CPU and RSS figures")
    parser.add_argument("--upstream-url", metavar="URL",
                        help="use this running upstream (serving the bench's pages by size=) instead of"
                             " starting bench/fakeupstream.py; with --proxy, enables the direct rows")
    parser.add_argument("--loadgen", choices=("auto", "python", "wrk"), default="auto",
                        help="load generator: wrk if on PATH, else bench/loadgen.py (default: auto)")
    parser.add_argument("--query", default=DEFAULT_QUERY,
                        help=f"query string of the timed requests, before &size= (default: {DEFAULT_QUERY})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for one answer (default 60)")
    parser.add_argument("--idle-wait", type=float, metavar="SECONDS",
                        help="seconds idle after the runs before the idle RSS is read (default: the daemon's"
                             f" --idle-trim, {IDLE_TRIM_DEFAULT:g} unless --orgproxy-args gives one); 0: not read")
    # "--orgproxy-args --workers 2" would read as two options: glue the value on.
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--orgproxy-args":
            argv[i:i + 2] = [f"--orgproxy-args={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    try:
        args.size_list = pages.parse_sizes(args.sizes)
    except ValueError as e:
        parser.error(str(e))
    if args.duration <= 0 or args.connections < 1 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--duration, --connections and --timeout must be positive, --warmup not negative")
    try:
        args.extra = shlex.split(args.orgproxy_args)
    except ValueError as e:
        parser.error(f"--orgproxy-args: {e}")
    clash = [a for a in args.extra if a.split("=", 1)[0] in OWN_OPTIONS]
    if clash:
        parser.error(f"--orgproxy-args: {clash[0]} is set by the benchmark itself")
    if args.proxy and args.extra:
        parser.error("--orgproxy-args applies to the daemon the benchmark starts, not to --proxy")
    if args.pid is not None and not args.proxy:
        parser.error("--pid goes with --proxy")
    if args.idle_wait is None:
        try:
            args.idle_wait = idle_trim_delay(args.extra)
        except ValueError:
            parser.error("--orgproxy-args: --idle-trim takes seconds")
    if args.idle_wait < 0:
        parser.error("--idle-wait must not be negative")
    for name in ("proxy", "upstream_url"):
        value = getattr(args, name)
        if value:
            parts = urlsplit(value)
            if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
                parser.error(f"--{name.replace('_', '-')} takes a base URL like http://127.0.0.1:18080, not {value!r}")
            setattr(args, name, value.rstrip("/"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk") if args.loadgen in ("auto", "wrk") else None
    if args.loadgen == "wrk" and not wrk:
        print("bench: --loadgen wrk, but wrk is not on PATH", file=sys.stderr)
        return 1
    if wrk:  # wrk takes whole seconds
        args.duration = max(1, round(args.duration))
        args.warmup = max(1, round(args.warmup)) if args.warmup > 0 else 0
    bench = Bench(args, wrk)

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    print("orgproxy benchmark", flush=True)
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine:  {machine()}")
    generator = f"wrk ({wrk}, 1 thread)" if wrk else "bench/loadgen.py (asyncio, 1 process)"
    print(f"load:     {generator}, {args.connections} connections, {args.duration:g} s per run after"
          f" {args.warmup:g} s warm-up; GET {page_target('<size>', args.query)}")

    upstream_process = daemon = None
    daemon_log: Path | None = None
    failed = False
    workdir = Path(tempfile.mkdtemp(prefix="orgproxy-bench-"))
    try:
        page_bytes = {size: len(pages.page(size)) for size in args.size_list}
        upstream = args.upstream_url
        if upstream is None and not args.proxy:
            served = list(dict.fromkeys([*args.size_list, "medium"]))  # medium: the sanity check's
            upstream_process, upstream = start_upstream(served, workdir / "upstream.log")
            bench.upstream_pid = upstream_process.pid
            print(f"upstream: bench/fakeupstream.py on {upstream} (pid {upstream_process.pid})")
        elif upstream:
            print(f"upstream: {upstream} (already running)")
        else:
            print("upstream: the one --proxy forwards to; no direct rows (add --upstream-url)")
        proxy = args.proxy
        if proxy is None:
            aliases = workdir / "aliases.toml"
            aliases.write_text(pages.alias_toml())
            daemon, proxy, command, daemon_log = start_daemon(workdir, upstream, aliases, args.extra)
            bench.daemon_pid = daemon.pid
            print(f"daemon:   {shlex.join(command)}")
            print(f"          (pid {daemon.pid}, cwd {workdir})")
        else:
            bench.daemon_pid = args.pid
            print(f"daemon:   {proxy} (already running{f', pid {args.pid}' if args.pid else ''})")
        start_memory = memory_kib(bench.daemon_pid)
        if start_memory:
            print(f"          RSS before any request: {start_memory[1] / 1024:.1f} MiB")
        print(f"sanity:   {sanity_check(proxy, strict=args.proxy is None)}", flush=True)
        warm_memory = memory_kib(bench.daemon_pid)

        for size in args.size_list:
            if upstream:
                row = bench.measure(size, "direct", upstream, proxy=False)
                print(f"  {size:<6} direct   {fmt_rate(row.result['rps']):>8} req/s", flush=True)
            row = bench.measure(size, "orgproxy", proxy, proxy=True)
            print(f"  {size:<6} orgproxy {fmt_rate(row.result['rps']):>8} req/s", flush=True)

        print()
        print(table(bench.rows, page_bytes))
        print()
        for size in args.size_list:
            by_via = {row.via: row.result for row in bench.rows if row.size == size}
            if "direct" in by_via and by_via["direct"].get("rps") and by_via["orgproxy"].get("p50_ms") is not None:
                d, o = by_via["direct"], by_via["orgproxy"]
                print(f"{size}: through orgproxy {100 * o['rps'] / d['rps']:.1f}% of direct req/s;"
                      f" p50 {fmt_ms(o['p50_ms'])} ms vs {fmt_ms(d['p50_ms'])} ms direct")
        if bench.daemon_pid is not None and args.idle_wait > 0 and start_memory and warm_memory:
            idle = idle_rss_kib(proxy, bench.daemon_pid, args.idle_wait)
            if idle is not None:
                print(f"RSS after the burst, idle: {idle / 1024:.1f} MiB, {args.idle_wait + 1:g} s after the last"
                      f" request; warm idle RSS: {start_memory[1] / 1024:.1f} MiB before any request,"
                      f" {warm_memory[1] / 1024:.1f} MiB after the first page")
        print(f"Latency is per request under {args.connections} concurrent connections (a closed loop:"
              f" p50 is about {args.connections} / req/s). CPU% is of one core, summed over the"
              " daemon's processes; each orgproxy process serves on one thread, so one near 100% is"
              " CPU-bound. Peak RSS is the highest since the daemon started (VmHWM), summed over its"
              " processes.")
        for row in bench.rows:
            if (row.cpu.get("gen") or 0) >= 90:
                print(f"NOTE: the load generator used {row.cpu['gen']:.0f}% of a core in {row.size}/{row.via}:"
                      " it may be what limits that row.")
            if row.result.get("requests", 0) < 100:
                print(f"NOTE: only {row.result.get('requests', 0)} requests in {row.size}/{row.via}: its"
                      " percentiles are rough; a longer --duration gives more.")
            if row.result.get("errors"):
                failed = True
                print(f"ERROR: {row.size}/{row.via}: failed requests {fmt_errors(row.result['errors'])}"
                      + (f" (first: {row.result['first_error']})" if row.result.get("first_error") else ""))
    except BenchError as e:
        failed = True
        sys.stdout.flush()
        print(f"\nbench: FAILED: {e}", file=sys.stderr)
        if daemon_log is not None and daemon_log.exists():
            print("last lines of the daemon's output:\n"
                  + "\n".join(daemon_log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
    except KeyboardInterrupt:
        failed = True
        sys.stdout.flush()
        print("\nbench: interrupted", file=sys.stderr)
    finally:
        if daemon is not None:
            code = stop_process(daemon, 30)
            if code != 0:
                failed = True
                sys.stdout.flush()
                print(f"bench: orgproxy exited with status {code} on SIGTERM (expected 0)", file=sys.stderr)
                if daemon_log is not None and daemon_log.exists():
                    print("\n".join(daemon_log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
            else:
                print("orgproxy stopped on SIGTERM with status 0.")
        if upstream_process is not None:
            stop_process(upstream_process, 10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
