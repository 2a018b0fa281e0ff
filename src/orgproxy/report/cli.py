"""``orgproxy-report``: what each key (by name) cost or used, from a running orgproxy, for
OpenAI's organization, Anthropic's, or both in one report. ``options`` reads the command
line; this module asks, adds up and writes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import localcontext

from orgproxy.report.aggregate import Report
from orgproxy.report.amounts import EXACT
from orgproxy.report.apis import ANTHROPIC_LEGACY, Reports, reports_of
from orgproxy.report.chart import write_chart
from orgproxy.report.collect import Asked, collect_all
from orgproxy.report.dates import parse_day
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.focus_charge import VENDORS, BillingAccount
from orgproxy.report.focus_export import FORMATS as FOCUS_FORMATS
from orgproxy.report.focus_export import Source, export
from orgproxy.report.groups import checked_groups_across
from orgproxy.report.options import parse_args, per_provider, providers
from orgproxy.report.output import WRITERS, write_file, write_text
from orgproxy.report.progress import Progress, progress_for
from orgproxy.report.table import WIDTH, as_table
from orgproxy.text import without_surrogates


def read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip()
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None
    if not secret:
        raise ReportError(f"{path}: no {what} in it")
    return secret


def admin_keys(args: argparse.Namespace) -> dict[str, str]:
    """Each chosen provider's admin key: from --admin-key-file, else its variable."""
    chosen = providers(args)
    files = per_provider("--admin-key-file", args.admin_key_file, chosen)
    keys = {}
    for provider in chosen:
        if provider in files:
            keys[provider] = read_secret(files[provider], "admin key")
            continue
        variable = reports_of(provider).key_variable
        key = os.environ.get(variable, "").strip()
        if not key:
            raise ReportError(f"no admin key: set {variable} or pass --admin-key-file")
        keys[provider] = key
    return keys


def client_token(args: argparse.Namespace) -> str | None:
    return read_secret(args.client_token_file, "client token") if args.client_token_file else None


def date_range(args: argparse.Namespace) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    since = parse_day(args.since, today)
    until = parse_day(args.until, today) if args.until else today
    if until <= since:
        raise ReportError(f"--until ({until}) must be after --since ({since})")
    return since, until


def apis(args: argparse.Namespace, since: date) -> dict[str, Reports]:
    """Whose reports each chosen provider's are, checked against what they can answer."""
    if args.legacy and args.provider == "openai":
        raise ReportError("--legacy is for Anthropic's reports (its cost_report and usage_report/messages)")
    chosen = {provider: reports_of(provider, args.legacy) for provider in providers(args)}
    anthropic = chosen.get("anthropic")
    if anthropic is not None and since < anthropic.EARLIEST:
        raise ReportError(f"Anthropic's analytics API has nothing before {anthropic.EARLIEST}: --legacy asks its"
                          " older reports")
    return chosen


def kind_of(args: argparse.Namespace, api: Reports) -> str:
    """The report ``api`` is asked for: "costs", "usage/<kind>", or Anthropic's "usage"."""
    if args.command == "costs":
        return "costs"
    if api.DEFAULT_USAGE is None:  # Anthropic's analytics: one usage endpoint, of no kind
        if args.kind is not None and args.provider != "all":
            raise ReportError(f"Anthropic's analytics usage has no kind ({args.kind!r}); --legacy usage messages"
                              " asks its older messages report")
        return "usage"
    if api is ANTHROPIC_LEGACY:  # with --provider all, a kind is OpenAI's
        kind = args.kind if args.kind is not None and args.provider != "all" else api.DEFAULT_USAGE
        if kind != "messages":
            raise ReportError(f"Anthropic's usage report by day is 'messages', not {kind!r}")
    else:
        kind = args.kind or api.DEFAULT_USAGE
    return f"usage/{kind}"


