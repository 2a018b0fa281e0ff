"""The cost series' figures: dollars per key and project (or workspace), exact decimals,
bounded in number across providers, and as the state file holds them. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from orgproxy.fields import FIELD_SET_OF
from orgproxy.money import add

# (api_key_id, project or workspace id): either may be None (the Console, the Default
# Workspace, a cost with no key or no project)
Pair = tuple[str | None, str | None]
FORMAT = 2  # 2: per provider, dollars as decimal strings; 1 (read only): OpenAI's, as floats
ZERO = Decimal(0)


@dataclass
class Figures:
    """Dollars this month to date, and on the last complete day."""

    month_to_date: Decimal = ZERO
    last_day: Decimal = ZERO

    def add(self, dollars: Decimal, in_month: bool, on_last_day: bool) -> None:
        if in_month:
            self.month_to_date = add(self.month_to_date, dollars)
        if on_last_day:
            self.last_day = add(self.last_day, dollars)


Totals = dict[Pair, Figures]


@dataclass(frozen=True)
class Series:
    """One series' ids and figures; ``other`` is the roll-up of the smallest."""

    provider: str
    api_key_id: str | None
    group_id: str | None  # the project (OpenAI) or workspace (Anthropic)
    month_to_date: Decimal
    last_day: Decimal
    other: bool = False


def series_of(provider: str, totals: Totals) -> list[Series]:
    return [Series(provider, key, group, f.month_to_date, f.last_day) for (key, group), f in totals.items()]


def _rank(series: Series) -> tuple[Decimal, Decimal, str, str]:
    return -series.month_to_date, -series.last_day, series.provider, str((series.api_key_id, series.group_id))


def bounded(series: Iterable[Series], most: int) -> list[Series]:
    """At most ``most`` series (but one ``other`` per provider at the least): the largest
    month-to-date costs of every provider, and each provider's rest rolled into one
    ``other`` series (a roll-up already made stays one)."""
    every = list(series)
    regular = sorted((s for s in every if not s.other), key=_rank)
    rolled = [s for s in every if s.other]
    keep = len(regular)
    for others in range(len({s.provider for s in every}) + 1):
        keep = max(0, most - others)
        if len({s.provider for s in regular[keep:]} | {s.provider for s in rolled}) <= others:
            break
    roll: dict[str, Figures] = {}
    for s in [*regular[keep:], *rolled]:
        figures = roll.setdefault(s.provider, Figures())
        figures.add(s.month_to_date, True, False)
        figures.add(s.last_day, False, True)
    return regular[:keep] + [Series(provider, None, None, f.month_to_date, f.last_day, other=True)
                             for provider, f in roll.items()]


@dataclass(frozen=True)
class ProviderCosts:
    """One provider's series, when they were last refreshed, and how many refreshes failed."""

    series: tuple[Series, ...] = ()
    refreshed_at: float | None = None
    failures: int = 0


@dataclass(frozen=True)
class CostFigures:
    """What every scrape shows: each provider's costs (providers in the order they came)."""

    providers: Mapping[str, ProviderCosts] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, provider: str) -> ProviderCosts:
        return self.providers.get(provider, ProviderCosts())

    def with_provider(self, provider: str, costs: ProviderCosts, most: int) -> CostFigures:
        """These figures with ``provider``'s replaced by ``costs``, every series bounded again."""
        every = {**self.providers, provider: costs}
        kept = bounded([s for p in every.values() for s in p.series], most)
        return CostFigures(MappingProxyType({
            name: replace(p, series=tuple(s for s in kept if s.provider == name)) for name, p in every.items()}))

    def to_json(self) -> bytes:
        return json.dumps({"version": FORMAT, "providers": {
            name: {"refreshed_at": p.refreshed_at, "failures": p.failures,
                   "series": [[s.api_key_id, s.group_id, str(s.month_to_date), str(s.last_day), s.other]
                              for s in p.series]}
            for name, p in self.providers.items()}}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CostFigures:
        """Raises ValueError (KeyError, TypeError, ArithmeticError) for anything but what
        ``to_json`` wrote, or the format before it (OpenAI's alone, dollars as floats)."""
        document = json.loads(data, parse_float=Decimal)
        if not isinstance(document, dict) or document.get("version") not in (1, FORMAT):
            raise ValueError(f"not orgproxy's cost figures (version {FORMAT})")
        providers = document["providers"] if document["version"] == FORMAT else {"openai": document}
        if not isinstance(providers, dict) or not set(providers) <= set(FIELD_SET_OF):
            raise ValueError("no providers, or one orgproxy does not know")
        return cls(MappingProxyType({str(name): _provider_costs(name, p) for name, p in providers.items()}))


def _provider_costs(provider: str, document: Any) -> ProviderCosts:
    series = tuple(Series(provider, _id(key), _id(group), _dollars(mtd), _dollars(day), bool(other))
                   for key, group, mtd, day, other in document["series"])
    refreshed_at = document["refreshed_at"]
    return ProviderCosts(series, None if refreshed_at is None else float(refreshed_at), int(document["failures"]))


def _id(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dollars(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(f"not an amount: {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount
