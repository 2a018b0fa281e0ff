"""Rows added up per day and group: the report's one data structure, and what every
output is drawn from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from orgproxy.fields import ALL_ID_FIELDS_FOR_NAME
from orgproxy.report.apis import OPENAI_REPORTS, Reports

Group = tuple[Any, ...]


@dataclass
class Report:
    kind: str  # "costs" or "usage/completions" (Anthropic's: "usage/messages")
    since: date
    until: date
    by: list[str]
    # (day, group) -> measure -> amount
    days: dict[tuple[str, Group], dict[str, float]] = field(default_factory=dict)
    api: Reports = OPENAI_REPORTS  # whose report: how its rows are read

    @property
    def measures(self) -> list[str]:
        """Every measure seen, in first-seen order."""
        seen: dict[str, None] = {}
        for values in self.days.values():
            seen.update(dict.fromkeys(values))
        return list(seen)

    def add(self, day: str, row: dict[str, Any]) -> None:
        group = tuple(group_value(row, field_) for field_ in self.by)
        values = self.days.setdefault((day, group), {})
        if self.kind == "costs":
            values["cost"] = values.get("cost", 0.0) + self.api.cost(row)
            return
        for name, value in self.api.measures(row).items():
            values[name] = values.get(name, 0) + value

    def main_measure(self, values: dict[str, float]) -> float:
        """What groups are ranked by: dollars, or input + output tokens."""
        if self.kind == "costs":
            return values.get("cost", 0.0)
        return self.api.tokens(values)

    def totals(self) -> list[tuple[Group, dict[str, float]]]:
        """Every group's sums over the days, the largest main measure first."""
        groups: dict[Group, dict[str, float]] = {}
        for (_, group), values in self.days.items():
            total = groups.setdefault(group, {})
            for name, value in values.items():
                total[name] = total.get(name, 0) + value
        return sorted(groups.items(), key=lambda item: -self.main_measure(item[1]))


def group_value(row: dict[str, Any], by: str) -> Any:
    """The row's value for a --by field; a name nobody knew is told apart by its id, as
    orgproxy keeps the rows of unknown ids apart."""
    value = row.get(by)
    id_field = ALL_ID_FIELDS_FOR_NAME.get(by)
    if value == "unknown" and id_field and isinstance(row.get(id_field), str):
        return f"unknown ({row[id_field]})"
    return value
