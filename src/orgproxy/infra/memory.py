"""Keep the pages of large buffers mapped while serving, and hand them back when idle
(glibc's allocator only).

A 10 MB usage page passes through several buffers of its size: the upstream's body, the
amended body, the transport's write buffer. glibc serves each allocation of 128 KiB or
more with a fresh mmap() and unmaps it on free(), so every request faults every page of
every such buffer in again, in system time a large page's request spends on nothing else
(bench/README.md, Memory). Raising the mmap threshold (to glibc's maximum) puts those
buffers in the heap, and raising the trim threshold keeps the heap's freed top for the
next request.

The cost: after large responses the process would keep the memory they used, free for
the next ones rather than given back, all day, for a daemon idle most of it
(bench/README.md, Memory). So ``IdleTrim`` calls glibc's ``malloc_trim(0)`` once no
request has been in flight for a few seconds (``--idle-trim``): a burst keeps its buffers,
and an idle daemon returns to about its size before the burst.
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from orgproxy.infra.logs import log

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above 32 MiB on 64-bit systems.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024

# Seconds without a request in flight before the heap's free pages are handed back
# (--idle-trim's default). Long enough that a client walking pages one after the other,
# or a dashboard's burst of panels, keeps its buffers between requests (that reuse is the
# point of the thresholds above); short enough that an idle daemon is back to its size
# before anyone looks at a graph of it.
IDLE_TRIM_DELAY = 5.0


def keep_large_buffers() -> bool:
    """Tune the allocator as above; False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _no_trim() -> int:
    return 0


def heap_trimmer() -> Callable[[], int]:
    """glibc's ``malloc_trim(0)``: every arena's free pages handed back to the system
    (not only the top of the heap, which the trim threshold governs), after a collection
    of Python's reference cycles. Where the C library is not glibc, a function that does
    nothing."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return _no_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def collect_and_trim() -> int:
        # A request's garbage in reference cycles (a cancelled exchange's Deferreds and
        # failures, with the buffers they reach) waits for the cyclic collector, which
        # runs on allocations: an idle daemon makes none, so it would wait all day.
        gc.collect()
        return int(trim(0))
    return collect_and_trim


class IdleTrim(Service):
    """Calls ``trim`` once no request has been in flight for ``delay`` seconds, once per
    idle spell: not before the first request, not again until requests have come and gone.

    Fed by ``in_flight_changed`` (the in-flight count's every change), which costs a
    request nearly nothing: the count, and at its return to zero a timestamp. One timer
    at most is pending; when it fires early (requests came and went meanwhile), it waits
    again for what is left of the delay since the last one ended.
    """

    def __init__(self, clock: IReactorTime, delay: float, trim: Callable[[], object]):
        self.clock = clock
        self.delay = delay
        self.trim = trim
        self.in_flight = 0
        # When the last request ended, while there is something to hand back (None:
        # nothing has been served since the last trim).
        self.idle_since: float | None = None
        self.timer: IDelayedCall | None = None

    def in_flight_changed(self, count: int) -> None:
        self.in_flight = count
        if count == 0:
            self.idle_since = self.clock.seconds()
            if self.timer is None and self.running:
                self.timer = self.clock.callLater(self.delay, self.check)

    def check(self) -> None:
        self.timer = None
        if self.in_flight or self.idle_since is None:
            return  # busy: the last request's end sets the next check
        left = self.idle_since + self.delay - self.clock.seconds()
        if left > 0:
            self.timer = self.clock.callLater(left, self.check)
            return
        self.idle_since = None
        started = time.perf_counter()
        self.trim()
        log.debug("Idle for {delay:g} s: free memory handed back to the system in {took_ms:.1f} ms",
                  event="memory_trimmed", delay=self.delay, took_ms=(time.perf_counter() - started) * 1000)

    def startService(self) -> None:
        super().startService()
        if self.idle_since is not None and not self.in_flight and self.timer is None:
            self.timer = self.clock.callLater(self.delay, self.check)

    def stopService(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().stopService()
