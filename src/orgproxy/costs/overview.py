"""What the dashboard shows (``GET /orgproxy/`` and ``/orgproxy/costs.json``), made from what
the daemon keeps: the cost figures of the last refresh, the names in force, the budgets, the
ids nobody named. Pure: plain data in, a plain ``Overview`` out; the page and the JSON are
two writings of it.

Per provider: this month's cost per key name, largest first (every key of a name together:
rotated keys, every project or workspace; an id nobody named under its own id; Anthropic's
Console and a cost without a key under their own labels; the ``other`` roll-up of
``--cost-series-max``); each day of the 30 ending on the refresh's day, for the 8 names that
cost most over them and ``other``; this month's cost per project or workspace; and how fresh
the figures are. Budgets are per key name on both providers together, as the rules add a
name's cost up. Sums are exact (``money.exactly``); the page rounds to the cent to show them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import add
from typing import Any

from orgproxy.costs.budgets import Budgets
from orgproxy.costs.collector import GROUP_FIELD, OTHER
from orgproxy.costs.figures import CostFigures, ProviderCosts
from orgproxy.costs.window import DAILY_DAYS, DAY
from orgproxy.fields import FIELD_SET_OF
from orgproxy.money import exactly, plain
from orgproxy.snapshot import Names
from orgproxy.names.unknown import UnknownIds
from orgproxy.providers import PROVIDERS
from orgproxy.text import valid_text
from orgproxy.times import iso

TOP_NAMES = 8  # the chart's series, besides "other"
RECENT_UNKNOWN = 10
STALE_AFTER_INTERVALS = 3  # figures older than 3 --cost-interval are stale, as the rules' alert says
ZERO = Decimal(0)
NO_KEY = "(no key)"  # an OpenAI cost with no key
NO_GROUP = {"openai": "(no project)", "anthropic": "Default"}
GROUP_TITLE = {"openai": "project", "anthropic": "workspace"}
# How to have a provider's costs shown, for the page to say where it has none.
ENABLE = {
    "openai": "give orgproxy an OpenAI admin key: the environment variable OPENAI_ADMIN_KEY, --admin-key-file"
              " FILE, or the systemd credential openai-admin-key",
    "anthropic": "give orgproxy an Anthropic Admin API key: the environment variable ANTHROPIC_ADMIN_KEY,"
                 " --anthropic-admin-key-file FILE, or the systemd credential anthropic-admin-key",
}


@dataclass(frozen=True)
class Bar:
    """One label's cost this month at one provider. ``kind``: ``name`` (a key name),
    ``unknown`` (an id nobody named: the label is the id), ``null`` (the Console, or no
    key), ``other`` (the roll-up beyond --cost-series-max). Where the name has a budget:
    the budget, the name's cost on both providers (``spent``) and whether it is over."""

    label: str
    kind: str
    key_ids: tuple[str, ...]
    amount: Decimal
    budget: Decimal | None = None
    spent: Decimal | None = None
    over: bool = False


@dataclass(frozen=True)
class Stack:
    """One series of the chart: a label's cost on each day, and over them all."""

    label: str
    kind: str
    amounts: tuple[Decimal, ...]
    total: Decimal


@dataclass(frozen=True)
class GroupTotal:
    """This month's cost of one project (OpenAI) or workspace (Anthropic)."""

    id: str | None
    label: str
    kind: str  # name, unknown (the label is the id) or null (no project; the Default Workspace)
    amount: Decimal


@dataclass(frozen=True)
class ProviderView:
    provider: str
    title: str
    group_title: str  # project or workspace
    status: str  # ok, never (no refresh yet), stale, failing
    refreshed_at: float | None
    failed_at: float | None
    failure: str | None
    failures: int
    month: date  # the first of the month the figures are of
    total: Decimal
    bars: tuple[Bar, ...]
    groups: tuple[GroupTotal, ...]
    days: tuple[date, ...]
    stacks: tuple[Stack, ...]


@dataclass(frozen=True)
class BudgetLine:
    name: str
    budget: Decimal
    spent: Decimal
    over: bool


@dataclass(frozen=True)
class UnknownLine:
    provider: str
    field: str
    id: str
    last_seen: float
    count: int


