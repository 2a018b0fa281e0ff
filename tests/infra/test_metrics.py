"""The metrics of one process, and of a daemon of several: prometheus_client's multiprocess
mode, in the test process. Two processes are two ``Metrics`` writing one directory under
pids of their own; each records what it records before the next is made, since the
storage of a new series is chosen per process, when the series is made (see the module)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from orgproxy.snapshot import Names
from orgproxy.infra.metrics import (
    EACH_PROCESS_ALIKE,
    FLUSH_INTERVAL,
    MULTIPROC_DIR_VARIABLE,
    ONE_PROCESS,
    Metrics,
    MetricsFlush,
)

FIRST, WORKER = 101, 102
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: Metrics) -> Samples:
    """What a scrape answered by this process shows."""
    content_type, body = metrics.render()
    assert content_type.startswith(b"text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


def proxied(samples: Samples) -> float:
    return samples[("orgproxy_requests_total",
                    (("method", "GET"), ("provider", "openai"), ("route", "proxy"), ("status", "200")))]


def in_flight(samples: Samples) -> float:
    return samples[("orgproxy_requests_in_flight", ())]


def process(directory: Path, pid: int) -> Metrics:
    return Metrics(str(directory), first_process=pid == FIRST, process=lambda: pid)


def test_counts_from_every_process_add_up_in_whichever_answers_the_scrape(tmp_path: Path) -> None:
    first = process(tmp_path, FIRST)
    for _ in range(3):
        first.count_request("proxy", b"GET", 200, "openai")
    first.observe_upstream(0.2, "openai")
    first.count_ids({("api_key_id", "named"): 4})
    first.flush()  # (as the first process does every second)
    worker = process(tmp_path, WORKER)
    for _ in range(2):
        worker.count_request("proxy", b"GET", 200, "openai")
    worker.observe_upstream(0.3, "openai")
    worker.count_ids({("api_key_id", "named"): 1, ("api_key_id", "unknown"): 2})
    worker.flush()
    for answering in (first, worker):
        samples = scrape(answering)
        assert proxied(samples) == 5
        assert samples[("orgproxy_upstream_seconds_count", (("provider", "openai"),))] == 2
        assert samples[("orgproxy_upstream_seconds_bucket", (("le", "0.25"), ("provider", "openai")))] == 1
        assert samples[("orgproxy_upstream_seconds_count", (("provider", "anthropic"),))] == 0  # from the start
        openai = ("provider", "openai")
        assert samples[("orgproxy_ids_total", (("field", "api_key_id"), openai, ("result", "named")))] == 5
        assert samples[("orgproxy_ids_total", (("field", "api_key_id"), openai, ("result", "unknown")))] == 2
        assert samples[("orgproxy_ids_total", (("field", "user_id"), openai, ("result", "named")))] == 0
        assert samples[("orgproxy_ids_total",
                        (("field", "workspace_id"), ("provider", "anthropic"), ("result", "named")))] == 0
    # Each process writes files of its own.
    assert {f"{kind}_{pid}.db" for pid in (FIRST, WORKER) for kind in ("counter", "histogram")} <= set(
        os.listdir(tmp_path))


def test_a_dead_workers_counts_stay_and_its_requests_in_flight_go(tmp_path: Path) -> None:
    first = process(tmp_path, FIRST)
    first.in_flight.set(2)
    worker = process(tmp_path, WORKER)
    worker.in_flight.set(3)
    worker.count_request("proxy", b"GET", 200, "openai")
    worker.flush()
    assert in_flight(scrape(first)) == 5
    first.worker_ended(WORKER)
    samples = scrape(first)
    assert in_flight(samples) == 2  # the dead worker's requests are not in flight any more
    assert proxied(samples) == 1  # but what it counted stays counted


def test_the_names_in_force_are_the_scraping_processs_own(tmp_path: Path) -> None:
    five = Names.from_aliases({"api_keys": {f"key_{n}": f"name {n}" for n in range(5)}})
    six = Names.from_aliases({"api_keys": {f"key_{n}": f"name {n}" for n in range(6)}})
    first = process(tmp_path, FIRST)
    first.follow_names(lambda: five.by_source)
    worker = process(tmp_path, WORKER)
    worker.follow_names(lambda: six.by_source)
    aliases = ("orgproxy_names_loaded", (("source", "aliases"),))
    assert scrape(first)[aliases] == 5
    assert scrape(worker)[aliases] == 6  # every process should agree; the one asked answers
    assert scrape(first)[aliases] == 5


def test_a_gauge_one_process_writes_shows_in_every_processs_scrape(tmp_path: Path) -> None:
    # The shape of issue 15's cost series: fetched and set by the first process alone.
    first = process(tmp_path, FIRST)
    cost = first.gauge("orgproxy_cost_month_to_date_usd", "Cost this month.", ["api_key_id"], written_by=ONE_PROCESS)
    cost.labels("key_a").set(12.5)
    cost.labels("key_a").set(13.25)
    worker = process(tmp_path, WORKER)
    for answering in (first, worker):
        assert scrape(answering)[("orgproxy_cost_month_to_date_usd", (("api_key_id", "key_a"),))] == 13.25


def test_an_alias_reload_every_process_makes_is_counted_once(tmp_path: Path) -> None:
    first = process(tmp_path, FIRST)
    first.count_alias_reload("ok")
    worker = process(tmp_path, WORKER)
    worker.count_alias_reload("ok")
    assert scrape(worker)[("orgproxy_alias_reloads_total", (("result", "ok"),))] == 1


def test_one_process_keeps_its_metrics_in_memory_whatever_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(tmp_path))
    alone = Metrics()
    alone.count_request("proxy", b"GET", 200, "openai")
    alone.in_flight.set(1)
    samples = scrape(alone)
    assert (proxied(samples), in_flight(samples)) == (1, 1)
    assert os.listdir(tmp_path) == []


def test_a_gauge_says_who_writes_it() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="written_by must be one of livesum, livemostrecent, mostrecent"):
        metrics.gauge("orgproxy_something", "Something.", written_by="all")
    assert metrics.gauge("orgproxy_alike", "Alike.", written_by=EACH_PROCESS_ALIKE) is not None


def test_counts_are_written_in_a_batch_every_second_and_before_every_scrape() -> None:
    metrics = Metrics()
    clock = Clock()
    flushing = MetricsFlush(metrics, clock)
    flushing.startService()
    labels = {"route": "proxy", "method": "GET", "status": "200", "provider": "openai"}

    def stored() -> float | None:  # what a scrape would read, without the scrape's own flush
        return metrics.registry.get_sample_value("orgproxy_requests_total", labels)
    metrics.count_request("proxy", b"GET", 200, "openai")
    metrics.count_request("proxy", b"GET", 200, "openai")
    assert stored() is None  # counted, not yet written
    clock.advance(FLUSH_INTERVAL)
    assert stored() == 2
    metrics.count_request("proxy", b"GET", 200, "openai")
    assert proxied(scrape(metrics)) == 3  # a scrape never shows stale counts
    flushing.stopService()
    assert clock.getDelayedCalls() == []


def test_the_requests_in_flight_are_read_at_each_flush() -> None:
    metrics = Metrics()
    count = [0]
    metrics.follow_in_flight(lambda: count[0])
    count[0] = 4
    assert in_flight(scrape(metrics)) == 4
    count[0] = 0
    assert in_flight(scrape(metrics)) == 0
