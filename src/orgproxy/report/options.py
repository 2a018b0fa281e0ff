"""orgproxy-report's command line: two commands (costs, usage) and their options, with a
plain-text --help. The options that say whose reports and how to show progress
(``--provider``, ``--legacy``, ``--quiet``) may come before the command or after it."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence

from orgproxy.report.errors import ReportError
from orgproxy.report.focus import VERSIONS
from orgproxy.report.focus_export import FORMATS as FOCUS_FORMATS
from orgproxy.report.groups import USAGE_KINDS, describe
from orgproxy.report.output import FORMATS
from orgproxy.version import version_line

DEFAULT_PROXY = "http://127.0.0.1:18080"
PROVIDER_CHOICES = ("openai", "anthropic", "all")
DESCRIPTION = "What each key (by name) cost or used, from a running orgproxy."
EPILOG = """examples:
  orgproxy-report costs --since 2026-10-01 --until 2026-11-01 --by api_key_name
  orgproxy-report usage completions --since 30d --by api_key_name,model --format csv
  orgproxy-report costs --provider anthropic --since 30d --by api_key_name,workspace_name
  orgproxy-report costs --provider all --since 2026-10-01 --until 2026-11-01
  orgproxy-report costs --provider all --since 2026-10-01 --until 2026-11-01 --format focus \\
      --billing-account-id openai=org-...,anthropic=... --billing-account-name "Example Corp" --output costs.csv

It asks orgproxy to group by name (orgproxy merges the rows of keys that share a name),
walks every page, splits a range longer than an API allows into several calls, and prints
totals per group as a table, or one row per day and group as CSV or JSON, optionally with
a stacked daily chart; or the costs as FOCUS, the FinOps Foundation's billing format.
"""
_PER_PROVIDER = re.compile(r",(?=(?:openai|anthropic)=)")


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """--provider, --legacy and --quiet: on the top parser with their defaults, on each
    command without one (argparse.SUPPRESS), so that one given after the command wins and
    one given before it is not reset."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--provider", choices=PROVIDER_CHOICES, default=default("openai"),
                        help="whose reports: OpenAI's, Anthropic's, or both in one report [default: openai]")
    parser.add_argument("--legacy", action="store_true", default=default(False),
                        help="Anthropic's older cost_report and usage_report/messages, not its analytics API")
    parser.add_argument("--quiet", action="store_true", default=default(False),
                        help="no progress line on stderr (there is none unless stderr is a terminal)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="orgproxy-report", description=DESCRIPTION, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=version_line("orgproxy-report"))
    _common(top, top=True)
    commands = top.add_subparsers(dest="command", required=True, metavar="{costs,usage}")
    costs = commands.add_parser("costs", help="costs per group", description="Costs per group, in dollars.")
    usage = commands.add_parser(
        "usage", help="usage per group", description="Usage per group: tokens, requests, ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--by for each kind:\n" + "\n".join(f"  {kind}: {describe('usage/' + kind)}" for kind in USAGE_KINDS)
        + f"\nwith --provider anthropic (its analytics usage, of no kind):\n  {describe('usage', 'anthropic')}"
        + f"\nwith --provider anthropic --legacy:\n  messages: {describe('usage/messages', 'anthropic-legacy')}")
    usage.add_argument("kind", nargs="?",
                       help=f"OpenAI's /usage/<kind> endpoint: {', '.join(USAGE_KINDS)} (a newer one is asked for"
                            " as it is) [default: completions]; none for Anthropic's analytics, messages with --legacy")
    for sub, by_help in ((costs, f"group_by fields, comma-separated: {describe('costs')}; for Anthropic's,"
                                 f" {describe('costs', 'anthropic')}"),
                         (usage, "group_by fields, comma-separated: see below")):
        _common(sub, top=False)
        sub.add_argument("--since", required=True, help="first day: YYYY-MM-DD or 30d (days back)")
        sub.add_argument("--until", help="day after the last: YYYY-MM-DD or 0d [default: today]")
        sub.add_argument("--by", help=by_help)
        sub.add_argument("--proxy", default=os.environ.get("ORGPROXY_URL", DEFAULT_PROXY),
                         help=f"the running orgproxy [default: $ORGPROXY_URL, else {DEFAULT_PROXY}]")
        sub.add_argument("--admin-key-file",
                         help="file with the admin key, or openai=FILE,anthropic=FILE [default: $OPENAI_ADMIN_KEY,"
                              " $ANTHROPIC_ADMIN_KEY]")
        sub.add_argument("--client-token-file", default=os.environ.get("ORGPROXY_CLIENT_TOKEN_FILE"),
                         help="file with the token orgproxy requires as X-Orgproxy-Token"
                              " [default: $ORGPROXY_CLIENT_TOKEN_FILE, else none]")
        sub.add_argument("--format", choices=FORMATS + (FOCUS_FORMATS if sub is costs else ()),
                         default="table")
        sub.add_argument("--wide", action="store_true",
                         help="the table with every column, however wide [default: it fits 120 columns]")
        sub.add_argument("--chart", help="write a stacked daily chart (.svg or .png)")
        sub.add_argument("--top", type=int, default=8, help="names in the chart before 'other'")
        sub.add_argument("--output", help="write the output to this file, not to standard output")
        sub.add_argument("--csv-raw", action="store_true",
                         help="CSV: write cells as they are, without the quote put before one a spreadsheet"
                              " would run as a formula (=, +, -, @, TAB, CR)")
    costs.add_argument("--focus-version", choices=VERSIONS, default=VERSIONS[0],
                       help=f"FOCUS: the version written [default: {VERSIONS[0]}]")
    costs.add_argument("--billing-account-id",
                       help="FOCUS: the organization's id (org-... for OpenAI, whose costs API does not give it),"
                            " or openai=ID,anthropic=ID [default for Anthropic: its /v1/organizations/me]")
    costs.add_argument("--billing-account-name",
                       help="FOCUS: the organization's name (one for all), or openai=NAME,anthropic=NAME")
    return top


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return parser().parse_args(argv)


def providers(args: argparse.Namespace) -> tuple[str, ...]:
    return ("openai", "anthropic") if args.provider == "all" else (args.provider,)


def per_provider(option: str, value: str | None, chosen: tuple[str, ...], shared: bool = False) -> dict[str, str]:
    """``--option openai=A,anthropic=B`` as a dict of the ``chosen`` providers' values; one
    value is the one provider's, or (``shared``) every provider's."""
    if value is None:
        return {}
    if not re.match(r"(openai|anthropic)=", value):
        if len(chosen) > 1 and not shared:
            raise ReportError(f"{option}: with --provider all, give openai=...,anthropic=...")
        return dict.fromkeys(chosen, value)
    found: dict[str, str] = {}
    for part in _PER_PROVIDER.split(value):
        provider, _, given = part.partition("=")
        if provider not in ("openai", "anthropic") or not given or provider in found:
            raise ReportError(f"{option}: {part!r} is not openai=... or anthropic=... (each once)")
        found[provider] = given
    return {provider: given for provider, given in found.items() if provider in chosen}
