"""Rows added up per day and group: the report's one data structure, and what every
output is drawn from. Money is summed as exact decimals (no digit is ever rounded away),
counts as integers. Beside each name in a group the report keeps the ids it stood for
(the keys of one name, rotated; the id of a name nobody knew), for the id columns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from orgproxy.fields import ALL_ID_FIELDS_FOR_NAME
from orgproxy.report.amounts import plus
from orgproxy.report.apis import OPENAI_REPORTS, Measures, Reports

Group = tuple[Any, ...]
PROVIDER = "provider"  # the first column of a group, with --provider all


class UnknownName(str):
    """The name of an id nobody named ("unknown"), told apart from other unknown ids by its
    id, as orgproxy keeps their rows apart: a table shows it as ``unknown (key_...)``;
    CSV and JSON say "unknown" with the id in the id column."""

    name = "unknown"

    def __new__(cls, id_: str) -> UnknownName:
        label = super().__new__(cls, f"unknown ({id_})")
        label.id = id_
        return label

    id: str


def group_value(row: Mapping[str, Any], by: str) -> Any:
    """The row's value for a --by field."""
    value = row.get(by)
    id_field = ALL_ID_FIELDS_FOR_NAME.get(by)
    if value == "unknown" and id_field and isinstance(row.get(id_field), str):
        return UnknownName(row[id_field])
    return value


def ids_of(row: Mapping[str, Any], id_field: str) -> tuple[str, ...]:
    """The ids a row's name stands for: ``api_key_ids`` where orgproxy merged several keys
    of one name into the row, else its ``api_key_id``."""
    merged = row.get(id_field + "s")
    if isinstance(merged, list):
        return tuple(i for i in merged if isinstance(i, str))
    one = row.get(id_field)
    return (one,) if isinstance(one, str) else ()


@dataclass
class Report:
    kind: str  # "costs", "usage/completions" (OpenAI's usage of a kind), "usage" (Anthropic's analytics)
    since: date
    until: date
    by: list[str]  # a group's columns: the --by fields, after "provider" with --provider all
    apis: dict[str, Reports] = field(default_factory=lambda: {"openai": OPENAI_REPORTS})  # how to rank usage
    daily: bool = True  # False: the totals alone (a table): each group's sums in one entry, not one a day
    # day -> group -> [the ids behind the group's name columns (id_columns' order), then the
    # sum of each measure in measure_index's order, None where it has none]: a month of
    # thousands of keys is hundreds of thousands of these, so each is a short list.
    cells: dict[str, dict[Group, list[Any]]] = field(default_factory=dict, repr=False)
    measure_index: dict[str, int] = field(default_factory=dict)  # measure -> its place in a cell
    # Each group and tuple of ids once, however many days hold it.
    shared: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def id_columns(self) -> dict[str, str]:
        """Each name column of the group, and the id column written beside it (none where
        --by asks for the id itself)."""
        return {name: ALL_ID_FIELDS_FOR_NAME[name] for name in self.by
                if name in ALL_ID_FIELDS_FOR_NAME and ALL_ID_FIELDS_FOR_NAME[name] not in self.by}

    @property
    def measures(self) -> list[str]:
        """Every measure seen, in first-seen order."""
        return list(self.measure_index)

    def add(self, day: str, row: Mapping[str, Any], measures: Measures, provider: str | None = None) -> None:
        """A row's measures, added into its day and group (``provider`` leads a group with
        --provider all)."""
        fields = self.by[1:] if provider is not None else self.by
        group = tuple(group_value(row, field_) for field_ in fields)
        if provider is not None:
            group = (provider, *group)
        groups = self.cells.get(day if self.daily else "")
        if groups is None:
            groups = self.cells[day if self.daily else ""] = {}
        cell = groups.get(group)
        if cell is None:
            cell = groups[self.shared.setdefault(group, group)] = [None]
        for name, value in measures.items():
            place = self.measure_index.get(name)
            if place is None:
                place = self.measure_index[name] = len(self.measure_index) + 1
            if place >= len(cell):
                cell.extend([None] * (place + 1 - len(cell)))
            cell[place] = value if cell[place] is None else plus(cell[place], value)
        if self.id_columns:
            found = tuple(ids_of(row, id_field) for id_field in self.id_columns.values())
            known = cell[0]
            if known is not None and known != found:
                found = tuple(tuple(dict.fromkeys(a + b)) for a, b in zip(known, found))
            cell[0] = self.shared.setdefault(found, found)

    def values(self, cell: list[Any]) -> Measures:
        """A cell's sums by measure."""
        return {name: cell[place] for name, place in self.measure_index.items()
                if place < len(cell) and cell[place] is not None}

    def ids(self, cell: list[Any]) -> dict[str, tuple[str, ...]]:
        """A cell's ids by id column."""
        return dict(zip(self.id_columns.values(), cell[0] or ()))

    def rows(self) -> Iterator[tuple[str, Group, Measures, dict[str, tuple[str, ...]]]]:
        """Every day's groups: (day, group, sums, ids), by day, then group."""
        # Every group's place, found once: each day holds most of the same groups.
        place = {group: n for n, group in enumerate(sorted(self.all_groups(), key=str))}
        for day in sorted(self.cells):
            groups = self.cells[day]
            for group in sorted(groups, key=place.__getitem__):
                cell = groups[group]
                yield day, group, self.values(cell), self.ids(cell)

    def all_groups(self) -> set[Group]:
        """Every group of every day."""
        return {group for groups in self.cells.values() for group in groups}

    def sums(self) -> dict[tuple[str, Group], Measures]:
        """(day, group) -> measure -> sum, for every day and group."""
        return {(day, group): values for day, group, values, _ in self.rows()}

    def main_measure(self, group: Group, values: Measures) -> Any:
        """What groups are ranked by: dollars, or the tokens in and out."""
        if self.kind == "costs":
            return values.get("cost", 0)
        api = self.apis[group[0]] if self.by and self.by[0] == PROVIDER else next(iter(self.apis.values()))
        return api.tokens(values)

    def totals(self) -> list[tuple[Group, Measures]]:
        """Every group's sums over the days, the largest main measure first."""
        groups: dict[Group, Measures] = {}
        for by_group in self.cells.values():
            for group, cell in by_group.items():
                total = groups.setdefault(group, {})
                for name, value in self.values(cell).items():
                    total[name] = plus(total[name], value) if name in total else value
        return sorted(groups.items(), key=lambda item: -self.main_measure(*item))

    def group_ids(self) -> dict[Group, dict[str, tuple[str, ...]]]:
        """Each group's ids over all its days: id column -> ids."""
        merged: dict[Group, dict[str, dict[str, None]]] = {}
        for by_group in self.cells.values():
            for group, cell in by_group.items():
                into = merged.setdefault(group, {})
                for id_field, found in self.ids(cell).items():
                    into.setdefault(id_field, {}).update(dict.fromkeys(found))
        return {group: {f: tuple(found) for f, found in ids.items()} for group, ids in merged.items()}
