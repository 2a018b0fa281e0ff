"""Prometheus metrics, for one process or for a daemon of several (``--workers``).

Label values come from small fixed sets (routes, methods, status codes, providers, id
fields, outcomes): never ids, names, tokens or raw paths, so the number of series stays
bounded.

**One process** (the default): the metrics live in memory, on a registry of orgproxy's
own; no file is written.

**Several processes** (``--workers N``): each process writes its metrics to memory-mapped
files in one directory the daemon's processes share, and whichever process answers a
scrape reads them all (prometheus_client's multiprocess mode, its documented answer for
pre-fork servers: ``PROMETHEUS_MULTIPROC_DIR`` and ``MultiProcessCollector``). Counters
and histograms are summed over every process the daemon ever ran, so a worker that dies
and is started again takes no count away; gauges are combined as their
``multiprocess_mode`` says (see below). The first process empties the directory at start
(``ops/rundir.py``) and, when a worker ends, drops its live gauges (``mark_process_dead``).

The mode is a property of the process, decided once, by ``start()`` in ``makeService``,
before any metric object exists: prometheus_client gives a metric (and each labelled
series, when ``labels()`` first makes it) the storage ``prometheus_client.values.ValueClass``
names at that moment, chosen from ``PROMETHEUS_MULTIPROC_DIR`` when prometheus_client was
first imported, which for twistd is before orgproxy's options are read. So ``start()`` sets
the variable and chooses the class again, as the library's own tests do; nothing here
makes a metric at import time.

**Adding a metric.** Make it on ``Metrics`` with ``counter()``, ``histogram()`` or
``gauge()``, never with prometheus_client's constructors directly (they would register it
where a multiprocess scrape counts it twice). Counters and histograms need nothing more.
A gauge says who writes it, which decides how the processes' values combine:

- ``EACH_PROCESS_ADDS`` (``livesum``): each process holds a share of the total, e.g.
  requests in flight. Set it whenever it changes, in the process where it changes.
- ``EACH_PROCESS_ALIKE`` (``livemostrecent``): every process holds the same value, e.g. the
  names in force. Setting it from ``on_scrape()`` is enough: the process answering the
  scrape writes last, so its own value is the one shown.
- ``ONE_PROCESS`` (``mostrecent``): only one process computes it, the first (the one that
  runs discovery and talks to the Admin API), e.g. the cost gauges
  ``orgproxy_cost_month_to_date_usd{api_key_id, api_key_name, project_id, project_name}``:
  set them there when the value is fetched, never from a worker and never from
  ``on_scrape()`` (a worker answering the scrape would write its own, empty, view). Its
  latest write wins, and stays after the writer ends until it writes again. Make it in
  ``makeService`` after ``metrics.start()``, beside the service that fetches its values,
  which like discovery runs in the first process only (``is_worker`` there is false; here
  ``Metrics.first_process`` says so); a scrape any worker answers shows it all the same.

**Counted in a batch.** What every request records (its count, its ids, its upstream
time, the requests in flight) is added up in plain dictionaries and written to
prometheus_client by ``flush()``: before every scrape, at least once a second (the
``MetricsFlush`` service; with workers, this is how fresh another process's scrape sees
this one's counts) and when the daemon stops. A labelled increment takes a lock and,
with workers, writes to a memory-mapped file: several per request were a measurable
share of a small request's time.

What multiprocess mode cannot do, so no metric may rely on it: ``set_function`` (a value
computed at scrape time exists only in the process scraped; use ``on_scrape`` for
``EACH_PROCESS_ALIKE`` gauges, explicit ``set()`` otherwise), and ``remove()``/``clear()`` of
a labelled series (the series stays in the files: bound a gauge's label sets, and set a
series that no longer applies to 0 rather than removing it). ``EACH_PROCESS_ALIKE`` and
``ONE_PROCESS`` gauges (the mostrecent modes) take ``set()`` only: prometheus_client refuses
``inc``/``dec`` on them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from orgproxy.fields import FIELD_SETS, SOURCES
from orgproxy.names.snapshot import Names

# The *_created series double every counter for little use here.
disable_created_metrics()
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROVIDERS = tuple(fields.provider for fields in FIELD_SETS)  # "openai", "anthropic"
# The provider label of a request no provider's proxy answered (the proxy's own pages).
NO_PROVIDER = "none"
# Where prometheus_client's multiprocess mode looks for its directory.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Who writes a gauge: its multiprocess_mode (see the module's docstring).
EACH_PROCESS_ADDS = "livesum"
EACH_PROCESS_ALIKE = "livemostrecent"
ONE_PROCESS = "mostrecent"
WRITERS = (EACH_PROCESS_ADDS, EACH_PROCESS_ALIKE, ONE_PROCESS)
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))
# Why the proxy closed a client connection before it had a request to answer: its
# request did not arrive in time; from outside --allow-from; over a cap, every connection
# there busy; to make room at a cap for a newer one; accept() out of file descriptors.
CONNECTION_CLOSED_REASONS = ("header_timeout", "forbidden_source", "max_connections", "max_connections_per_source",
                             "evicted", "out_of_descriptors")
# Cached labelled series at most (a bound, should a label ever take unexpected values).
SERIES_CACHE_LIMIT = 10_000
# Upstream times held for the next flush at most: past it they are written at once (only
# reached where nothing flushes, e.g. a part of the daemon used on its own).
PENDING_OBSERVATIONS_LIMIT = 10_000
# Seconds between flushes of the batched counts (see the module's docstring).
FLUSH_INTERVAL = 1.0


def method_label(method: bytes) -> str:
    text = method.decode("ascii", "replace").upper()
    return text if text in KNOWN_METHODS else "OTHER"


class Metrics:
    """One process's metrics: in memory (``directory`` None), or in the multiprocess
    ``directory`` the daemon's processes share.

    ``first_process``: whether this is the process twistd started (or the only one).
    Events every process sees alike, such as a reload of the alias file they all read, are
    counted there only, so that a daemon's counts do not depend on ``--workers``.
    ``process`` names this process in the directory's file names (tests give their own).
    """

    def __init__(self, directory: str | None = None, *, first_process: bool = True,
                 process: Callable[[], int] = os.getpid):
        self.directory = directory
        self.first_process = first_process
        if directory is None:
            # prometheus_client's single-process storage, whatever the environment says.
            values.ValueClass = values.MutexValue
            self.registry = CollectorRegistry(auto_describe=True)
            self.home: CollectorRegistry | None = self.registry
        else:
            os.environ[MULTIPROC_DIR_VARIABLE] = directory
            values.ValueClass = values.MultiProcessValue(process)
            # A scrape reads the files alone: metrics registered on the scrape's registry
            # as well would be exported twice.
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=directory)
            self.home = None
        self.scrape_hooks: list[Callable[[], None]] = []
        self._request_series: dict[tuple[str, bytes, int, str], Any] = {}
        self._id_series: dict[tuple[str, str, str], Any] = {}
        # Counted since the last flush.
        self._requests_pending: dict[tuple[str, bytes, int, str], int] = {}
        self._ids_pending: dict[tuple[str, str, str], int] = {}
        self._upstream_pending: list[tuple[str, float]] = []
        self._in_flight_now: Callable[[], int] | None = None
        self._in_flight_written = 0

        self.requests = self.counter("orgproxy_requests",
                                     "Requests answered, by route, method, status and provider.",
                                     ["route", "method", "status", "provider"])
        self.upstream_seconds = self.histogram("orgproxy_upstream_seconds",
                                               "Time for a whole upstream exchange, headers and body.",
                                               ["provider"], buckets=UPSTREAM_BUCKETS)
        self.in_flight = self.gauge("orgproxy_requests_in_flight",
                                    "Requests forwarded upstream and not yet answered.",
                                    written_by=EACH_PROCESS_ADDS)
        self.ids = self.counter("orgproxy_ids",
                                "Ids seen in responses, by provider, id field and whether they were named.",
                                ["provider", "field", "result"])
        self.alias_reloads = self.counter("orgproxy_alias_reloads", "Alias file reloads, by result.", ["result"])
        self.names_loaded = self.gauge("orgproxy_names_loaded", "Names in force, by source.", ["source"],
                                       written_by=EACH_PROCESS_ALIKE)
        self.discovery_runs = self.counter("orgproxy_discovery_runs",
                                           "Discovery walks of an Admin API, by provider and result.",
                                           ["provider", "result"])
        self.connections_closed = self.counter(
            "orgproxy_connections_closed",
            "Client connections the proxy closed before it had a request to answer, by reason.", ["reason"])
        # Every series present from the start (at 0), so dashboards and alerts see them.
        self.in_flight.set(0)
        self._upstream_series = {fields.provider: self.upstream_seconds.labels(fields.provider)
                                 for fields in FIELD_SETS}
        for fields in FIELD_SETS:
            for field in fields.name_field_for_id:
                for result in ("named", "unknown"):
                    self.ids.labels(fields.provider, field, result)
            for result in ("ok", "failed"):
                self.discovery_runs.labels(fields.provider, result)
        for result in ("ok", "failed"):
            self.alias_reloads.labels(result)
        for reason in CONNECTION_CLOSED_REASONS:
            self.connections_closed.labels(reason)

    # --- making metrics ------------------------------------------------------------------

    def counter(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.home)

    def histogram(self, name: str, documentation: str, labels: Iterable[str] = (),
                  buckets: Iterable[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.home, buckets=tuple(buckets))

    def gauge(self, name: str, documentation: str, labels: Iterable[str] = (), *, written_by: str) -> Gauge:
        """A gauge, saying who writes it: EACH_PROCESS_ADDS, EACH_PROCESS_ALIKE or ONE_PROCESS."""
        if written_by not in WRITERS:
            raise ValueError(f"written_by must be one of {', '.join(WRITERS)}, not {written_by!r}")
        return Gauge(name, documentation, labels, registry=self.home, multiprocess_mode=written_by)

    def on_scrape(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the process answering each scrape, just before it reads the values."""
        self.scrape_hooks.append(hook)

    # --- what the daemon records ----------------------------------------------------------

    def count_request(self, route: str, method: bytes, status: int, provider: str = NO_PROVIDER) -> None:
        key = (route, method, status, provider)
        pending = self._requests_pending
        pending[key] = pending.get(key, 0) + 1

    def count_ids(self, by_field: dict[tuple[str, str], int], provider: str = "openai") -> None:
        """Count a response's ids: ``by_field`` is (id field, "named" or "unknown") -> how many."""
        pending = self._ids_pending
        for (id_field, result), times in by_field.items():
            key = (provider, id_field, result)
            pending[key] = pending.get(key, 0) + times

    def observe_upstream(self, seconds: float, provider: str = "openai") -> None:
        self._upstream_pending.append((provider, seconds))
        if len(self._upstream_pending) > PENDING_OBSERVATIONS_LIMIT:
            self.flush()

    def follow_in_flight(self, count: Callable[[], int]) -> None:
        """Report ``count()`` as the requests in flight, at each flush."""
        self._in_flight_now = count

    def flush(self) -> None:
        """Write what was counted since the last flush to prometheus_client's storage."""
        requests, self._requests_pending = self._requests_pending, {}
        for key, times in requests.items():
            series = self._request_series.get(key)
            if series is None:
                # The labelled series looked up once per (route, method, status, provider).
                route, method, status, provider = key
                series = self.requests.labels(route, method_label(method), str(status), provider)
                if len(self._request_series) < SERIES_CACHE_LIMIT:
                    self._request_series[key] = series
            series.inc(times)
        ids, self._ids_pending = self._ids_pending, {}
        for key, times in ids.items():
            series = self._id_series.get(key)
            if series is None:  # two providers, a few id fields, named/unknown: bounded
                series = self._id_series[key] = self.ids.labels(*key)
            series.inc(times)
        observed, self._upstream_pending = self._upstream_pending, []
        for provider, seconds in observed:
            series = self._upstream_series.get(provider)
            if series is None:  # the providers are known at start: this is never reached
                series = self.upstream_seconds.labels(provider)
            series.observe(seconds)
        if self._in_flight_now is not None:
            now = self._in_flight_now()
            if now != self._in_flight_written:  # (with workers, each write is a file write)
                self._in_flight_written = now
                self.in_flight.set(now)

    def count_alias_reload(self, result: str) -> None:
        if self.first_process:
            self.alias_reloads.labels(result).inc()

    def follow_names(self, current: Callable[[], Names]) -> None:
        """Report the names in force, as ``current()`` has them at each scrape."""
        def report() -> None:
            by_source = current().by_source
            for source in SOURCES:
                self.names_loaded.labels(source).set(by_source.get(source, 0))
        self.on_scrape(report)

    def register(self, collector: Any) -> None:
        """A collector whose series every scrape shows, computed by the process that
        answers it (in multiprocess mode too: it is not written to the shared files)."""
        self.registry.register(collector)

    def worker_ended(self, pid: int) -> None:
        """A worker of this daemon ended: its live gauges (its requests in flight) go."""
        if self.directory is not None:
            mark_process_dead(pid, self.directory)

    def render(self) -> tuple[bytes, bytes]:
        """(content type, body) of a scrape."""
        self.flush()
        for hook in self.scrape_hooks:
            hook()
        return CONTENT_TYPE_LATEST.encode(), generate_latest(self.registry)


