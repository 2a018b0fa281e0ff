"""orgproxy-report at scale: how much memory and time a month of daily costs for thousands
of keys takes, and whether twice the rows take twice the time.

    make bench-report                                       # 5,000 and 10,000 keys: a few minutes
    make bench-report BENCH_ARGS="--keys 1000 --runs focus"
    .venv/bin/python bench/report_bench.py --help

A fake on 127.0.0.1 (bench/report_pages.py) serves October 2026 for ``--keys`` keys of each
vendor (one row per key and day: 5,000 keys are 155,000 rows a vendor), made page by page
as asked, with the names orgproxy would put beside the ids. For each run the installed
``orgproxy-report`` is started as users start it, both vendors at once
(``costs --provider all``), against the fake; the bench waits for it with ``wait4`` and
prints its peak RSS (ru_maxrss), its wall time and its CPU time (user and system), then the
same for twice the keys, and the ratio of the times. On a machine shared with other work the
wall time measures the neighbours too: the ratio that is checked is the CPU time's. Runs:

- ``focus``: FOCUS 1.4 CSV to a file (``--format focus --output``);
- ``parquet``: FOCUS 1.4 Parquet (``--format focus-parquet``; needs pyarrow);
- ``csv``: the report per key name and day (``--format csv``);
- ``table``: the report's table of totals per key name.

Exit status 0 when every run of ``--keys`` keys stayed under ``--max-rss`` MiB (the target:
a month of 5,000 keys) and twice the keys took at most ``--max-ratio`` times the CPU time,
1 otherwise. Nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report_pages import PageServer  # noqa: E402

REPORT = Path(sys.executable).with_name("orgproxy-report")
MONTH = ("--since", "2026-10-01", "--until", "2026-11-01")
ACCOUNTS = ("--billing-account-id", "openai=org-BENCH", "--billing-account-name", "Bench Corp")
RUNS = {
    "focus": ("--format", "focus", *ACCOUNTS, "--output", "{out}/costs.csv"),
    "parquet": ("--format", "focus-parquet", *ACCOUNTS, "--output", "{out}/costs.parquet"),
    "csv": ("--format", "csv", "--output", "{out}/report.csv"),
    "table": ("--output", "{out}/report.txt"),
}


@dataclass(frozen=True)
class Measured:
    keys: int
    seconds: float  # wall
    cpu_seconds: float  # user and system
    peak_mib: float
    written_mib: float


def run_report(name: str, keys: int, server: PageServer, work: Path) -> Measured:
    out = work / f"{name}-{keys}"
    out.mkdir()
    args = [a.format(out=out) for a in RUNS[name]]
    env = {**os.environ, "OPENAI_ADMIN_KEY": "sk-admin-bench", "ANTHROPIC_ADMIN_KEY": "sk-ant-admin01-bench"}
    env.pop("ORGPROXY_URL", None)
    started = time.perf_counter()
    child = subprocess.Popen([str(REPORT), "costs", "--provider", "all", *MONTH, *args, "--proxy", server.url],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"orgproxy-report {name} ({keys} keys) exited {child.returncode}: {error}")
    written = sum(f.stat().st_size for f in out.iterdir())
    for f in out.iterdir():
        f.unlink()
    out.rmdir()
    return Measured(keys, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,  # ru_maxrss: KiB
                    written / 2**20)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--keys", type=int, default=5000, help="keys of each vendor in the smaller run [5000]")
    options.add_argument("--runs", default=",".join(RUNS), help=f"which, comma-separated: {', '.join(RUNS)}")
    options.add_argument("--max-rss", type=float, default=150, help="peak RSS allowed, MiB [150]")
    options.add_argument("--max-ratio", type=float, default=2.2, help="time allowed for twice the rows [2.2]")
    args = options.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown or not REPORT.exists():
        raise SystemExit(f"unknown runs {unknown}" if unknown else f"{REPORT} is not installed: make .venv/.installed")
    print(f"orgproxy-report, a month of daily costs, both vendors; Python {platform.python_version()},"
          f" {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{'run':8} {'keys':>6} {'rows':>8} {'wall s':>7} {'CPU s':>7} {'rows/CPU s':>10} {'peak RSS MiB':>13}"
          f" {'written MiB':>12}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="orgproxy-report-bench-") as work:
        for name in runs:
            measured = []
            for keys in (args.keys, 2 * args.keys):
                server = PageServer(keys).start()
                try:
                    result = run_report(name, keys, server, Path(work))
                finally:
                    server.shutdown()
                    server.server_close()
                rows = 2 * 31 * keys
                print(f"{name:8} {keys:>6} {rows:>8} {result.seconds:>7.1f} {result.cpu_seconds:>7.1f}"
                      f" {rows / result.cpu_seconds:>10,.0f} {result.peak_mib:>13.1f} {result.written_mib:>12.1f}",
                      flush=True)
                measured.append(result)
                ok &= keys != args.keys or result.peak_mib < args.max_rss
            ratio = measured[1].cpu_seconds / measured[0].cpu_seconds
            ok &= ratio <= args.max_ratio
            print(f"{name:8} twice the rows: {ratio:.2f} times the CPU time (at most {args.max_ratio}),"
                  f" {measured[1].seconds / measured[0].seconds:.2f} times the wall time", flush=True)
    print("ok" if ok else f"FAILED: a peak RSS of {args.max_rss} MiB or more for {args.keys} keys,"
                          f" or a CPU ratio over {args.max_ratio}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
