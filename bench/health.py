"""How long ``/health`` takes with many names in force: the daemon as users start it,
with a generated alias file of --names names, asked for ``/health`` --requests times on
one kept-alive connection; prints the median, p90 and max in ms.

    .venv/bin/python bench/health.py                      # 200,000 names, 200 requests
    .venv/bin/python bench/health.py --names 590000 --requests 50

Every figure ``/health`` shows is computed when a snapshot of the names is built, so the
time should not grow with the names.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from processes import free_port, start_daemon, stop_process  # noqa: E402


def write_aliases(path: Path, names: int) -> None:
    """A TOML alias file: a fifth of the names for projects and users each, the rest for keys."""
    tables = {"api_keys": ("key_%016x", names - 2 * (names // 5)), "projects": ("proj_%016x", names // 5),
              "users": ("user-%016x", names // 5)}
    with open(path, "w", encoding="utf-8") as f:
        for table, (pattern, count) in tables.items():
            f.write(f"[{table}]\n")
            f.writelines(f'{pattern % i} = "{table} {i}"\n' for i in range(count))


def health_times(url: str, requests: int) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    times = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise SystemExit(f"/health answered {response.status}")
    finally:
        connection.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=200_000, help="names in the alias file (default 200000)")
    parser.add_argument("--requests", type=int, default=200, help="/health requests timed (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orgproxy-health-") as directory:
        workdir = Path(directory)
        aliases = workdir / "aliases.toml"
        write_aliases(aliases, args.names)
        # Nothing is forwarded: the upstream is never asked.
        process, url, _, _ = start_daemon(workdir, f"http://127.0.0.1:{free_port()}", aliases, [], timeout=300)
        try:
            health_times(url, 5)  # warm up
            times = health_times(url, args.requests)
        finally:
            stop_process(process, 10)
    times.sort()
    print(f"/health with {args.names:,} names, {args.requests} requests: median {statistics.median(times):.2f} ms,"
          f" p90 {times[int(len(times) * 0.9)]:.2f} ms, max {times[-1]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
