"""Connections: accept errors said once a minute with their count, not once per
connection; the default --max-connections from the open-files limit."""

from __future__ import annotations

import resource
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogLevel, Logger

from orgproxy.web.connections import (
    RESERVED_DESCRIPTORS,
    UNLIMITED,
    Throttled,
    accept_errors_observer,
    default_max_connections,
    open_files_limit,
    said_out_of_descriptors,
)
from tests.support.scraped import scraped

Events = list[dict[str, Any]]


def said(logged: Events) -> list[dict[str, Any]]:
    return [e for e in logged
            if e.get("event") == "connections_out_of_descriptors" and e["log_level"] == LogLevel.error]


def test_a_flood_of_emfile_is_said_once_per_interval_with_its_count(logged: Events) -> None:
    clock = Clock()
    port_log = Logger(namespace="twisted.internet.tcp.Port", observer=accept_errors_observer(
        Throttled(clock, said_out_of_descriptors)))
    before = scraped("orgproxy_connections_closed_total", {"reason": "out_of_descriptors"})
    for _ in range(270):  # what Twisted's port logs for each connection it closed at once
        port_log.info("EMFILE encountered; releasing reserved file descriptor.")
        port_log.info("EMFILE recovery: Closed socket from {address}", address=("127.0.0.1", 40000))
        port_log.info("Re-reserving EMFILE recovery file descriptor.")
        clock.advance(0.1)
    assert [e["times"] for e in said(logged)] == [1]
    assert not [e for e in logged if e.get("log_namespace") != "orgproxy"]  # Twisted's own lines, gone
    clock.advance(60)
    port_log.info("Could not accept new connection ({acceptError})", acceptError="EMFILE")
    assert [e["times"] for e in said(logged)] == [1, 270]
    assert said(logged)[1]["limit"] == open_files_limit()
    after = scraped("orgproxy_connections_closed_total", {"reason": "out_of_descriptors"})
    assert after == before + 271


def test_a_port_s_other_events_pass_on(logged: Events) -> None:
    port_log = Logger(namespace="twisted.internet.tcp.Port", observer=accept_errors_observer(
        Throttled(Clock(), said_out_of_descriptors)))
    port_log.info("{factory} starting on {port}", factory="Site", port=18080)
    assert [e["port"] for e in logged if e.get("log_format") == "{factory} starting on {port}"] == [18080]


def test_throttled_says_the_first_at_once_then_once_per_interval() -> None:
    clock = Clock()
    times: list[int] = []
    throttled = Throttled(clock, times.append, interval=10)
    for _ in range(3):
        throttled.happened()
    clock.advance(9.9)
    throttled.happened()
    assert times == [1]
    clock.advance(0.1)
    throttled.happened()
    assert times == [1, 4]


@pytest.mark.parametrize(("limit", "expected"), [
    (1024, 1024 - 256 - RESERVED_DESCRIPTORS), (65536, 65536 - 256 - RESERVED_DESCRIPTORS), (256, 64), (2, 1),
])
def test_the_default_cap_leaves_room_for_upstream_connections_and_files(limit: int, expected: int) -> None:
    assert default_max_connections(256, limit) == expected


def test_the_limit_is_the_soft_one_and_unlimited_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_files_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert open_files_limit() == UNLIMITED