@dataclass(frozen=True)
class Overview:
    generated_at: float
    cost_series: str  # on, off (--cost-interval 0), no_admin_key (on, but no provider has a key)
    providers: tuple[ProviderView, ...]
    missing: tuple[str, ...]  # providers without an admin key, where another has one
    budgets: tuple[BudgetLine, ...]
    budgets_error: str | None
    unknown_count: int
    unknown_recent: tuple[UnknownLine, ...]
    warnings: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The same, for costs.json: amounts as decimal strings, times as ISO 8601 UTC."""
        return {
            "generated_at": iso(self.generated_at), "currency": "USD", "cost_series": self.cost_series,
            "providers": {view.provider: _provider_json(view) for view in self.providers},
            "without_admin_key": {provider: ENABLE[provider] for provider in self.missing},
            "budgets": [{"api_key_name": line.name, "budget": plain(line.budget), "spent": plain(line.spent),
                         "over": line.over} for line in self.budgets],
            "budgets_error": self.budgets_error,
            "unknown_ids": {"count": self.unknown_count, "report": "/orgproxy/unknown?format=toml",
                            "recent": [{"provider": u.provider, "field": u.field, "id": u.id,
                                        "last_seen": iso(u.last_seen), "count": u.count}
                                       for u in self.unknown_recent]},
            "warnings": list(self.warnings),
        }


def _provider_json(view: ProviderView) -> dict[str, Any]:
    return {
        "title": view.title, "status": view.status, "refreshed_at": iso(view.refreshed_at),
        "failed_at": iso(view.failed_at), "failure": view.failure, "failures": view.failures,
        "month": view.month.isoformat(), "total": plain(view.total),
        "keys": [{"label": bar.label, "kind": bar.kind, "api_key_ids": list(bar.key_ids),
                  "amount": plain(bar.amount), "budget": None if bar.budget is None else plain(bar.budget),
                  "spent_on_every_provider": None if bar.spent is None else plain(bar.spent),
                  "over_budget": bar.over} for bar in view.bars],
        f"{view.group_title}s": [{"id": g.id, "label": g.label, "kind": g.kind, "amount": plain(g.amount)}
                                 for g in view.groups],
        "daily": {"days": [day.isoformat() for day in view.days],
                  "series": [{"label": s.label, "kind": s.kind, "amounts": [plain(a) for a in s.amounts],
                              "total": plain(s.total)} for s in view.stacks]},
    }


def overview(figures: CostFigures | None, names: Names, budgets: Budgets, unknown: UnknownIds, now: float,
             cost_interval: float, budgets_error: str | None = None) -> Overview:
    """What the dashboard shows at ``now``. ``figures`` None: the cost series are off
    (``cost_interval`` 0) or no provider has an admin key."""
    shown = figures.providers if figures is not None else {}
    views = [provider_view(p.name, p.title, shown[p.name], names, now, cost_interval)
             for p in PROVIDERS if p.name in shown]
    cost_series = "off" if cost_interval == 0 else ("on" if views else "no_admin_key")
    missing = tuple(p.name for p in PROVIDERS if p.name not in shown) if views else ()
    views, lines = _with_budgets(views, budgets)
    rows = unknown.unresolved(names)
    recent = sorted(rows, key=lambda row: (-row[2].last_seen, row[0], row[1]))[:RECENT_UNKNOWN]
    warnings = [w for view in views for w in _warnings(view, now, cost_interval)]
    if budgets_error is not None:
        warnings.append(f"The budgets file was not read again: {budgets_error}. The budgets shown are the"
                        " previous ones, still in force.")
    return Overview(now, cost_series, tuple(views), missing, tuple(lines), budgets_error, len(rows),
                    tuple(UnknownLine(s.provider, f, i, s.last_seen, s.count) for f, i, s in recent),
                    tuple(warnings))


def provider_view(provider: str, title: str, costs: ProviderCosts, names: Names, now: float,
                  cost_interval: float) -> ProviderView:
    fields = FIELD_SET_OF[provider]
    key_names = names.by_field.get("api_key_id", {})
    group_field = GROUP_FIELD[provider]
    group_names = names.by_field.get(group_field, {})
    null_key = fields.null_names.get("api_key_id", NO_KEY)
    last = datetime.fromtimestamp(costs.refreshed_at if costs.refreshed_at is not None else now, UTC).date()
    end = int(datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp())
    first = end - (DAILY_DAYS - 1) * DAY
    starts = [first + n * DAY for n in range(DAILY_DAYS)]
    month: dict[tuple[str, str], Decimal] = {}
    this_month: set[tuple[str, str]] = set()
    ids: dict[tuple[str, str], set[str]] = {}
    daily: dict[tuple[str, str], list[Decimal]] = {}
    groups: dict[str | None, Decimal] = {}
    with exactly():
        for series in costs.series:
            key = _label(series.api_key_id, series.other, key_names, null_key)
            month[key] = month.get(key, ZERO) + series.month_to_date
            if series.exported:
                this_month.add(key)
            if series.api_key_id is not None and series.exported:
                ids.setdefault(key, set()).add(series.api_key_id)
            if series.daily:
                _add_days(daily, key, series.daily, (series.days_from - first) // DAY)
            if not series.other:
                groups[series.group_id] = groups.get(series.group_id, ZERO) + series.month_to_date
        bars = sorted((Bar(label, kind, tuple(sorted(ids.get((kind, label), ()))), amount)
                       for (kind, label), amount in month.items() if amount and (kind, label) in this_month),
                      key=lambda bar: (-bar.amount, bar.label))
        stacks = _stacks(daily)
        total = sum((bar.amount for bar in bars), ZERO)
    null_group = fields.null_names.get(group_field, NO_GROUP[provider])
    group_totals = sorted((GroupTotal(group, *_group_label(group, group_names, null_group), amount)
                           for group, amount in groups.items() if amount),
                          key=lambda g: (-g.amount, g.label))
    return ProviderView(provider, title, GROUP_TITLE[provider], _status(costs, now, cost_interval),
                        costs.refreshed_at, costs.failed_at, costs.failure, costs.failures, last.replace(day=1),
                        total, tuple(bars), tuple(group_totals),
                        tuple(datetime.fromtimestamp(start, UTC).date() for start in starts), stacks)


def _add_days(daily: dict[tuple[str, str], list[Decimal]], key: tuple[str, str], amounts: tuple[Decimal, ...],
              at: int) -> None:
    """A series' dollars of each day added into ``key``'s row of the chart's days, where
    its first day is the row's ``at`` (before it, or after, where the days are not all
    the chart's); each day added by ``map``, not a loop of Python."""
    if at < 0:
        amounts, at = amounts[-at:], 0
    if at >= DAILY_DAYS:
        return
    amounts = amounts[:DAILY_DAYS - at]
    if not amounts:
        return
    row = daily.get(key)
    if row is None:  # a name's first key (most names have one): its days as they are
        daily[key] = row = [ZERO] * DAILY_DAYS
        row[at:at + len(amounts)] = amounts
    else:
        row[at:at + len(amounts)] = map(add, row[at:at + len(amounts)], amounts)


