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

This module is the command line: the options, the steps above in order, the exit status.
bench/README.md says which module holds which part, and what the figures were.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pages  # noqa: E402
from probes import DEFAULT_QUERY, BenchError, page_target, sanity_check  # noqa: E402
from processes import (IDLE_TRIM_DEFAULT, idle_rss_kib, idle_trim_delay, memory_kib,  # noqa: E402
                       start_daemon, start_upstream, stop_process)
from runs import Bench  # noqa: E402
from table import comparisons, fmt_rate, idle_line, legend, machine, row_notes, table  # noqa: E402

OWN_OPTIONS = {"--port", "-p", "--upstream", "-u", "--aliases", "-a"}


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
        for line in comparisons(bench.rows, args.size_list):
            print(line)
        if bench.daemon_pid is not None and args.idle_wait > 0 and start_memory and warm_memory:
            idle = idle_rss_kib(proxy, bench.daemon_pid, args.idle_wait)
            if idle is not None:
                print(idle_line(idle, args.idle_wait + 1, start_memory[1], warm_memory[1]))
        print(legend(args.connections))
        for row in bench.rows:
            for line in row_notes(row):
                print(line)
        failed = any(row.result.get("errors") for row in bench.rows)
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
