"""What differs between the two providers' usage and cost reports, for orgproxy-report:
the paths, the query of one window, the day of a bucket, the credential's headers, and
how a row is read (OpenAI's cost is dollars in ``amount.value``; Anthropic's a decimal
string of cents in ``amount``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from orgproxy.jsonvalues import is_number
from orgproxy.report.dates import midnight


class OpenAIReports:
    """``/v1/organization/costs`` and ``/v1/organization/usage/<kind>``."""

    name = "openai"
    key_variable = "OPENAI_ADMIN_KEY"

    def path(self, kind: str) -> str:
        return "/v1/organization/" + kind

    def max_days(self, kind: str) -> int:
        """The most 1-day buckets one call may cover (the API's limit on `limit`)."""
        return 180 if kind == "costs" else 31

    def window_query(self, start: date, end: date, by: list[str]) -> list[tuple[str, str]]:
        query = [("start_time", str(midnight(start))), ("end_time", str(midnight(end))),
                 ("bucket_width", "1d"), ("limit", str((end - start).days))]
        return query + [("group_by", field_) for field_ in by]

    def day(self, bucket: Mapping[str, Any]) -> str:
        return datetime.fromtimestamp(int(bucket.get("start_time", 0)), UTC).date().isoformat()

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def cost(self, row: Mapping[str, Any]) -> float:
        """Dollars."""
        amount = row.get("amount") or {}
        return float(amount.get("value") or 0)

    def measures(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in row.items() if is_number(value)}

    def tokens(self, values: Mapping[str, float]) -> float:
        """What usage groups are ranked by: input + output tokens."""
        return values.get("input_tokens", 0) + values.get("output_tokens", 0)


class AnthropicReports:
    """``/v1/organizations/cost_report`` and ``/v1/organizations/usage_report/messages``."""

    name = "anthropic"
    key_variable = "ANTHROPIC_ADMIN_KEY"
    VERSION = "2023-06-01"
    INPUTS = ("uncached_input_tokens", "cache_read_input_tokens", "cache_creation.ephemeral_1h_input_tokens",
              "cache_creation.ephemeral_5m_input_tokens")

    def path(self, kind: str) -> str:
        return "/v1/organizations/cost_report" if kind == "costs" else "/v1/organizations/usage_report/" + \
            kind.removeprefix("usage/")

    def max_days(self, kind: str) -> int:
        return 31  # both reports: at most 31 daily buckets a page

    def window_query(self, start: date, end: date, by: list[str]) -> list[tuple[str, str]]:
        query = [("starting_at", f"{start.isoformat()}T00:00:00Z"), ("ending_at", f"{end.isoformat()}T00:00:00Z"),
                 ("bucket_width", "1d"), ("limit", str((end - start).days))]
        return query + [("group_by[]", field_) for field_ in by]  # Anthropic's array spelling

    def day(self, bucket: Mapping[str, Any]) -> str:
        return str(bucket.get("starting_at", ""))[:10]

    def headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": self.VERSION}

    def cost(self, row: Mapping[str, Any]) -> float:
        """Dollars, from a decimal string of cents."""
        try:
            return float(Decimal(str(row.get("amount") or "0")) / 100)
        except InvalidOperation:
            return 0.0

    def measures(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Every number, those of nested objects named ``cache_creation.ephemeral_1h_input_tokens``."""
        found: dict[str, Any] = {}
        for name, value in row.items():
            if is_number(value):
                found[name] = value
            elif isinstance(value, dict):
                found.update({f"{name}.{inner}": v for inner, v in value.items() if is_number(v)})
        return found

    def tokens(self, values: Mapping[str, float]) -> float:
        return sum(values.get(name, 0) for name in self.INPUTS) + values.get("output_tokens", 0)


Reports = OpenAIReports | AnthropicReports
OPENAI_REPORTS = OpenAIReports()
REPORTS: dict[str, Reports] = {"openai": OPENAI_REPORTS, "anthropic": AnthropicReports()}
