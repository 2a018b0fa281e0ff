"""Prometheus metrics, on a registry of orgproxy's own.

Label values come from small fixed sets (routes, methods, status codes, id fields,
outcomes): never ids, names, tokens or raw paths, so the number of series stays bounded.
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

from orgproxy.fields import NAME_FIELD_FOR_ID, SOURCES
from orgproxy.names.snapshot import Names

# The *_created series double every counter for little use here.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("orgproxy_requests", "Requests answered, by route, method and status.",
                   ["route", "method", "status"], registry=REGISTRY)
UPSTREAM_SECONDS = Histogram("orgproxy_upstream_seconds", "Time for a whole upstream exchange, headers and body.",
                             registry=REGISTRY,
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf")))
IN_FLIGHT = Gauge("orgproxy_requests_in_flight", "Requests forwarded upstream and not yet answered.",
                  registry=REGISTRY)
IDS = Counter("orgproxy_ids", "Ids seen in responses, by id field and whether they were named.",
              ["field", "result"], registry=REGISTRY)
ALIAS_RELOADS = Counter("orgproxy_alias_reloads", "Alias file reloads, by result.", ["result"], registry=REGISTRY)
NAMES_LOADED = Gauge("orgproxy_names_loaded", "Names in force, by source.", ["source"], registry=REGISTRY)
DISCOVERY_RUNS = Counter("orgproxy_discovery_runs", "Discovery walks of the Admin API, by result.",
                         ["result"], registry=REGISTRY)
CONNECTIONS_CLOSED = Counter("orgproxy_connections_closed",
                             "Client connections the proxy closed before it had a request to answer, by reason.",
                             ["reason"], registry=REGISTRY)

# Every series present from the start (at 0), so dashboards and alerts see them.
for _field in NAME_FIELD_FOR_ID:
    for _result in ("named", "unknown"):
        IDS.labels(_field, _result)
for _result in ("ok", "failed"):
    ALIAS_RELOADS.labels(_result)
    DISCOVERY_RUNS.labels(_result)
for _reason in ("header_timeout", "max_connections", "out_of_descriptors"):
    CONNECTIONS_CLOSED.labels(_reason)


def method_label(method: bytes) -> str:
    text = method.decode("ascii", "replace").upper()
    return text if text in KNOWN_METHODS else "OTHER"


_request_series: dict[tuple[str, bytes, int], Any] = {}


def count_request(route: str, method: bytes, status: int) -> None:
    # The labelled series looked up once per (route, method, status): labels() builds
    # and locks on every call, and this runs on every request. Bounded: routes, methods
    # (unknown ones share OTHER) and status codes are few.
    key = (route, method, status)
    series = _request_series.get(key)
    if series is None:
        series = REQUESTS.labels(route, method_label(method), str(status))
        if len(_request_series) < 10_000:
            _request_series[key] = series
    series.inc()


_id_series: dict[tuple[str, str], Any] = {}


def count_ids(occurrences: dict[tuple[str, str], int], unknown_ids: dict[str, str]) -> None:
    # Summed here first: a page has hundreds of distinct ids, and each labelled
    # increment takes a lock.
    totals: dict[tuple[str, str], int] = {}
    for (id_field, id_value), times in occurrences.items():
        key = (id_field, "unknown" if unknown_ids.get(id_value) == id_field else "named")
        totals[key] = totals.get(key, 0) + times
    for key, times in totals.items():
        series = _id_series.get(key)
        if series is None:  # a few id fields times named/unknown: bounded
            series = _id_series[key] = IDS.labels(*key)
        series.inc(times)


def count_alias_reload(result: str) -> None:
    ALIAS_RELOADS.labels(result).inc()


def count_connection_closed(reason: str) -> None:
    """A client connection the proxy closed before it had a request to answer: one of
    header_timeout, max_connections, out_of_descriptors."""
    CONNECTIONS_CLOSED.labels(reason).inc()


def follow_names(current: Callable[[], Names]) -> None:
    """Report the names in force, read at each scrape from ``current()``."""
    for source in SOURCES:
        NAMES_LOADED.labels(source).set_function(lambda source=source: current().by_source.get(source, 0))


def render() -> tuple[bytes, bytes]:
    """(content type, body) of a scrape."""
    return CONTENT_TYPE_LATEST.encode(), generate_latest(REGISTRY)
