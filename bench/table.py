"""What the benchmark prints: the machine, the table of runs, and the notes under it.

Pure formatting of ``Row``s; nothing here starts, measures or decides the exit status.
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

from runs import Row


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



def comparisons(rows: list[Row], sizes: list[str]) -> list[str]:
    """Per size with both rows: orgproxy's req/s as a share of direct's, and the two p50s."""
    lines = []
    for size in sizes:
        by_via = {row.via: row.result for row in rows if row.size == size}
        if "direct" in by_via and by_via["direct"].get("rps") and by_via["orgproxy"].get("p50_ms") is not None:
            d, o = by_via["direct"], by_via["orgproxy"]
            lines.append(f"{size}: through orgproxy {100 * o['rps'] / d['rps']:.1f}% of direct req/s;"
                         f" p50 {fmt_ms(o['p50_ms'])} ms vs {fmt_ms(d['p50_ms'])} ms direct")
    return lines


def idle_line(idle_kib: int, waited: float, start_kib: int, warm_kib: int) -> str:
    return (f"RSS after the burst, idle: {idle_kib / 1024:.1f} MiB, {waited:g} s after the last"
            f" request; warm idle RSS: {start_kib / 1024:.1f} MiB before any request,"
            f" {warm_kib / 1024:.1f} MiB after the first page")


def legend(connections: int) -> str:
    return (f"Latency is per request under {connections} concurrent connections (a closed loop:"
            f" p50 is about {connections} / req/s). CPU% is of one core, summed over the"
            " daemon's processes; each orgproxy process serves on one thread, so one near 100% is"
            " CPU-bound. Peak RSS is the highest since the daemon started (VmHWM), summed over its"
            " processes.")


def row_notes(row: Row) -> list[str]:
    """What a reader should doubt about one row: a busy load generator, too few requests,
    failed requests (ERROR: the benchmark then exits 1)."""
    lines = []
    if (row.cpu.get("gen") or 0) >= 90:
        lines.append(f"NOTE: the load generator used {row.cpu['gen']:.0f}% of a core in {row.size}/{row.via}:"
                     " it may be what limits that row.")
    if row.result.get("requests", 0) < 100:
        lines.append(f"NOTE: only {row.result.get('requests', 0)} requests in {row.size}/{row.via}: its"
                     " percentiles are rough; a longer --duration gives more.")
    if row.result.get("errors"):
        lines.append(f"ERROR: {row.size}/{row.via}: failed requests {fmt_errors(row.result['errors'])}"
                     + (f" (first: {row.result['first_error']})" if row.result.get("first_error") else ""))
    return lines
