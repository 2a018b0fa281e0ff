"""``orgproxy-report``: what each key (by name) cost or used, from a running orgproxy.

    orgproxy-report costs --since 2026-10-01 --until 2026-11-01 --by api_key_name
    orgproxy-report usage completions --since 30d --by api_key_name,model --format csv

It asks orgproxy to group by name (orgproxy merges the rows of keys that share a name),
walks every page, splits a range longer than the API allows into several calls, and
prints totals per group as a table, CSV (one row per day and group) or JSON, and
optionally a stacked daily chart.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from orgproxy.body.jsonvalues import is_number
from orgproxy.fields import ID_FIELD_FOR_NAME

DEFAULT_PROXY = "http://127.0.0.1:18080"
DAY = 86400
# The most 1-day buckets one call may cover (the API's limit on `limit`).
MAX_DAYS = {"costs": 180, "usage": 31}
TIMEOUT = 120


class ReportError(Exception):
    """Something to tell the user in one line, then exit 1."""


# --- dates ------------------------------------------------------------------------------

def parse_day(text: str, today: date) -> date:
    """``2026-10-01`` or ``30d`` (30 days before today)."""
    text = text.strip()
    if text.endswith("d") and text[:-1].isdigit():
        return today - timedelta(days=int(text[:-1]))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{text!r} is not a day (YYYY-MM-DD) or a number of days back (30d)") from None


def midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def windows(since: date, until: date, max_days: int) -> Iterator[tuple[date, date]]:
    """[since, until) cut into windows of at most ``max_days`` days."""
    start = since
    while start < until:
        end = min(until, start + timedelta(days=max_days))
        yield start, end
        start = end


# --- fetching ---------------------------------------------------------------------------

@dataclass
class Fetcher:
    proxy: str
    admin_key: str
    pages: int = 0
    progress: Any = None

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        url = self.proxy.rstrip("/") + path + "?" + urlencode(query)
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.admin_key}"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as e:
            raise ReportError(f"{path}: {e.code}: {_error_message(e.read())}") from None
        except urllib.error.URLError as e:
            raise ReportError(f"cannot reach orgproxy at {self.proxy}: {e.reason}") from None
        except TimeoutError:
            raise ReportError(f"orgproxy at {self.proxy} did not answer within {TIMEOUT} s") from None
        except (http.client.HTTPException, OSError) as e:
            # The connection dropped without (a whole) answer.
            raise ReportError(f"orgproxy at {self.proxy} hung up: {e or type(e).__name__}") from None
        self.pages += 1
        if self.progress is not None:
            self.progress.update(1)
        try:
            page = json.loads(body)
        except ValueError:
            raise ReportError(f"{path}: the answer is not JSON") from None
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ReportError(f"{path}: the answer is not a page of buckets")
        return page

    def buckets(self, path: str, query: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Every bucket of every page (``page`` = the previous ``next_page``)."""
        page_query = query
        while True:
            page = self.get(path, page_query)
            yield from page["data"]
            if not page.get("has_more") or not page.get("next_page"):
                return
            page_query = [*query, ("page", page["next_page"])]


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "no message"


# --- aggregating ------------------------------------------------------------------------

@dataclass
class Report:
    kind: str  # "costs" or "usage/completions"
    since: date
    until: date
    by: list[str]
    # (day, group) -> measure -> amount
    days: dict[tuple[str, tuple[Any, ...]], dict[str, float]] = field(default_factory=dict)

    @property
    def measures(self) -> list[str]:
        seen: dict[str, None] = {}
        for values in self.days.values():
            seen.update(dict.fromkeys(values))
        return list(seen)

    def add(self, day: str, row: dict[str, Any]) -> None:
        group = tuple(_group_value(row, field_) for field_ in self.by)
        values = self.days.setdefault((day, group), {})
        if self.kind == "costs":
            amount = row.get("amount") or {}
            values["cost"] = values.get("cost", 0.0) + float(amount.get("value") or 0)
            return
        for name, value in row.items():
            if is_number(value):
                values[name] = values.get(name, 0) + value

    def main_measure(self, values: dict[str, float]) -> float:
        if self.kind == "costs":
            return values.get("cost", 0.0)
        return values.get("input_tokens", 0) + values.get("output_tokens", 0)

    def totals(self) -> list[tuple[tuple[Any, ...], dict[str, float]]]:
        groups: dict[tuple[Any, ...], dict[str, float]] = {}
        for (_, group), values in self.days.items():
            total = groups.setdefault(group, {})
            for name, value in values.items():
                total[name] = total.get(name, 0) + value
        return sorted(groups.items(), key=lambda item: -self.main_measure(item[1]))


