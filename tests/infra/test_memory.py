"""The allocator's tuning and the idle trim (``infra/memory.py``): when the trim runs, on a
clock the test moves, with a trim function that only counts; glibc's own functions
called for real; and the trim wired to the in-flight count in the daemon, in memory."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from orgproxy.infra import memory
from orgproxy.infra.memory import IDLE_TRIM_DELAY, IdleTrim, heap_trimmer, keep_large_buffers
from tests.support.fake_openai import FakeOpenAI
from tests.support.memory import InMemoryProxy

DELAY = 5.0
COSTS = "/v1/organization/costs?start_time=1"


class Trims:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return 1


@pytest.fixture
def trims() -> Trims:
    return Trims()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def idle_trim(clock: Clock, trims: Trims) -> IdleTrim:
    trim = IdleTrim(clock, DELAY, trims)
    trim.startService()
    return trim


def burst(trim: IdleTrim, at_once: int = 1) -> None:
    """Requests in flight, ``at_once`` of them, then none, as InFlight tells it."""
    for count in range(1, at_once + 1):
        trim.in_flight_changed(count)
    for count in range(at_once - 1, -1, -1):
        trim.in_flight_changed(count)


def test_trims_once_idle_for_the_delay_after_requests(idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    burst(idle_trim, at_once=3)
    clock.advance(DELAY - 0.1)
    assert trims.count == 0
    clock.advance(0.1)
    assert trims.count == 1
    assert clock.getDelayedCalls() == []


def test_nothing_to_trim_before_the_first_request(idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    assert clock.getDelayedCalls() == []
    clock.advance(10 * DELAY)
    assert trims.count == 0


def test_staying_idle_trims_once(idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    burst(idle_trim)
    for _ in range(100):
        clock.advance(DELAY)
    assert trims.count == 1
    assert clock.getDelayedCalls() == []


def test_never_trims_while_a_request_is_in_flight(idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    burst(idle_trim)
    idle_trim.in_flight_changed(1)  # a long request, started before the delay is up
    for _ in range(10):
        clock.advance(DELAY)
    assert trims.count == 0
    idle_trim.in_flight_changed(0)
    clock.advance(DELAY)
    assert trims.count == 1


def test_requests_one_after_the_other_put_the_trim_off_with_one_timer(
        idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    # A client walking pages: a request every second, never idle for the delay.
    for _ in range(30):
        burst(idle_trim)
        assert len(clock.getDelayedCalls()) == 1
        clock.advance(1)
    assert trims.count == 0
    clock.advance(DELAY - 1)
    assert trims.count == 1


def test_requests_come_and_go_without_a_timer_each(clock: Clock, trims: Trims,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trim = IdleTrim(clock, DELAY, trims)
    trim.startService()
    scheduled = []
    call_later = clock.callLater
    monkeypatch.setattr(clock, "callLater", lambda *a, **k: scheduled.append(a) or call_later(*a, **k))
    for _ in range(1000):
        burst(trim)
    assert len(scheduled) == 1


def test_the_next_burst_after_a_trim_sets_the_next_trim(idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    burst(idle_trim)
    clock.advance(DELAY)
    assert trims.count == 1
    clock.advance(60)
    burst(idle_trim, at_once=16)
    clock.advance(DELAY - 0.1)
    assert trims.count == 1
    clock.advance(0.1)
    assert trims.count == 2


def test_a_stop_cancels_the_timer_and_requests_ending_after_it_set_none(
        idle_trim: IdleTrim, clock: Clock, trims: Trims) -> None:
    idle_trim.in_flight_changed(1)
    idle_trim.in_flight_changed(2)
    idle_trim.in_flight_changed(1)
    burst(idle_trim)
    assert clock.getDelayedCalls() != []
    idle_trim.stopService()
    assert clock.getDelayedCalls() == []
    idle_trim.in_flight_changed(0)  # a request drained after the stop
    assert clock.getDelayedCalls() == []
    clock.advance(DELAY)
    assert trims.count == 0


# --- glibc ---------------------------------------------------------------------------------------

def test_glibcs_functions_are_called_for_real() -> None:
    # This suite runs on glibc: both functions exist and say they did their work.
    assert keep_large_buffers()
    assert heap_trimmer()() in (0, 1)  # 1: memory was handed back; 0: there was none to


def test_without_glibc_the_trim_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    class NotGlibc:
        def __init__(self, name: object) -> None:
            pass  # a C library without mallopt and malloc_trim (musl)

    monkeypatch.setattr(ctypes, "CDLL", NotGlibc)
    assert not keep_large_buffers()
    assert heap_trimmer() is memory._no_trim
    assert heap_trimmer()() == 0


# --- in the daemon -------------------------------------------------------------------------------

def test_the_daemon_trims_once_its_requests_are_done_and_stops_the_timer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trims: Trims) -> None:
    monkeypatch.setattr("orgproxy.daemon.site.heap_trimmer", lambda: trims)
    proxy = InMemoryProxy(FakeOpenAI(), tmp_path, ["--idle-trim", "2"])
    try:
        proxy.start_service()
        assert proxy.get(COSTS).status == 200
        assert proxy.get(COSTS).status == 200
        proxy.advance(1.9)
        assert trims.count == 0
        proxy.advance(0.1)
        assert trims.count == 1
        assert proxy.get(COSTS).status == 200  # and the next request sets the next trim
    finally:
        proxy.close()  # fails on a timer left behind
    assert trims.count == 1


def test_the_default_delay_and_0_for_off(tmp_path: Path) -> None:
    proxy = InMemoryProxy(FakeOpenAI(), tmp_path)
    assert proxy.parts.front.idle_trim is not None and proxy.parts.front.idle_trim.delay == IDLE_TRIM_DELAY
    proxy.close()
    off = InMemoryProxy(FakeOpenAI(), tmp_path, ["--idle-trim", "0"])
    assert off.parts.front.idle_trim is None
    off.close()


def test_the_benchmark_waits_for_the_daemons_own_default_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("orgproxy_bench", ROOT / "bench" / "bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up
    monkeypatch.setattr(sys, "path", list(sys.path))  # it puts bench/ first, for its own modules
    spec.loader.exec_module(bench)
    assert bench.IDLE_TRIM_DEFAULT == IDLE_TRIM_DELAY
    assert bench.idle_trim_delay(["--workers", "2"]) == IDLE_TRIM_DELAY
    assert bench.idle_trim_delay(["--idle-trim", "2", "--idle-trim=0.5"]) == 0.5
