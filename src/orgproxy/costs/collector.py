"""The cost series at each scrape, labelled with the names in force then.

Names in label values are the one exception to "no names in labels": the label sets are
bounded by the organizations' keys and by ``--cost-series-max`` (beyond it the smallest
of each provider roll into one ``api_key_name="other"`` series). The series are drawn from
the last figures by a collector rather than by labelled gauges: a rename replaces a
series, never leaves the old one behind (prometheus_client cannot remove a labelled child
in multiprocess mode).

Every series says its ``provider``; OpenAI's are by key and project (``project_id``,
``project_name``), Anthropic's by key and workspace (``workspace_id``, ``workspace_name``),
its null key and workspace named as its reports' nulls are (the Console, the Default
Workspace).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from orgproxy.body.insertion import UNKNOWN
from orgproxy.costs.figures import CostFigures, Series
from orgproxy.costs.store import CostStore
from orgproxy.fields import FIELD_SET_OF
from orgproxy.snapshot import Names
from orgproxy.text import valid_text

OTHER = "other"
# Each provider's second id field, beside the key: what its costs are grouped by.
GROUP_FIELD = {"openai": "project_id", "anthropic": "workspace_id"}
MONTH_TO_DATE = "orgproxy_cost_month_to_date_usd"
LAST_DAY = "orgproxy_cost_last_day_usd"


def cost_families(figures: CostFigures, names: Names) -> Iterator[Metric]:
    """The cost series as metric families, labelled with the names in force."""
    month = Metric(MONTH_TO_DATE, "Billed cost this UTC month so far, in USD, by provider, key and project"
                   " (OpenAI) or workspace (Anthropic).", "gauge")
    last_day = Metric(LAST_DAY, "Billed cost on the last complete UTC day, in USD, by provider, key and project"
                      " (OpenAI) or workspace (Anthropic).", "gauge")
    for series in (s for costs in figures.providers.values() for s in costs.series if s.exported):
        # Names are made text as they enter, but an id is the upstream's to choose: a lone
        # surrogate would fail the whole scrape (the text format is UTF-8).
        labels = {label: valid_text(value) for label, value in _labels(series, names).items()}
        # Dollars are exact decimals until here, where Prometheus takes a double.
        month.add_sample(MONTH_TO_DATE, labels, float(series.month_to_date))
        last_day.add_sample(LAST_DAY, labels, float(series.last_day))
    yield month
    yield last_day
    refreshed = GaugeMetricFamily("orgproxy_cost_refresh_timestamp_seconds",
                                  "When each provider's cost series were last refreshed (POSIX seconds; 0: never).",
                                  labels=["provider"])
    failures = CounterMetricFamily("orgproxy_cost_refresh_failures",
                                   "Refreshes of each provider's cost series that failed.", labels=["provider"])
    for provider, costs in figures.providers.items():
        refreshed.add_metric([provider], costs.refreshed_at or 0.0)
        failures.add_metric([provider], costs.failures)
    yield refreshed
    yield failures


def _labels(series: Series, names: Names) -> dict[str, str]:
    group = GROUP_FIELD.get(series.provider, "project_id")
    fields = FIELD_SET_OF[series.provider]
    group_name = fields.name_field_for_id[group]
    labels = {"provider": series.provider}
    if series.other:
        return {**labels, "api_key_id": "", "api_key_name": OTHER, group: "", group_name: ""}
    return {**labels, "api_key_id": series.api_key_id or "",
            "api_key_name": _name(series.api_key_id, names.by_field.get("api_key_id", {}),
                                  fields.null_names.get("api_key_id")),
            group: series.group_id or "",
            group_name: _name(series.group_id, names.by_field.get(group, {}), fields.null_names.get(group))}


def _name(id_value: str | None, known: Mapping[str, str], null_name: str | None) -> str:
    if id_value is None:
        return null_name or ""  # Anthropic's Console and Default Workspace; OpenAI's: no key
    return known.get(id_value, UNKNOWN)


class CostCollector:
    """The registry's collector of the cost series; draws nothing until ``follow`` is
    called (cost series off, or no admin key)."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[Metric]] | None = None

    def follow(self, store: CostStore, names: Callable[[], Names]) -> None:
        self.source = lambda: cost_families(store.current(), names())

    def describe(self) -> list[Metric]:
        return []  # registered before anything is known: nothing to reserve

    def collect(self) -> Iterable[Metric]:
        return self.source() if self.source is not None else []


# Registered on the metrics of a process that shows the cost series (see tap.cost_series).
COLLECTOR = CostCollector()