def _label(api_key_id: str | None, other: bool, key_names: Mapping[str, str], null_key: str) -> tuple[str, str]:
    """(kind, label) of a series' key: what the page groups bars by."""
    if other:
        return "other", OTHER
    if api_key_id is None:
        return "null", null_key
    name = key_names.get(api_key_id)
    return ("name", name) if name is not None else ("unknown", valid_text(api_key_id))


def _group_label(group: str | None, group_names: Mapping[str, str], null_group: str) -> tuple[str, str]:
    if group is None:
        return null_group, "null"
    name = group_names.get(group)
    return (name, "name") if name is not None else (valid_text(group), "unknown")


def _stacks(daily: Mapping[tuple[str, str], list[Decimal]]) -> tuple[Stack, ...]:
    """The labels that cost most over the days, each a series, and the rest as ``other``
    (the roll-up of --cost-series-max among them); within ``exactly()``."""
    totals = [(sum(row, ZERO), kind, label) for (kind, label), row in daily.items()]
    ranked = sorted(((t, kind, label) for t, kind, label in totals if kind != "other" and t > 0),
                    key=lambda item: (-item[0], item[2]))
    top = ranked[:TOP_NAMES]
    kept = {(kind, label) for _, kind, label in top}
    stacks = [Stack(label, kind, tuple(daily[(kind, label)]), t) for t, kind, label in top]
    other = [ZERO] * DAILY_DAYS
    for key, row in daily.items():
        if key not in kept:
            other[:] = map(add, other, row)
    if any(other):
        stacks.append(Stack(OTHER, "other", tuple(other), sum(other, ZERO)))
    return tuple(stacks)


def _status(costs: ProviderCosts, now: float, cost_interval: float) -> str:
    if costs.failing:
        return "failing"
    if costs.refreshed_at is None:
        return "never"
    if cost_interval > 0 and now - costs.refreshed_at > STALE_AFTER_INTERVALS * cost_interval:
        return "stale"
    return "ok"


def _warnings(view: ProviderView, now: float, cost_interval: float) -> Iterable[str]:
    shown = f"the figures shown are from {iso(view.refreshed_at)}" if view.refreshed_at is not None else \
        "there are no figures yet"
    if view.status == "failing":
        yield (f"{view.title}: the last refresh of the costs failed ({iso(view.failed_at)}: {view.failure});"
               f" {shown}. orgproxy retries; its log says more.")
    elif view.status == "never":
        yield f"{view.title}: no costs yet: the first refresh has not finished."
    elif view.status == "stale":
        hours = (now - (view.refreshed_at or 0)) / 3600
        yield (f"{view.title}: the costs are stale: last refreshed {hours:.1f} hours ago ({iso(view.refreshed_at)}),"
               f" where a refresh comes every {cost_interval:g} s. See orgproxy's log.")


def _with_budgets(views: list[ProviderView], budgets: Budgets) -> tuple[list[ProviderView], list[BudgetLine]]:
    """The bars of names with a budget marked, and one line per budget: a name's cost on
    every provider against it."""
    if not budgets:
        return views, []
    with exactly():
        spent: dict[str, Decimal] = {}
        for view in views:
            for bar in view.bars:
                if bar.kind == "name" and bar.label in budgets:
                    spent[bar.label] = spent.get(bar.label, ZERO) + bar.amount
    lines = sorted((BudgetLine(name, budget, spent.get(name, ZERO), spent.get(name, ZERO) > budget)
                    for name, budget in budgets.items()), key=lambda line: (-line.spent / line.budget, line.name))
    marked = [replace(view, bars=tuple(
        replace(bar, budget=budgets[bar.label], spent=spent[bar.label], over=spent[bar.label] > budgets[bar.label])
        if bar.kind == "name" and bar.label in budgets else bar for bar in view.bars)) for view in views]
    return marked, lines
