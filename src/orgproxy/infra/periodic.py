"""Work done again and again against the Admin API: at start, every ``interval`` seconds,
and on request; one run at a time; a failure retried with backoff, or after the upstream's
Retry-After.

Discovery (names) and the cost series share it: each says what one run does (``work``)
and reports how it ended (``succeeded`` or ``retry``); when the next run comes is decided
here, the same way for both.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall

FIRST_BACKOFF = 1.0
MAX_RETRY_AFTER = 3600.0


class Periodic(Service):
    """Runs ``work(why)`` at start, every ``interval`` after a success, and whenever
    ``request`` is called; a request during a run is folded into one more run after it."""

    def __init__(self, reactor: Any, interval: float):
        self.reactor = reactor
        self.interval = interval
        self.working: Deferred[None] | None = None
        self.again: str | None = None  # why another run was asked for during this one
        self.next_run: IDelayedCall | None = None
        self.failures = 0  # consecutive failed runs

    async def work(self, why: str) -> None:
        """One run; it ends by calling ``succeeded`` or ``retry``."""
        raise NotImplementedError

    def startService(self) -> None:
        super().startService()
        self.schedule(0, "start")

    def stopService(self) -> None:
        super().stopService()
        if self.next_run is not None and self.next_run.active():
            self.next_run.cancel()
        if self.working is not None:
            self.working.cancel()

    def schedule(self, delay: float, why: str) -> None:
        if self.next_run is not None and self.next_run.active():
            self.next_run.cancel()
        self.next_run = self.reactor.callLater(delay, self.request, why)

    def request(self, why: str) -> None:
        """Run now, or right after the run under way."""
        if not self.running:
            return
        if self.working is not None:
            self.again = self.again or why
            return
        working = Deferred.fromCoroutine(self._run(why))
        working.addErrback(lambda f: f.trap(CancelledError))
        # A run whose every page came at once (or whose first call failed at once) has
        # already run its end, which cleared ``working``: marking it running now would
        # leave it running forever, and every later request only queued behind it.
        if not working.called:
            self.working = working

    async def _run(self, why: str) -> None:
        try:
            await self.work(why)
        finally:
            self.working = None
        if self.again is not None:
            again, self.again = self.again, None
            self.request(again)

    def succeeded(self, why_next: str) -> None:
        self.failures = 0
        self.schedule(self.interval, why_next)

    def retry(self, retry_after: float | None) -> tuple[float, str]:
        """Schedule the retry of a failed run: (in how many seconds, why then)."""
        self.failures += 1
        if retry_after is not None:
            delay, how = min(retry_after, MAX_RETRY_AFTER), "as Retry-After asks"
        else:
            delay, how = min(FIRST_BACKOFF * 2 ** (self.failures - 1), self.interval), "backing off"
        self.schedule(delay, "retry")
        return delay, how
