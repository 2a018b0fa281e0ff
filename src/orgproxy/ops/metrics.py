"""Prometheus metrics, on a registry of orgproxy's own.

Label values come from small fixed sets (routes, methods, status codes, providers, id
fields, outcomes): never ids, names, tokens or raw paths, so the number of series stays
bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from orgproxy.fields import FIELD_SETS, SOURCES
from orgproxy.names.snapshot import Names

# The *_created series double every counter for little use here.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROVIDERS = tuple(fields.provider for fields in FIELD_SETS)  # "openai", "anthropic"
# The provider label of a request no provider's proxy answered (the proxy's own pages).
NO_PROVIDER = "none"

REQUESTS = Counter("orgproxy_requests", "Requests answered, by route, method, status and provider.",
                   ["route", "method", "status", "provider"], registry=REGISTRY)
UPSTREAM_SECONDS = Histogram("orgproxy_upstream_seconds", "Time for a whole upstream exchange, headers and body.",
                             ["provider"], registry=REGISTRY,
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf")))
IN_FLIGHT = Gauge("orgproxy_requests_in_flight", "Requests forwarded upstream and not yet answered.",
                  registry=REGISTRY)
IDS = Counter("orgproxy_ids", "Ids seen in responses, by provider, id field and whether they were named.",
              ["provider", "field", "result"], registry=REGISTRY)
ALIAS_RELOADS = Counter("orgproxy_alias_reloads", "Alias file reloads, by result.", ["result"], registry=REGISTRY)
NAMES_LOADED = Gauge("orgproxy_names_loaded", "Names in force, by source.", ["source"], registry=REGISTRY)
DISCOVERY_RUNS = Counter("orgproxy_discovery_runs", "Discovery walks of an Admin API, by provider and result.",
                         ["provider", "result"], registry=REGISTRY)

# Every series present from the start (at 0), so dashboards and alerts see them.
for _fields in FIELD_SETS:
    UPSTREAM_SECONDS.labels(_fields.provider)
    for _field in _fields.name_field_for_id:
        for _result in ("named", "unknown"):
            IDS.labels(_fields.provider, _field, _result)
    for _result in ("ok", "failed"):
        DISCOVERY_RUNS.labels(_fields.provider, _result)
for _result in ("ok", "failed"):
    ALIAS_RELOADS.labels(_result)


def method_label(method: bytes) -> str:
    text = method.decode("ascii", "replace").upper()
    return text if text in KNOWN_METHODS else "OTHER"


_request_series: dict[tuple[str, bytes, int, str], Any] = {}


def count_request(route: str, method: bytes, status: int, provider: str = NO_PROVIDER) -> None:
    # The labelled series looked up once per (route, method, status, provider): labels()
    # builds and locks on every call, and this runs on every request. Bounded: routes,
    # methods (unknown ones share OTHER), status codes and providers are few.
    key = (route, method, status, provider)
    series = _request_series.get(key)
    if series is None:
        series = REQUESTS.labels(route, method_label(method), str(status), provider)
        if len(_request_series) < 10_000:
            _request_series[key] = series
    series.inc()


def upstream_seconds(provider: str) -> Any:
    """The upstream time histogram of one provider."""
    return UPSTREAM_SECONDS.labels(provider)


_id_series: dict[tuple[str, str, str], Any] = {}


def count_ids(occurrences: dict[tuple[str, str], int], unknown_ids: dict[str, str], provider: str = "openai") -> None:
    # Summed here first: a page has hundreds of distinct ids, and each labelled
    # increment takes a lock.
    totals: dict[tuple[str, str, str], int] = {}
    for (id_field, id_value), times in occurrences.items():
        key = (provider, id_field, "unknown" if unknown_ids.get(id_value) == id_field else "named")
        totals[key] = totals.get(key, 0) + times
    for key, times in totals.items():
        series = _id_series.get(key)
        if series is None:  # two providers, a few id fields, named/unknown: bounded
            series = _id_series[key] = IDS.labels(*key)
        series.inc(times)


def follow_names(current: Callable[[], Names]) -> None:
    """Report the names in force, read at each scrape from ``current()``."""
    for source in SOURCES:
        NAMES_LOADED.labels(source).set_function(lambda source=source: current().by_source.get(source, 0))


def render() -> tuple[bytes, bytes]:
    """(content type, body) of a scrape."""
    return CONTENT_TYPE_LATEST.encode(), generate_latest(REGISTRY)
