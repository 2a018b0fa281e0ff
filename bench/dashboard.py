"""How long the dashboard (``GET /orgproxy/``, and ``costs.json``) takes to draw with many
names and many days: the daemon's own functions, in this process, on generated figures of
--names key names (half OpenAI's, half Anthropic's, each its own key and project or
workspace) with --days days of daily costs each, --budgets budgets and 500 ids nobody
named; each drawn --runs times; prints the median, p90 and max in ms, and the page's size.

    .venv/bin/python bench/dashboard.py                    # 2,000 names, 90 days, 50 runs
    .venv/bin/python bench/dashboard.py --names 200 --days 31

What is timed is everything a view does but the HTTP around it: the overview made from the
figures, names, budgets and unknown ids (grouping by name, the 30 days, the budgets), then
the page written (or the JSON).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from orgproxy.costs.figures import CostFigures, ProviderCosts, Series, dense
from orgproxy.costs.overview import overview
from orgproxy.costs.window import DAY
from orgproxy.snapshot import Names
from orgproxy.names.unknown import UnknownIds
from orgproxy.web.dashboard_page import render_page
from orgproxy.web.resources import json_body

NOW = datetime(2026, 10, 16, 9, 30, tzinfo=UTC).timestamp()


def figures_of(names: int, days: int) -> tuple[CostFigures, Names]:
    today = int(NOW // DAY * DAY)
    aliases: dict[str, dict[str, str]] = {"api_keys": {}, "projects": {}, "workspaces": {}}
    made = CostFigures()
    for provider, count in (("openai", names - names // 2), ("anthropic", names // 2)):
        series = []
        for n in range(count):
            key = f"key_{n:016x}" if provider == "openai" else f"apikey_01{n:022x}"
            group = f"proj_{n % 40:016x}" if provider == "openai" else f"wrkspc_01{n % 40:022x}"
            aliases["api_keys"][key] = f"{provider} service {n}"
            aliases["projects" if provider == "openai" else "workspaces"][group] = f"{provider} group {n % 40}"
            # Every day but one in seven, when the key did not run.
            by_day = {today - d * DAY: Decimal(f"{(n * 7 + d * 13) % 997}.{(n + d) % 10_000:04d}")
                      for d in range(days) if (n + d) % 7}
            days_from, daily = dense(by_day)
            month = sum(daily[-16:], Decimal(0))
            series.append(Series(provider, key, group, month, daily[-2], days_from=days_from, daily=daily))
        made = made.with_provider(provider, ProviderCosts(tuple(series), NOW), names + 2)
    return made, Names.from_aliases(aliases)


def unknown_ids(count: int) -> UnknownIds:
    unknown = UnknownIds()
    for n in range(count):
        unknown.record({("api_key_id", f"key_unknown{n:08x}"): 1}, {f"key_unknown{n:08x}": "api_key_id"}, NOW - n)
    return unknown


def times(draw: Callable[[], bytes], runs: int) -> tuple[list[float], list[float], int]:
    """Wall-clock and CPU ms of each run (on a busy machine, the CPU is this drawing's own
    cost; the wall clock adds the waits for a core), and the size drawn."""
    size = len(draw())  # once before timing: imports and caches warm
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        draw()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return sorted(wall), sorted(cpu), size


def summary(taken: list[float]) -> str:
    return (f"median {statistics.median(taken):.1f} ms, p90 {taken[int(len(taken) * 0.9)]:.1f} ms,"
            f" max {taken[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--budgets", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    figures, names = figures_of(args.names, args.days)
    budgets = {f"openai service {n}": Decimal(500) for n in range(args.budgets)}
    unknown = unknown_ids(500)

    def view() -> object:
        return overview(figures, names, budgets, unknown, NOW, 3600.0)
    print(f"{args.names} names, {args.days} days each, {args.budgets} budgets, 500 unknown ids; {args.runs} runs")
    for what, draw in (("page (GET /orgproxy/)", lambda: render_page(view())),  # type: ignore[arg-type]
                       ("costs.json", lambda: json_body(view().as_json()))):  # type: ignore[attr-defined]
        wall, cpu, size = times(draw, args.runs)
        print(f"{what}, {size / 1024:.0f} KiB: wall {summary(wall)}; CPU {summary(cpu)}")


if __name__ == "__main__":
    main()
