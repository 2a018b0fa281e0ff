"""``orgproxy-report``: what each key (by name) cost or used, from a running orgproxy.

    orgproxy-report costs --since 2026-10-01 --until 2026-11-01 --by api_key_name
    orgproxy-report usage completions --since 30d --by api_key_name,model --format csv
    orgproxy-report --provider anthropic usage messages --since 30d --by api_key_name
    orgproxy-report costs --since 2026-10-01 --until 2026-11-01 --format focus \
        --billing-account-id org-... --billing-account-name "Example Corp" --output costs.csv

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
from datetime import UTC, date, datetime

from orgproxy.report.aggregate import Report
from orgproxy.report.apis import REPORTS
from orgproxy.report.chart import write_chart
from orgproxy.report.collect import collect
from orgproxy.report.dates import parse_day
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.groups import USAGE_KINDS, checked_groups, describe
from orgproxy.report.focus import BillingAccount
from orgproxy.report.focus_export import FORMATS as FOCUS_FORMATS
from orgproxy.report.focus_export import exact_json, export
from orgproxy.report.output import FORMATS, as_csv, write_text
from orgproxy.report.progress import page_bar
from orgproxy.text import without_surrogates
from orgproxy.version import version_line

DEFAULT_PROXY = "http://127.0.0.1:18080"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="orgproxy-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=version_line("orgproxy-report"))
    parser.add_argument("--provider", choices=tuple(REPORTS), default="openai",
                        help="whose reports: OpenAI's (/v1/organization/) or Anthropic's (/v1/organizations/)"
                             " [default: openai]")
    commands = parser.add_subparsers(dest="command", required=True)
    costs = commands.add_parser("costs", help="costs per group")
    usage = commands.add_parser(
        "usage", help="usage per group", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--by for each kind:\n" + "\n".join(
            f"  {kind}: {describe('usage/' + kind)}" for kind in USAGE_KINDS)
        + f"\nwith --provider anthropic:\n  messages: {describe('usage/messages', 'anthropic')}")
    usage.add_argument("kind", help=f"the /usage/<kind> endpoint: {', '.join(USAGE_KINDS)}"
                                    " (a newer one is asked for as it is); for Anthropic, messages")
    for sub, by_help in ((costs, f"group_by fields, comma-separated: {describe('costs')};"
                                 f" for Anthropic's, {describe('costs', 'anthropic')}"),
                         (usage, "group_by fields, comma-separated: see below")):
        sub.add_argument("--since", required=True, help="first day: YYYY-MM-DD or 30d (days back)")
        sub.add_argument("--until", help="day after the last: YYYY-MM-DD or 0d [default: today]")
        sub.add_argument("--by", help=by_help)
        sub.add_argument("--proxy", default=os.environ.get("ORGPROXY_URL", DEFAULT_PROXY),
                         help=f"the running orgproxy [default: {DEFAULT_PROXY}]")
        sub.add_argument("--admin-key-file", help="file with the admin key [default: $OPENAI_ADMIN_KEY,"
                                                  " or $ANTHROPIC_ADMIN_KEY with --provider anthropic]")
        sub.add_argument("--client-token-file", default=os.environ.get("ORGPROXY_CLIENT_TOKEN_FILE"),
                         help="file with the token orgproxy requires as X-Orgproxy-Token"
                              " [default: $ORGPROXY_CLIENT_TOKEN_FILE, else none]")
        sub.add_argument("--format", choices=tuple(FORMATS) + (FOCUS_FORMATS if sub is costs else ()),
                         default="table")
        sub.add_argument("--chart", help="write a stacked daily chart (.svg or .png)")
        sub.add_argument("--top", type=int, default=8, help="names in the chart before 'other'")
        sub.add_argument("--output", help="write the output to this file, not to standard output")
        sub.add_argument("--csv-raw", action="store_true",
                         help="CSV: write cells as they are, without the quote put before one a spreadsheet"
                              " would run as a formula (=, +, -, @, TAB, CR)")
    costs.add_argument("--billing-account-id",
                       help="FOCUS: the organization's id (org-...), which the costs API does not give")
    costs.add_argument("--billing-account-name", help="FOCUS: the organization's name")
    return parser.parse_args(argv)


def read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip()
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None
    if not secret:
        raise ReportError(f"{path}: no {what} in it")
    return secret


def admin_key(args: argparse.Namespace) -> str:
    if args.admin_key_file:
        return read_secret(args.admin_key_file, "admin key")
    key = os.environ.get(REPORTS[args.provider].key_variable, "").strip()
    if not key:
        raise ReportError(f"no admin key: set {REPORTS[args.provider].key_variable} or pass --admin-key-file")
    return key


def client_token(args: argparse.Namespace) -> str | None:
    return read_secret(args.client_token_file, "client token") if args.client_token_file else None


def date_range(args: argparse.Namespace) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    since = parse_day(args.since, today)
    until = parse_day(args.until, today) if args.until else today
    if until <= since:
        raise ReportError(f"--until ({until}) must be after --since ({since})")
    return since, until


def fetch_report(args: argparse.Namespace) -> Report:
    api = REPORTS[args.provider]
    if api.name == "anthropic" and args.command == "usage" and args.kind != "messages":
        raise ReportError(f"Anthropic's usage report by day is 'messages', not {args.kind!r}")
    since, until = date_range(args)
    kind = "costs" if args.command == "costs" else f"usage/{args.kind}"
    by = checked_groups(kind, args.by, api.name)
    fetcher = Fetcher(args.proxy, admin_key(args), progress=page_bar(sys.stderr), api=api,
                      client_token=client_token(args))
    try:
        return collect(fetcher, kind, since, until, by, api)
    finally:
        if fetcher.progress is not None:
            fetcher.progress.close()


def export_focus(args: argparse.Namespace) -> str:
    """FOCUS 1.2 (one row per day, project, key and line item, so --by does not apply), of
    OpenAI's costs only."""
    if args.provider != "openai":
        raise ReportError(f"--format {args.format} is for OpenAI's costs only, not --provider {args.provider}")
    if not args.billing_account_id or not args.billing_account_name:
        raise ReportError(f"--format {args.format} needs --billing-account-id and --billing-account-name"
                          " (the organization's id, org-..., and name: the costs API gives neither)")
    if args.chart:
        raise ReportError(f"--chart does not go with --format {args.format}")
    since, until = date_range(args)
    fetcher = Fetcher(args.proxy, admin_key(args), progress=page_bar(sys.stderr), decode=exact_json,
                      client_token=client_token(args))
    try:
        return export(fetcher, since, until, BillingAccount(args.billing_account_id, args.billing_account_name),
                      args.format, args.output)
    finally:
        if fetcher.progress is not None:
            fetcher.progress.close()


def run(argv: Sequence[str]) -> str:
    """What to print; the chart and the --output file, if asked for, written."""
    args = parse_args(argv)
    if args.format in FOCUS_FORMATS:
        return export_focus(args)
    report = fetch_report(args)
    if args.chart:
        write_chart(report, args.chart, args.top)
    output = as_csv(report, raw=True) if args.format == "csv" and args.csv_raw else FORMATS[args.format](report)
    if args.output is None:
        return output
    write_text(args.output, output)
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        output = run(sys.argv[1:] if argv is None else argv)
    except ReportError as e:
        print(f"orgproxy-report: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(without_surrogates(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