def fetch_report(args: argparse.Namespace, progress: Progress) -> Report:
    since, until = date_range(args)
    chosen = apis(args, since)
    kinds = {provider: kind_of(args, api) for provider, api in chosen.items()}
    by = checked_groups_across({chosen[p].endpoints: kinds[p] for p in chosen}, args.by)
    keys, token = admin_keys(args), client_token(args)
    asked = [Asked(kinds[p], Fetcher(args.proxy, keys[p], progress=progress, api=chosen[p], client_token=token))
             for p in chosen]
    label = next(iter(kinds.values())) if len(kinds) == 1 else args.command
    daily = args.format != "table" or bool(args.chart)  # a table needs the totals alone
    return collect_all(asked, label, since, until, by, daily)


def billing_accounts(args: argparse.Namespace, keys: dict[str, str], token: str | None,
                     progress: Progress) -> dict[str, BillingAccount]:
    """Each vendor's billing account: as the user names it; Anthropic's, where not given,
    from its ``/v1/organizations/me``; OpenAI's must be given (no API tells it)."""
    chosen = providers(args)
    ids = per_provider("--billing-account-id", args.billing_account_id, chosen)
    names = per_provider("--billing-account-name", args.billing_account_name, chosen, shared=True)
    accounts = {}
    for provider in chosen:
        given_id, given_name = ids.get(provider), names.get(provider)
        if provider == "anthropic" and (given_id is None or given_name is None):
            me = Fetcher(args.proxy, keys[provider], progress=progress, api=ANTHROPIC_LEGACY,
                         client_token=token).get_json("/v1/organizations/me", [])
            if not isinstance(me, dict) or not isinstance(me.get("id"), str) or not isinstance(me.get("name"), str):
                raise ReportError("/v1/organizations/me: no organization id and name: give --billing-account-id"
                                  " and --billing-account-name anthropic=...")
            given_id, given_name = given_id or me["id"], given_name or me["name"]
        if not given_id or not given_name:
            raise ReportError(f"--format {args.format} needs --billing-account-id and --billing-account-name"
                              " (the organization's id, org-..., and name: OpenAI's costs API gives neither)")
        accounts[provider] = BillingAccount(given_id, given_name)
    return accounts


def export_focus(args: argparse.Namespace, progress: Progress) -> str:
    """FOCUS (one row per day, key and charge, so --by does not apply), written as it is
    fetched: to --output, or to standard output."""
    if args.legacy:
        raise ReportError(f"--format {args.format} reads Anthropic's analytics API (costs per key), not --legacy")
    if args.chart:
        raise ReportError(f"--chart does not go with --format {args.format}")
    since, until = date_range(args)
    chosen = apis(args, since)
    keys, token = admin_keys(args), client_token(args)
    accounts = billing_accounts(args, keys, token, progress)
    sources = [Source(VENDORS[p], Fetcher(args.proxy, keys[p], progress=progress, api=api, client_token=token),
                      accounts[p]) for p, api in chosen.items()]
    export(sources, since, until, args.focus_version, args.format, args.output, sys.stdout)
    return ""


def run(argv: Sequence[str]) -> str:
    """What to print; the chart and the --output file, if asked for, written."""
    args = parse_args(argv)
    progress = progress_for(sys.stderr, args.quiet)
    try:
        if args.format in FOCUS_FORMATS:
            return export_focus(args, progress)
        report = fetch_report(args, progress)
    finally:
        progress.close()
    if args.chart:
        write_chart(report, args.chart, args.top)
    if args.format == "table":
        table = as_table(report, None if args.wide else WIDTH)
        if args.output is None:
            return table
        write_text(args.output, table)
    elif args.output is None:
        WRITERS[args.format](report, sys.stdout, args.csv_raw)  # written as it is made: it can be long
    else:
        write_file(args.output, lambda out: WRITERS[args.format](report, out, args.csv_raw))
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with localcontext(EXACT):  # every sum exact, whatever the caller's decimal context
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
