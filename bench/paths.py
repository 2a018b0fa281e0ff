"""The daemon's faster paths, each timed beside what it replaces, in this process on the
benchmark's pages (no daemon, no socket): why each exists, in figures.

    .venv/bin/python bench/paths.py                 # every page size, best of 5
    .venv/bin/python bench/paths.py --sizes large --repeat 3

- validation: simdjson's (``body/validate.py``) against ``orjson.loads``;
- the large page cut into its pieces: one ``struct.unpack`` (``body/runs.py``) against
  slicing piece by piece;
- the access line: ``ClassicText`` (``infra/logs.py``) against Twisted's own
  ``formatEventAsClassicLogText``;
- the memory a simdjson parser keeps after a large page: the one reused for small bodies,
  had it parsed the large one, against a parser of the body's own, let go at once.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import simdjson
from twisted.logger import LogLevel, formatEventAsClassicLogText

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pages import SIZES, page, parse_sizes  # noqa: E402

from orgproxy.body.insertion import OPENAI  # noqa: E402
from orgproxy.body.runs import cut, id_member_runs  # noqa: E402
from orgproxy.body.validate import validity  # noqa: E402
from orgproxy.infra.logs import ClassicText  # noqa: E402


def best_of(call: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` calls, in seconds (after one not counted)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def shown(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def row(what: str, size: str, ours: float, theirs: float) -> None:
    print(f"{what:<28} {size:<7} {shown(ours):>12} {shown(theirs):>12} {theirs / ours:>7.1f}x")


def slicing(body: bytes, bounds: list[int]) -> list[bytes]:
    edges = [0, *bounds, len(body)]
    return [body[start:end] for start, end in zip(edges, edges[1:])]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def kept_by_a_parser(body: bytes, let_go: bool) -> int:
    """RSS held after a simdjson parser has validated ``body`` (and, with ``let_go``, been
    dropped), over what was held before."""
    gc.collect()
    before = rss_bytes()
    parser = simdjson.Parser()
    parser.parse(body)
    if let_go:
        del parser
        gc.collect()
        return rss_bytes() - before
    held = rss_bytes() - before
    del parser
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=list(SIZES), help="page sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls of each, the fastest counts")
    options = parser.parse_args()
    print(f"{'':<28} {'page':<7} {'this path':>12} {'replaced':>12} {'gain':>8}")
    for size in options.sizes:
        body = page(size)
        row("validation (vs orjson)", size, best_of(lambda: validity(body), options.repeat),
            best_of(lambda: orjson.loads(body), options.repeat))
        bounds = id_member_runs(body, OPENAI.table)
        if bounds is not None and bounds.size:
            listed = bounds.tolist()
            row(f"cut into {len(listed) + 1:,} pieces", size, best_of(lambda: cut(body, bounds), options.repeat),
                best_of(lambda: slicing(body, listed), options.repeat))
    line = "GET /v1/organization/usage/completions -> 200 (12.3 ms, 7 named, 3 unknown)"
    event = {"log_format": "{line}", "line": line, "log_level": LogLevel.info, "log_namespace": "orgproxy",
             "log_time": time.time()}
    text = ClassicText()
    row("access line (vs Twisted's)", "-", best_of(lambda: [text(event) for _ in range(1000)], options.repeat) / 1000,
        best_of(lambda: [formatEventAsClassicLogText(event) for _ in range(1000)], options.repeat) / 1000)
    if "large" in options.sizes:
        large = page("large")
        kept = [kept_by_a_parser(large, let_go) for let_go in (False, True)]
        print(f"simdjson's buffers after a {len(large) / 1e6:.1f} MB page: kept by a reused parser"
              f" {kept[0] / 2**20:.1f} MiB, by one let go {kept[1] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
