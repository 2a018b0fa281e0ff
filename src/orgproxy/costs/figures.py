"""The cost series' figures: dollars per key and project (or workspace) this month, on the
last complete day and on each of the last 30 days, exact decimals, bounded in number across
providers, and as the state file holds them. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from orgproxy.costs.window import DAY, Window
from orgproxy.fields import FIELD_SET_OF
from orgproxy.money import add, total

# (api_key_id, project or workspace id): either may be None (the Console, the Default
# Workspace, a cost with no key or no project)
Pair = tuple[str | None, str | None]
# 3: each series' daily figures, whether it is exported, and each provider's last failure;
# 2 (read only): per provider, dollars as decimal strings; 1 (read only): OpenAI's, as floats
FORMAT = 3
ZERO = Decimal(0)

def dense(by_day: Mapping[int, Decimal]) -> tuple[int, tuple[Decimal, ...]]:
    """Dollars by UTC day (its start) as a series holds them: the first day, and every day's
    dollars from it to the last, in order (0 where nothing was spent). Each day in its place
    lets the dashboard add series up a day at a time without a loop of Python per day."""
    if not by_day:
        return 0, ()
    first, last = min(by_day), max(by_day)
    return first, tuple(by_day.get(day, ZERO) for day in range(first, last + DAY, DAY))


@dataclass
class Figures:
    """Dollars this month to date, on the last complete day, and on each UTC day of the
    window; ``exported``: it cost something this month or on the last day, so it is a
    series on /metrics (a key that cost only earlier in the last 30 days is not)."""

    month_to_date: Decimal = ZERO
    last_day: Decimal = ZERO
    daily: dict[int, Decimal] = field(default_factory=dict)
    exported: bool = False

    def add_bucket(self, dollars: Decimal, window: Window, bucket_start: int) -> None:
        """A daily bucket's dollars, counted where ``window`` says they belong."""
        in_month, on_last_day = window.counts_in_month(bucket_start), window.is_last_day(bucket_start)
        if in_month:
            self.month_to_date = add(self.month_to_date, dollars)
        if on_last_day:
            self.last_day = add(self.last_day, dollars)
        self.exported = self.exported or in_month or on_last_day
        day = window.day_of(bucket_start)
        if day is not None:
            self.daily[day] = add(self.daily.get(day, ZERO), dollars)

    def add_series(self, series: Series) -> None:
        """A whole series' figures (rolled up into this one)."""
        self.month_to_date = add(self.month_to_date, series.month_to_date)
        self.last_day = add(self.last_day, series.last_day)
        self.exported = self.exported or series.exported
        for day, dollars in series.by_day():
            self.daily[day] = add(self.daily.get(day, ZERO), dollars)


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
    days_from: int = 0  # the UTC day (its start) of the first of ``daily``
    daily: tuple[Decimal, ...] = ()  # dollars on each day from it (see ``dense``)
    exported: bool = True  # a series on /metrics (see Figures)

    def by_day(self) -> list[tuple[int, Decimal]]:
        """(day, dollars) of each day it holds."""
        return [(self.days_from + n * DAY, dollars) for n, dollars in enumerate(self.daily)]


def _series_of(provider: str, key: str | None, group: str | None, figures: Figures, other: bool = False) -> Series:
    days_from, daily = dense(figures.daily)
    return Series(provider, key, group, figures.month_to_date, figures.last_day, other, days_from, daily,
                  figures.exported)


def series_of(provider: str, totals: Totals) -> list[Series]:
    return [_series_of(provider, key, group, f) for (key, group), f in totals.items()]


def _rank(series: Series) -> tuple[Decimal, Decimal, Decimal, str, str]:
    return (-series.month_to_date, -series.last_day, -total(series.daily),
            series.provider, str((series.api_key_id, series.group_id)))


def bounded(series: Iterable[Series], most: int) -> list[Series]:
    """At most ``most`` series (but one ``other`` per provider at the least): the largest
    month-to-date costs of every provider (then the largest of the last days), and each
    provider's rest rolled into one ``other`` series (a roll-up already made stays one)."""
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
        roll.setdefault(s.provider, Figures()).add_series(s)
    return regular[:keep] + [_series_of(provider, None, None, f, other=True) for provider, f in roll.items()]


@dataclass(frozen=True)
class ProviderCosts:
    """One provider's series, when they were last refreshed, how many refreshes failed, and
    when and why the last one failed if it did (what the failure was is the log's words:
    ids and paths, never a key)."""

    series: tuple[Series, ...] = ()
    refreshed_at: float | None = None
    failures: int = 0
    failed_at: float | None = None
    failure: str | None = None

    @property
    def failing(self) -> bool:
        """Whether the last refresh failed."""
        return self.failed_at is not None and (self.refreshed_at is None or self.failed_at > self.refreshed_at)


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
            name: {"refreshed_at": p.refreshed_at, "failures": p.failures, "failed_at": p.failed_at,
                   "failure": p.failure,
                   "series": [[s.api_key_id, s.group_id, str(s.month_to_date), str(s.last_day), s.other,
                               s.exported, s.days_from, [str(dollars) for dollars in s.daily]]
                              for s in p.series]}
            for name, p in self.providers.items()}}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CostFigures:
        """Raises ValueError (KeyError, TypeError, ArithmeticError) for anything but what
        ``to_json`` wrote, or the format before it (OpenAI's alone, dollars as floats)."""
        document = json.loads(data, parse_float=Decimal)
        if not isinstance(document, dict) or document.get("version") not in (1, 2, FORMAT):
            raise ValueError(f"not orgproxy's cost figures (version {FORMAT})")
        providers = document["providers"] if document["version"] != 1 else {"openai": document}
        if not isinstance(providers, dict) or not set(providers) <= set(FIELD_SET_OF):
            raise ValueError("no providers, or one orgproxy does not know")
        return cls(MappingProxyType({str(name): _provider_costs(name, p) for name, p in providers.items()}))


def _provider_costs(provider: str, document: Any) -> ProviderCosts:
    series = tuple(_series(provider, *entry) for entry in document["series"])
    failure = document.get("failure")
    return ProviderCosts(series, _time(document["refreshed_at"]), int(document["failures"]),
                         _time(document.get("failed_at")), failure if isinstance(failure, str) else None)


def _series(provider: str, key: object, group: object, month_to_date: object, last_day: object, other: object,
            exported: object = True, days_from: object = 0, daily: Iterable[object] = ()) -> Series:
    """A series as the file holds it (versions 1 and 2: its first five fields)."""
    return Series(provider, _id(key), _id(group), _dollars(month_to_date), _dollars(last_day), bool(other),
                  _day(days_from), tuple(_dollars(dollars) for dollars in daily), bool(exported))


def _time(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _day(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a day: {value!r}")
    return value


def _id(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dollars(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(f"not an amount: {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount
