"""What each key cost this month, for Prometheus: the cost series.

With an admin key and ``--cost-interval`` (seconds, 0 off), one process asks the Admin API
for this month's costs grouped by ``api_key_id`` and ``project_id`` (every page), at start,
every interval, and after failures with discovery's backoff (``ops.periodic``). Each scrape
exports, per key and project:

    orgproxy_cost_month_to_date_usd{api_key_id, api_key_name, project_id, project_name}
    orgproxy_cost_last_day_usd{...}          (the last complete UTC day)

and ``orgproxy_cost_refresh_timestamp_seconds`` (the last success, 0 before any) and
``orgproxy_cost_refresh_failures_total``.

Names in label values are the one exception to "no names in labels": the label sets are
bounded by the organization's keys and by ``--cost-series-max`` (beyond it the smallest
roll into one ``api_key_name="other"`` series). The series are drawn at each scrape from
the last figures and the names in force then, by a collector rather than by labelled
gauges: a rename replaces a series, never leaves the old one behind (prometheus_client
cannot remove a labelled child in multiprocess mode).

The last figures are kept in ``--state-dir``/costs.json: by the process that fetches,
after each refresh; read by every other process (``--workers``) at its scrapes, so every
scrape sees the same values; and read back at start, so a restart keeps the last values
(with their time) until the next refresh. A failure keeps the last values and counts one.
The admin key is never in a label, a log line or the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.defer import CancelledError

from orgproxy.body.amend import UNKNOWN
from orgproxy.body.jsonvalues import is_number
from orgproxy.errors import ProxyError
from orgproxy.names.admin_walk import DiscoveryFailed, Fetch, admin_page
from orgproxy.names.snapshot import Names
from orgproxy.ops.logs import log
from orgproxy.ops.periodic import Periodic
from orgproxy.text import valid_text

COSTS_PATH = "/v1/organization/costs"
FILENAME = "costs.json"
DAY = 86400
MAX_PAGES = 1000  # a guard against a cursor that never ends (a month is 32 buckets at most)
OTHER = "other"
LABELS = ("api_key_id", "api_key_name", "project_id", "project_name")

# (api_key_id, project_id): either may be None (a cost with no key, or no project)
Pair = tuple[str | None, str | None]


@dataclass(frozen=True)
class Window:
    """What one refresh asks for: from the first of the month (or yesterday, on the 1st)
    to the end of today, in UTC days."""

    start_time: int
    end_time: int
    month_start: int
    last_day_start: int  # the last complete UTC day: yesterday

    @classmethod
    def at(cls, now: float) -> Window:
        today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        month_start = int(today.replace(day=1).timestamp())
        last_day_start = int((today - timedelta(days=1)).timestamp())
        today_start = int(today.timestamp())
        return cls(min(month_start, last_day_start), today_start + DAY, month_start, last_day_start)

    def query(self) -> list[tuple[str, str]]:
        days = (self.end_time - self.start_time) // DAY
        return [("start_time", str(self.start_time)), ("end_time", str(self.end_time)),
                ("bucket_width", "1d"), ("limit", str(days)),
                ("group_by", "api_key_id"), ("group_by", "project_id")]


@dataclass
class Figures:
    """Dollars per (key, project): this month to date, and on the last complete day."""

    month_to_date: float = 0.0
    last_day: float = 0.0


def add_page(totals: dict[Pair, Figures], page: dict[str, Any], window: Window) -> None:
    """Every USD amount of a costs page added into ``totals``; DiscoveryFailed for a page
    whose shape is not OpenAI's."""
    for bucket in page["data"]:
        if not isinstance(bucket, dict) or not isinstance(bucket.get("start_time"), int) \
                or not isinstance(bucket.get("results"), list):
            raise DiscoveryFailed(f"{COSTS_PATH}: a bucket without start_time or results")
        start = bucket["start_time"]
        for row in bucket["results"]:
            amount = row.get("amount") if isinstance(row, dict) else None
            if not isinstance(amount, dict) or not is_number(amount.get("value")):
                raise DiscoveryFailed(f"{COSTS_PATH}: a result without amount.value")
            if str(amount.get("currency", "usd")).lower() != "usd":
                continue  # the series are in dollars; OpenAI bills in dollars
            pair = (_id(row.get("api_key_id")), _id(row.get("project_id")))
            figures = totals.setdefault(pair, Figures())
            if start >= window.month_start:
                figures.month_to_date += amount["value"]
            if start == window.last_day_start:
                figures.last_day += amount["value"]