class MetricsFlush(Service):
    """Flushes the counts of ``metrics`` every FLUSH_INTERVAL seconds while it runs."""

    def __init__(self, metrics: Metrics, clock: IReactorTime):
        self.flushing = LoopingCall(metrics.flush)
        self.flushing.clock = clock

    def startService(self) -> None:
        super().startService()
        self.flushing.start(FLUSH_INTERVAL, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self.flushing.running:
            self.flushing.stop()


_installed: Metrics | None = None


def start(directory: str | None = None, *, first_process: bool = True) -> Metrics:
    """This process's metrics, made now (see the module's docstring) and used from now on."""
    global _installed
    _installed = Metrics(directory, first_process=first_process)
    return _installed


def installed() -> Metrics:
    """This process's metrics; one process's, made at first use, where ``start`` was never
    called (a part of the daemon used on its own, as tests do)."""
    if _installed is None:
        return start()
    return _installed


# What the daemon's parts record, on this process's metrics.

def count_request(route: str, method: bytes, status: int, provider: str = NO_PROVIDER) -> None:
    installed().count_request(route, method, status, provider)


def count_ids(by_field: dict[tuple[str, str], int], provider: str = "openai") -> None:
    installed().count_ids(by_field, provider)


def observe_upstream(seconds: float, provider: str = "openai") -> None:
    installed().observe_upstream(seconds, provider)


def follow_in_flight(count: Callable[[], int]) -> None:
    installed().follow_in_flight(count)


def flush() -> None:
    installed().flush()


def count_alias_reload(result: str) -> None:
    installed().count_alias_reload(result)


def count_discovery(result: str, provider: str = "openai") -> None:
    installed().discovery_runs.labels(provider, result).inc()


def count_connection_closed(reason: str) -> None:
    """A client connection the proxy closed before it had a request to answer: one of
    ``CONNECTION_CLOSED_REASONS``."""
    installed().connections_closed.labels(reason).inc()


def render() -> tuple[bytes, bytes]:
    return installed().render()
