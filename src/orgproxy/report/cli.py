"""``orgproxy-report``: what each key (by name) cost or used, from a running orgproxy.

    orgproxy-report costs --since 2026-10-01 --until 2026-11-01 --by api_key_name
    orgproxy-report usage completions --since 30d --by api_key_name,model --format csv
    orgproxy-report --provider anthropic usage messages --since 30d --by api_key_name

It asks orgproxy to group by name (orgproxy merges the rows of keys that share a name),
walks every page, splits a range longer than the API allows into several calls, and
prints totals per group as a table, CSV (one row per day and group) or JSON, and
optionally a stacked daily chart.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from orgproxy.report.aggregate import Report
from orgproxy.report.apis import REPORTS
from orgproxy.report.chart import write_chart
from orgproxy.report.collect import collect
from orgproxy.report.dates import parse_day
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.output import FORMATS
from orgproxy.report.progress import page_bar

DEFAULT_PROXY = "http://127.0.0.1:18080"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="orgproxy-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=tuple(REPORTS), default="openai",
                        help="whose reports: OpenAI's (/v1/organization/) or Anthropic's (/v1/organizations/)"
                             " [default: openai]")
    commands = parser.add_subparsers(dest="command", required=True)
    costs = commands.add_parser("costs", help="costs per group")
    usage = commands.add_parser("usage", help="usage per group")
    usage.add_argument("kind", help="completions, embeddings, images, ... (the /usage/<kind> endpoint);"
                                    " for Anthropic, messages")
    for sub in (costs, usage):
        sub.add_argument("--since", required=True, help="first day: YYYY-MM-DD or 30d (days back)")
        sub.add_argument("--until", help="day after the last: YYYY-MM-DD or 0d [default: today]")
        sub.add_argument("--by", help="group_by fields, comma-separated [default: api_key_name;"
                                      " for Anthropic's costs, workspace_name]")
        sub.add_argument("--proxy", default=os.environ.get("ORGPROXY_URL", DEFAULT_PROXY),
                         help=f"the running orgproxy [default: {DEFAULT_PROXY}]")
        sub.add_argument("--admin-key-file", help="file with the admin key [default: $OPENAI_ADMIN_KEY,"
                                                  " or $ANTHROPIC_ADMIN_KEY with --provider anthropic]")
        sub.add_argument("--format", choices=tuple(FORMATS), default="table")
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
        key = os.environ.get(REPORTS[args.provider].key_variable, "").strip()
    if not key:
        raise ReportError(f"no admin key: set {REPORTS[args.provider].key_variable} or pass --admin-key-file")
    return key


def fetch_report(args: argparse.Namespace) -> Report:
    today = datetime.now(UTC).date()
    since = parse_day(args.since, today)
    until = parse_day(args.until, today) if args.until else today
    if until <= since:
        raise ReportError(f"--until ({until}) must be after --since ({since})")
    api = REPORTS[args.provider]
    if api.name == "anthropic" and args.command == "usage" and args.kind != "messages":
        raise ReportError(f"Anthropic's usage report by day is 'messages', not {args.kind!r}")
    by_text = args.by if args.by is not None else api.default_by[args.command]
    by = [f.strip() for f in by_text.split(",") if f.strip()]
    kind = "costs" if args.command == "costs" else f"usage/{args.kind}"
    fetcher = Fetcher(args.proxy, admin_key(args), progress=page_bar(sys.stderr), api=api)
    try:
        return collect(fetcher, kind, since, until, by, api)
    finally:
        if fetcher.progress is not None:
            fetcher.progress.close()


def run(argv: Sequence[str]) -> str:
    """What to print; the chart, if asked for, written."""
    args = parse_args(argv)
    report = fetch_report(args)
    if args.chart:
        write_chart(report, args.chart, args.top)
    return FORMATS[args.format](report)


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