def _id(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def fetch_costs(fetch: Fetch, window: Window) -> dict[Pair, Figures]:
    """The window's costs per (key, project), walking every ``next_page``."""
    totals: dict[Pair, Figures] = {}
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        query = window.query() + ([("page", cursor)] if cursor else [])
        try:
            response = await fetch(COSTS_PATH, query)
        except ProxyError as e:
            raise DiscoveryFailed(f"{COSTS_PATH}: {e.message}") from None
        page = admin_page(COSTS_PATH, response)
        add_page(totals, page, window)
        next_page = page.get("next_page")
        if not page.get("has_more"):
            return totals
        if not isinstance(next_page, str) or not next_page or next_page == cursor:
            raise DiscoveryFailed(f"{COSTS_PATH}: has_more without a new next_page")
        cursor = next_page
    raise DiscoveryFailed(f"{COSTS_PATH}: more than {MAX_PAGES} pages")


@dataclass(frozen=True)
class Series:
    """One series' ids and figures; ``other`` is the roll-up of the smallest."""

    api_key_id: str | None
    project_id: str | None
    month_to_date: float
    last_day: float
    other: bool = False


def bounded(totals: dict[Pair, Figures], most: int) -> list[Series]:
    """At most ``most`` series: the largest month-to-date costs, and the rest rolled into
    one ``other`` series."""
    ranked = sorted(totals.items(), key=lambda item: (-item[1].month_to_date, -item[1].last_day,
                                                      str(item[0])))
    kept = ranked if len(ranked) <= most else ranked[:most - 1]
    series = [Series(key, project, f.month_to_date, f.last_day) for (key, project), f in kept]
    rest = ranked[len(kept):]
    if rest:
        series.append(Series(None, None, sum(f.month_to_date for _, f in rest),
                             sum(f.last_day for _, f in rest), other=True))
    return series


@dataclass(frozen=True)
class CostFigures:
    """What every scrape shows: the series, when they were last refreshed, and how many
    refreshes failed."""

    series: tuple[Series, ...] = ()
    refreshed_at: float | None = None
    failures: int = 0

    def to_json(self) -> bytes:
        return json.dumps({"version": 1, "refreshed_at": self.refreshed_at, "failures": self.failures,
                           "series": [[s.api_key_id, s.project_id, s.month_to_date, s.last_day, s.other]
                                      for s in self.series]}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CostFigures:
        """Raises ValueError (KeyError, TypeError) for anything but what ``to_json`` wrote."""
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("version") != 1:
            raise ValueError("not orgproxy's cost figures (version 1)")
        series = tuple(Series(_id(key), _id(project), float(mtd), float(day), bool(other))
                       for key, project, mtd, day, other in document["series"])
        refreshed_at = document["refreshed_at"]
        return cls(series, None if refreshed_at is None else float(refreshed_at), int(document["failures"]))


class CostStore:
    """The last figures: in memory and in ``path`` for the process that fetches
    (``writer``), read from ``path`` (again whenever it changes) by every other process."""

    def __init__(self, path: str, writer: bool):
        self.path = path
        self.writer = writer
        self.figures = CostFigures()
        self.stamp: tuple[int, ...] | None = None  # the file as last read

    def load(self) -> None:
        """Read the file if it changed since the last read; a missing one is no figures."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            log.warn("Cannot read the cost series in {path}: {error}", path=self.path, error=e.strerror)
            return
        stamp = (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)
        if stamp == self.stamp:
            return
        self.stamp = stamp  # a broken file is reported once, not at every scrape
        try:
            with open(self.path, "rb") as f:
                self.figures = CostFigures.from_json(f.read(16 * 1024 * 1024))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warn("Ignoring the cost series in {path}: {error}", path=self.path, error=str(e))

    def current(self) -> CostFigures:
        if not self.writer:
            self.load()
        return self.figures

    def replace(self, figures: CostFigures) -> None:
        """Keep ``figures``, and write them for the other processes (and the next start)."""
        self.figures = figures
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(figures.to_json())
            os.replace(temporary, self.path)  # readers see the old file or the new, whole
        except OSError as e:
            log.error("Could not write the cost series to {path}: {error}", path=self.path,
                      error=e.strerror)


def cost_families(figures: CostFigures, names: Names) -> Iterator[Metric]:
    """The cost series as metric families, labelled with the names in force."""
    month = GaugeMetricFamily("orgproxy_cost_month_to_date_usd",
                              "OpenAI's billed cost this UTC month so far, in USD, by key and project.",
                              labels=LABELS)
    last_day = GaugeMetricFamily("orgproxy_cost_last_day_usd",
                                 "OpenAI's billed cost on the last complete UTC day, in USD, by key and project.",
                                 labels=LABELS)
    key_names = names.by_field.get("api_key_id", {})
    project_names = names.by_field.get("project_id", {})
    for series in figures.series:
        if series.other:
            labels = ["", OTHER, "", ""]
        else:
            labels = [series.api_key_id or "", _name(series.api_key_id, key_names),
                      series.project_id or "", _name(series.project_id, project_names)]
        # Names are made text as they enter, but an id is the upstream's to choose: a lone
        # surrogate would fail the whole scrape (the text format is UTF-8).
        labels = [valid_text(label) for label in labels]
        month.add_metric(labels, series.month_to_date)
        last_day.add_metric(labels, series.last_day)
    yield month
    yield last_day
    yield GaugeMetricFamily("orgproxy_cost_refresh_timestamp_seconds",
                            "When the cost series were last refreshed (POSIX seconds; 0: never).",
                            value=figures.refreshed_at or 0.0)
    yield CounterMetricFamily("orgproxy_cost_refresh_failures",
                              "Refreshes of the cost series that failed.", value=figures.failures)


def _name(id_value: str | None, known: Any) -> str:
    if id_value is None:
        return ""
    name: str = known.get(id_value, UNKNOWN)
    return name


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


class CostRefresher(Periodic):
    """Fetches the month's costs every ``interval`` into ``store``."""

    def __init__(self, reactor: Any, fetch: Fetch, store: CostStore, interval: float, most: int):
        super().__init__(reactor, interval)
        self.fetch = fetch  # the Admin API's GETs, with the admin key (upstream.admin)
        self.store = store
        self.most = most

    def startService(self) -> None:
        self.store.load()  # the last values, until the first refresh
        super().startService()

    async def work(self, why: str) -> None:
        started = self.reactor.seconds()
        try:
            totals = await fetch_costs(self.fetch, Window.at(started))
        except DiscoveryFailed as e:
            self.failed(why, e.reason, e.retry_after)
        except CancelledError:
            raise
        except Exception:
            log.failure("Cost series refresh ({why}) failed unexpectedly", why=why)
            self.failed(why, "an internal error (see the log above)", None)
        else:
            series = bounded(totals, self.most)
            previous = self.store.figures
            self.store.replace(CostFigures(tuple(series), self.reactor.seconds(), previous.failures))
            log.info("Cost series ({why}): {count} series, ${total:,.2f} this month, in {seconds:.1f} s",
                     why=why, count=len(series), total=sum(s.month_to_date for s in series),
                     seconds=self.reactor.seconds() - started)
            self.succeeded("every --cost-interval")

    def failed(self, why: str, reason: str, retry_after: float | None) -> None:
        previous = self.store.figures
        self.store.replace(CostFigures(previous.series, previous.refreshed_at, previous.failures + 1))
        delay, how = self.retry(retry_after)
        log.warn("Cost series refresh ({why}) failed: {reason}; keeping the last values;"
                 " retrying in {delay:g} s ({how})", why=why, reason=reason, delay=delay, how=how)


def store_path(state_dir: str) -> str:
    return os.path.join(state_dir, FILENAME)