def _group_value(row: dict[str, Any], by: str) -> Any:
    """The row's value for a --by field; a name nobody knew is told apart by its id, as
    orgproxy keeps the rows of unknown ids apart."""
    value = row.get(by)
    id_field = ID_FIELD_FOR_NAME.get(by)
    if value == "unknown" and id_field and isinstance(row.get(id_field), str):
        return f"unknown ({row[id_field]})"
    return value


def collect(fetcher: Fetcher, kind: str, since: date, until: date, by: list[str]) -> Report:
    report = Report(kind, since, until, by)
    path = "/v1/organization/" + kind
    max_days = MAX_DAYS["costs" if kind == "costs" else "usage"]
    for start, end in windows(since, until, max_days):
        query = [("start_time", str(midnight(start))), ("end_time", str(midnight(end))),
                 ("bucket_width", "1d"), ("limit", str((end - start).days))]
        query += [("group_by", field_) for field_ in by]
        for bucket in fetcher.buckets(path, query):
            day = datetime.fromtimestamp(int(bucket.get("start_time", 0)), UTC).date().isoformat()
            for row in bucket.get("results") or []:
                if isinstance(row, dict):
                    report.add(day, row)
    return report


# --- output -----------------------------------------------------------------------------

def as_json(report: Report) -> str:
    rows = [{"date": day, **dict(zip(report.by, group)), **values}
            for (day, group), values in sorted(report.days.items(), key=lambda item: (item[0][0], str(item[0][1])))]
    totals = [{**dict(zip(report.by, group)), **values} for group, values in report.totals()]
    return json.dumps({"kind": report.kind, "since": report.since.isoformat(), "until": report.until.isoformat(),
                       "by": report.by, "rows": rows, "totals": totals}, ensure_ascii=False, indent=2)


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    measures = report.measures
    writer.writerow(["date", *report.by, *measures])
    for (day, group), values in sorted(report.days.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        writer.writerow([day, *("" if v is None else v for v in group),
                         *(repr(values.get(m, 0)) if isinstance(values.get(m), float) else values.get(m, 0)
                           for m in measures)])
    return out.getvalue()


def _money(value: float) -> str:
    return f"${value:,.2f}"


def as_table(report: Report) -> str:
    measures = report.measures or (["cost"] if report.kind == "costs" else [])
    show = _money if report.kind == "costs" else (lambda v: f"{v:,.0f}")
    lines = [[*report.by, *measures]]
    grand: dict[str, float] = {}
    for group, values in report.totals():
        lines.append([("(none)" if v is None else str(v)) for v in group] + [show(values.get(m, 0)) for m in measures])
        for m in measures:
            grand[m] = grand.get(m, 0) + values.get(m, 0)
    lines.append(["TOTAL", *[""] * (len(report.by) - 1), *[show(grand.get(m, 0)) for m in measures]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    numeric = len(report.by)

    def render(line: list[str]) -> str:
        return "  ".join(cell.rjust(w) if i >= numeric else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = (f"{report.kind} from {report.since} to {report.until} (exclusive),"
             f" by {', '.join(report.by)}")
    return "\n".join([title, "", render(lines[0]), rule, *map(render, lines[1:-1]), rule, render(lines[-1])]) + "\n"


def write_chart(report: Report, path: str, top: int) -> None:
    """A stacked daily chart of the main measure per group: the top ``top`` and "other"."""
    try:
        import matplotlib
    except ImportError:
        raise ReportError("--chart needs matplotlib: pip install 'orgproxy[report]'") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: names can be searched
    import matplotlib.pyplot as plt

    def label(group: tuple[Any, ...]) -> str:
        return " / ".join("(none)" if v is None else str(v) for v in group)

    ranked = [group for group, _ in report.totals()]
    shown = ranked[:top]
    days = sorted({day for day, _ in report.days})
    series: dict[str, list[float]] = {label(g): [0.0] * len(days) for g in shown}
    if len(ranked) > top:
        series["other"] = [0.0] * len(days)
    index = {day: i for i, day in enumerate(days)}
    for (day, group), values in report.days.items():
        name = label(group) if group in shown else "other"
        series[name][index[day]] += report.main_measure(values)
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    figure, axes = plt.subplots(figsize=(11, 5.5), layout="constrained")
    x = [date.fromisoformat(d) for d in days]
    bottom = [0.0] * len(days)
    for name, values in series.items():  # one stacked bar per day
        axes.bar(x, values, bottom=bottom, label=name, width=0.85)
        bottom = [b + v for b, v in zip(bottom, values)]
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_ylabel("cost (USD)" if report.kind == "costs" else "tokens (input + output)")
    axes.set_title(f"{report.kind} per {', '.join(report.by)}, {report.since} to {report.until}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    try:
        figure.savefig(path)
    except (OSError, ValueError) as e:
        raise ReportError(f"--chart {path}: {e}") from None
    finally:
        plt.close(figure)


# --- command line -----------------------------------------------------------------------

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="orgproxy-report", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    costs = commands.add_parser("costs", help="costs per group")
    usage = commands.add_parser("usage", help="usage per group")
    usage.add_argument("kind", help="completions, embeddings, images, ... (the /usage/<kind> endpoint)")
    for sub in (costs, usage):
        sub.add_argument("--since", required=True, help="first day: YYYY-MM-DD or 30d (days back)")
        sub.add_argument("--until", help="day after the last: YYYY-MM-DD or 0d [default: today]")
        sub.add_argument("--by", default="api_key_name", help="group_by fields, comma-separated")
        sub.add_argument("--proxy", default=os.environ.get("ORGPROXY_URL", DEFAULT_PROXY),
                         help=f"the running orgproxy [default: {DEFAULT_PROXY}]")
        sub.add_argument("--admin-key-file", help="file with the admin key [default: $OPENAI_ADMIN_KEY]")
        sub.add_argument("--format", choices=("table", "csv", "json"), default="table")
        sub.add_argument("--chart", help="write a stacked daily chart (.svg or .png)")
        sub.add_argument("--top", type=int, default=8, help="names in the chart before 'other'")
    return parser.parse_args(argv)


def admin_key(args: argparse.Namespace) -> str:
    if args.admin_key_file:
        try:
            with open(args.admin_key_file, encoding="utf-8") as f:
                key = f.read().strip()
        except OSError as e:
            raise ReportError(f"{args.admin_key_file}: {e.strerror}") from None
    else:
        key = os.environ.get("OPENAI_ADMIN_KEY", "").strip()
    if not key:
        raise ReportError("no admin key: set OPENAI_ADMIN_KEY or pass --admin-key-file")
    return key


def run(argv: Sequence[str]) -> str:
    args = parse_args(argv)
    today = datetime.now(UTC).date()
    since = parse_day(args.since, today)
    until = parse_day(args.until, today) if args.until else today
    if until <= since:
        raise ReportError(f"--until ({until}) must be after --since ({since})")
    by = [f.strip() for f in args.by.split(",") if f.strip()]
    kind = "costs" if args.command == "costs" else f"usage/{args.kind}"
    fetcher = Fetcher(args.proxy, admin_key(args))
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = fetcher.progress = tqdm(desc="pages", unit=" page", file=sys.stderr, leave=False)
    try:
        report = collect(fetcher, kind, since, until, by)
    finally:
        if progress is not None:
            progress.close()
    if args.chart:
        write_chart(report, args.chart, args.top)
    return {"table": as_table, "csv": as_csv, "json": as_json}[args.format](report)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        output = run(sys.argv[1:] if argv is None else argv)
    except ReportError as e:
        print(f"orgproxy-report: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
