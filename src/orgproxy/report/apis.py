"""What differs between the providers' usage and cost reports, for orgproxy-report: the
paths, the query of one window, the credential's headers, and how a page is read into
entries (a day, the row's fields, its measures).

- OpenAI's ``/v1/organization/costs`` and ``/usage/<kind>``: buckets of ``results``, cost
  in dollars in ``amount.value``;
- Anthropic's Usage and Cost Analytics API (``/v1/organizations/analytics/cost`` and
  ``/usage``, beta): one row per bucket and group, the group's fields in ``group``, the
  cost a decimal string of cents in ``cost.amount``;
- Anthropic's legacy reports (``/v1/organizations/cost_report``, ``/usage_report/messages``,
  with ``--legacy``): buckets of ``results``, cost in cents in ``amount``.

Pages are read with exact decimals (``json.loads(parse_float=Decimal)``): every amount
stays a Decimal, every count an int.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from orgproxy.report.amounts import decimal_of, is_amount
from orgproxy.report.errors import ReportError
from orgproxy.report.dates import midnight

Measures = dict[str, Any]  # measure -> Decimal (money) or int (counts)
Entry = tuple[str, Mapping[str, Any], Measures]  # (day, the row's fields, its measures)
ZERO = Decimal(0)


def numbers(row: Mapping[str, Any]) -> Measures:
    """Every number of a row (of sane size), and those of its objects as
    ``cache_creation.ephemeral_1h_input_tokens``."""
    found: Measures = {}
    for name, value in row.items():
        if is_amount(value) and decimal_of(value) is not None:
            found[name] = value
        elif isinstance(value, dict):
            found.update({f"{name}.{inner}": v for inner, v in value.items()
                          if is_amount(v) and decimal_of(v) is not None})
    return found


def money(value: object, where: str) -> Decimal:
    """An amount as sent, exactly; a row without one (null) costs nothing, and one that is
    not a decimal number of sane size (``"abc"``, ``1e999999``) stops the report with one
    line rather than being counted as nothing."""
    if value is None:
        return ZERO
    amount = decimal_of(value)
    if amount is None:
        raise ReportError(f"the API sent an amount that is not a decimal number in {where}: {str(value)[:40]!r}")
    return amount


def cents(value: object, where: str) -> Decimal:
    """Dollars from a decimal string of cents, exactly."""
    return money(value, where).scaleb(-2)


def _bucket_results(bucket: Any) -> Iterator[Mapping[str, Any]]:
    results = bucket.get("results") if isinstance(bucket, dict) else None
    return (row for row in results or () if isinstance(row, dict))


class OpenAIReports:
    """``/v1/organization/costs`` and ``/v1/organization/usage/<kind>``."""

    name = "openai"
    endpoints = "openai"  # which group_by values it takes (groups.GROUP_BY_OF)
    key_variable = "OPENAI_ADMIN_KEY"
    DEFAULT_USAGE = "completions"
    MAIN_MEASURES = ("cost", "input_tokens", "output_tokens")  # what a table shows first
    PAGES_BY_DAYS = True  # a page holds every row of its days: calls are sized by rows (calls.Calls)

    def path(self, kind: str) -> str:
        return "/v1/organization/" + kind

    def max_days(self, kind: str) -> int:
        """The most 1-day buckets one call may cover (the API's limit on `limit`)."""
        return 180 if kind == "costs" else 31

    def window_query(self, start: date, end: date, by: list[str]) -> list[tuple[str, str]]:
        query = [("start_time", str(midnight(start))), ("end_time", str(midnight(end))),
                 ("bucket_width", "1d"), ("limit", str((end - start).days))]
        return query + [("group_by", field_) for field_ in by]

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def rows_in(self, page: Mapping[str, Any]) -> int:
        return sum(len(bucket.get("results") or ()) for bucket in page["data"] if isinstance(bucket, dict))

    def entries(self, kind: str, bucket: Any) -> Iterator[Entry]:
        if not isinstance(bucket, dict):
            return
        day = datetime.fromtimestamp(int(bucket.get("start_time", 0)), UTC).date().isoformat()
        for row in _bucket_results(bucket):
            yield day, row, {"cost": self.cost(row)} if kind == "costs" else numbers(row)

    def cost(self, row: Mapping[str, Any]) -> Decimal:
        """Dollars, as sent in ``amount.value`` (a number, or a decimal string)."""
        amount = row.get("amount")
        return money(amount.get("value") if isinstance(amount, dict) else None, "amount.value")

    def tokens(self, values: Mapping[str, Any]) -> Any:
        """What usage groups are ranked by: input + output tokens."""
        return values.get("input_tokens", 0) + values.get("output_tokens", 0)


class AnthropicAnalytics:
    """The Usage and Cost Analytics API: ``/v1/organizations/analytics/cost`` and ``/usage``."""

    name = "anthropic"
    endpoints = "anthropic"
    key_variable = "ANTHROPIC_ADMIN_KEY"
    VERSION = "2023-06-01"
    BETA = "analytics-usage-cost-2026-08-24"
    EARLIEST = date(2026, 1, 1)  # the API has nothing before
    INPUTS = ("uncached_input_tokens", "cache_read_input_tokens", "cache_creation.ephemeral_1h_input_tokens",
              "cache_creation.ephemeral_5m_input_tokens")
    DEFAULT_USAGE = None  # one usage endpoint, of no kind
    PAGES_BY_DAYS = False  # it pages by rows
    MAIN_MEASURES = ("cost", "uncached_input_tokens", "output_tokens", *INPUTS[1:])

    def path(self, kind: str) -> str:
        return "/v1/organizations/analytics/" + ("cost" if kind == "costs" else "usage")

    def max_days(self, kind: str) -> int:
        return 31  # what one call covers when ending_at is left out: the longest range it documents

    def window_query(self, start: date, end: date, by: list[str]) -> list[tuple[str, str]]:
        query = [("starting_at", f"{start.isoformat()}T00:00:00Z"), ("ending_at", f"{end.isoformat()}T00:00:00Z"),
                 ("time_bucket_width", "1d")]
        return query + [("group_by[]", field_) for field_ in by]  # Anthropic's array spelling

    def headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": self.VERSION, "anthropic-beta": self.BETA}

    def rows_in(self, page: Mapping[str, Any]) -> int:
        return len(page["data"])

    def entries(self, kind: str, row: Any) -> Iterator[Entry]:
        if not isinstance(row, dict) or not isinstance(row.get("group"), dict):
            return
        day = str(row.get("starting_at", ""))[:10]
        if kind == "costs":
            cost = row.get("cost")
            yield day, row["group"], {"cost": cents(cost.get("amount") if isinstance(cost, dict) else None,
                                                      "cost.amount")}
        else:
            usage = row.get("usage")
            yield day, row["group"], numbers(usage) if isinstance(usage, dict) else {}

    def tokens(self, values: Mapping[str, Any]) -> Any:
        return sum(values.get(name, 0) for name in self.INPUTS) + values.get("output_tokens", 0)


class AnthropicLegacyReports(AnthropicAnalytics):
    """``/v1/organizations/cost_report`` and ``/v1/organizations/usage_report/messages``."""

    endpoints = "anthropic-legacy"
    PAGES_BY_DAYS = True
    DEFAULT_USAGE = "messages"
    EARLIEST = date.min

    def path(self, kind: str) -> str:
        return "/v1/organizations/cost_report" if kind == "costs" else "/v1/organizations/usage_report/" + \
            kind.removeprefix("usage/")

    def window_query(self, start: date, end: date, by: list[str]) -> list[tuple[str, str]]:
        query = [("starting_at", f"{start.isoformat()}T00:00:00Z"), ("ending_at", f"{end.isoformat()}T00:00:00Z"),
                 ("bucket_width", "1d"), ("limit", str((end - start).days))]
        return query + [("group_by[]", field_) for field_ in by]

    def headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": self.VERSION}

    def rows_in(self, page: Mapping[str, Any]) -> int:
        return OPENAI_REPORTS.rows_in(page)

    def entries(self, kind: str, bucket: Any) -> Iterator[Entry]:
        if not isinstance(bucket, dict):
            return
        day = str(bucket.get("starting_at", ""))[:10]
        for row in _bucket_results(bucket):
            yield day, row, {"cost": cents(row.get("amount"), "amount")} if kind == "costs" else numbers(row)


Reports = OpenAIReports | AnthropicAnalytics
OPENAI_REPORTS = OpenAIReports()
ANTHROPIC_ANALYTICS = AnthropicAnalytics()
ANTHROPIC_LEGACY = AnthropicLegacyReports()
PROVIDERS = ("openai", "anthropic")


def reports_of(provider: str, legacy: bool = False) -> Reports:
    """Whose reports: OpenAI's, Anthropic's analytics or (``legacy``) its older reports."""
    if provider == "openai":
        return OPENAI_REPORTS
    return ANTHROPIC_LEGACY if legacy else ANTHROPIC_ANALYTICS
