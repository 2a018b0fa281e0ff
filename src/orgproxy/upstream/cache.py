"""An opt-in, in-memory cache of upstream GET answers, with request coalescing.

Usage and costs dashboards fire the same queries over and over, and OpenAI rate-limits
them: identical GETs (same credential, same path and query) within ``--cache-ttl`` are
answered from memory, and identical GETs in flight at the same time share one upstream
call.  Only 200 answers are stored; everything else is passed on and forgotten.

The key never holds the Authorization header, only its SHA-256: keys end up in memory
dumps and may end up in logs.  The clock is injected, so tests drive time by hand.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from orgproxy.upstream.client import UpstreamResponse

__all__ = ["Outcome", "ResponseCache", "cache_key"]

Outcome = Literal["hit", "miss", "coalesced"]

# Stands in for the digest when there is no Authorization header at all, so that "no
# header" and "an empty header" stay different keys (the upstream may treat them apart).
_NO_CREDENTIAL = b"-"


def cache_key(method: bytes, authorization: bytes | None, target: bytes) -> bytes | None:
    """None for anything but GET; else ``GET <sha256 hex of Authorization> <target>``."""
    # HTTP methods are case-sensitive (RFC 9110, 9.1): "get" is not GET, and is not cached.
    if method != b"GET":
        return None
    digest = (_NO_CREDENTIAL if authorization is None
              else hashlib.sha256(authorization).hexdigest().encode("ascii"))
    # The digest is fixed-width (or "-") and has no space, so the first two spaces
    # split the key unambiguously whatever bytes the target holds.
    return b"GET " + digest + b" " + target


@dataclass(slots=True)
class _Entry:
    """A stored 200 answer and when (clock seconds) it was stored."""

    response: UpstreamResponse
    stored_at: float


@dataclass(eq=False, slots=True)
class _Flight:
    """One upstream call in progress and the callers waiting for it."""

    waiters: list[Deferred[UpstreamResponse]] = field(default_factory=list)
    upstream: Deferred[None] | None = None
    landed: bool = False


class ResponseCache:
    """Stored 200 answers by key, fresh for ``ttl`` seconds, at most ``max_bytes`` of body."""

    def __init__(self, clock: IReactorTime, ttl: float, max_bytes: int) -> None:
        # "not >=" also refuses NaN, which would make every comparison false.
        if not ttl >= 0:
            raise ValueError(f"cache ttl must be 0 or more seconds, not {ttl!r}")
        if max_bytes < 0:
            raise ValueError(f"cache max_bytes must be 0 or more, not {max_bytes!r}")
        self.clock = clock
        self.ttl = ttl
        self.max_bytes = max_bytes
        # Oldest use first: a hit moves its entry to the end, eviction pops from the front.
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._flights: dict[bytes, _Flight] = {}
        self._stored_bytes = 0

    @property
    def stored_bytes(self) -> int:
        """The sum of len(body) over the stored entries."""
        return self._stored_bytes

    def __len__(self) -> int:
        """The number of stored entries, fresh or not yet found stale."""
        return len(self._entries)

    def fetch(self, key: bytes, call: Callable[[], Deferred[UpstreamResponse]]
              ) -> tuple[Deferred[UpstreamResponse], Outcome]:
        """The answer for ``key``: stored ("hit"), shared with a call in flight
        ("coalesced"), or from a new ``call()`` ("miss").

        Each returned Deferred is the caller's own: cancelling it detaches only that caller,
        and the upstream call is cancelled once nobody waits for it any more.
        """
        entry = self._entries.get(key)
        if entry is not None:
            if self._fresh(entry):
                self._entries.move_to_end(key)
                return succeed(entry.response), "hit"
            self._drop(key)
        flight = self._flights.get(key)
        if flight is not None:
            return self._wait(key, flight), "coalesced"
        flight = self._flights[key] = _Flight()
        # The waiter is registered before the call starts: a call that answers at once
        # (an already-fired Deferred) must find someone to give its answer to.
        waiter = self._wait(key, flight)
        # maybeDeferred: a call that raises is a failure for the waiters like any other,
        # and never leaves a half-made flight behind.
        flight.upstream = maybeDeferred(call).addBoth(self._landed, key, flight)
        return waiter, "miss"

    def _fresh(self, entry: _Entry) -> bool:
        now = self.clock.seconds()
        # The lower bound: if the clock steps back (the reactor's is wall time), an entry
        # "from the future" is stale rather than fresh for longer than the TTL.
        return entry.stored_at <= now < entry.stored_at + self.ttl

    def _wait(self, key: bytes, flight: _Flight) -> Deferred[UpstreamResponse]:
        """A new waiter on ``flight``, which leaves it when cancelled."""
        waiter: Deferred[UpstreamResponse] = Deferred(lambda d: self._leave(key, flight, d))
        flight.waiters.append(waiter)
        return waiter

    def _leave(self, key: bytes, flight: _Flight, waiter: Deferred[UpstreamResponse]) -> None:
        """A waiter was cancelled (its client went away); the last one out cancels the call.

        The waiter itself is failed with CancelledError by ``Deferred.cancel`` afterwards.
        """
        if waiter in flight.waiters:
            flight.waiters.remove(waiter)
        if flight.waiters or flight.landed:
            return
        # Forgotten before it is cancelled: a fetch from now on starts a call of its own
        # instead of joining one that is being torn down.
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.upstream is not None:
            flight.upstream.cancel()

    def _landed(self, result: UpstreamResponse | Failure, key: bytes, flight: _Flight) -> None:
        """The call is over: store a 200, then give the result to everyone still waiting."""
        flight.landed = True
        if self._flights.get(key) is flight:
            del self._flights[key]
        # Stored before the waiters run, so that a waiter's callback fetching the same key
        # again gets a hit rather than a second upstream call.
        if isinstance(result, UpstreamResponse) and result.status == 200:
            self._store(key, result)
        waiters, flight.waiters = flight.waiters, []
        for waiter in waiters:
            # A waiter's callbacks may cancel another waiter not yet served.
            if waiter.called:
                continue
            if isinstance(result, Failure):
                # Each waiter's own copy: Deferred cleans (mutates) the Failure it carries,
                # and one caller handling its failure must not hide another's.
                waiter.errback(copy.copy(result))
            else:
                waiter.callback(result)
        # Returning None consumes the failure on the upstream Deferred: the waiters carry
        # it now, so nothing is logged as an unhandled error in it.
        return None

    def _store(self, key: bytes, response: UpstreamResponse) -> None:
        """Keep ``response`` if it fits, evicting expired entries first, then the least
        recently used, until it does."""
        # Whatever was there is older than this answer: never keep both, nor the older one.
        if key in self._entries:
            self._drop(key)
        size = len(response.body)
        # A TTL of 0 would store entries that are never fresh: memory for nothing.
        if self.ttl <= 0 or size > self.max_bytes:
            return
        if self._stored_bytes + size > self.max_bytes:
            for stale in [k for k, e in self._entries.items() if not self._fresh(e)]:
                self._drop(stale)
        while self._stored_bytes + size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        self._entries[key] = _Entry(response, self.clock.seconds())
        self._stored_bytes += size

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self._stored_bytes -= len(entry.response.body)
