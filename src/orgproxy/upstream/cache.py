"""An opt-in, in-memory cache of upstream GET answers, with request coalescing.

Usage and costs dashboards fire the same queries over and over, and OpenAI rate-limits
them: identical GETs within ``--cache-ttl`` are answered from memory, and identical GETs
in flight at the same time share one upstream call.  Only 200 answers are stored;
everything else is passed on and forgotten.

Identical means: the same path and query and the same headers, exactly as they are sent
upstream. Any header may choose what the upstream answers (``OpenAI-Beta``, ``Accept``,
two ``OpenAI-Organization`` headers rather than one with both values), so the key covers
every forwarded header, names lower-cased (HTTP's are case-insensitive) and sorted (the
order of different headers means nothing, RFC 9110 5.3), each header's values in the
order sent (which does mean something). A request without a credential is never cached:
it has nobody to be kept for, and all such requests would share one entry.

The key is one SHA-256 over all of it: the credential is in no key, only in its digest
(keys end up in memory dumps and may end up in logs), every key is 32 bytes however long
the request, and a hit costs one hash.  The clock is injected, so tests drive time by hand.

Memory is bounded by what an entry really holds, not by its body alone: the key, the
headers and the Python objects around them are counted too (a flood of distinct queries
with small answers is mostly keys and headers), the number of entries is bounded, and
expired entries are swept on a timer (``ExpirySweep``) rather than left until looked up.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from orgproxy.upstream.client import HeaderList, UpstreamResponse

__all__ = ["ExpirySweep", "Outcome", "ResponseCache", "cache_key", "entry_size"]

Outcome = Literal["hit", "miss", "coalesced"]

# What an entry costs beyond the bytes it holds: the entry, the response and the dictionary
# slot (about 330 bytes as tracemalloc measures them on CPython 3.11), and for each header
# its tuple, list and two bytes objects (about 190). Rounded up; test_cache.py checks that
# the count covers what tracemalloc sees.
ENTRY_OVERHEAD = 512
HEADER_OVERHEAD = 256


def entry_size(key: bytes, response: UpstreamResponse) -> int:
    """The bytes an entry holds in memory, as the cache counts them against its bound."""
    headers = sum(HEADER_OVERHEAD + len(name) + sum(len(value) for value in values)
                  for name, values in response.headers)
    return (ENTRY_OVERHEAD + len(key) + len(response.body) + len(response.phrase) + headers
            + len(response.announced_length or b""))


def cache_key(method: bytes, target: bytes, headers: HeaderList, credential_headers: Collection[bytes]
              ) -> bytes | None:
    """The key of a request sent upstream as ``method target`` with ``headers``: None for
    anything but GET, and for a request that sends none of ``credential_headers`` (lower
    case) with a value; else the SHA-256 of the target and every header (see above)."""
    # HTTP methods are case-sensitive (RFC 9110, 9.1): "get" is not GET, and is not cached.
    if method != b"GET":
        return None
    # Each part is preceded by its length, so no two requests hash the same bytes
    # whatever bytes their target and headers hold.
    lowered = [(name.lower(), values) for name, values in headers]
    lowered.sort()
    parts = [b"%d %s" % (len(target), target)]
    credential = False
    for name, values in lowered:
        if name in credential_headers and any(values):
            credential = True
        for value in values:
            parts.append(b"%d %s%d %s" % (len(name), name, len(value), value))
    if not credential:
        return None
    return hashlib.sha256(b"".join(parts)).digest()


@dataclass(slots=True)
class _Entry:
    """A stored 200 answer, when (clock seconds) it was stored, and its counted size."""

    response: UpstreamResponse
    stored_at: float
    size: int


@dataclass(eq=False, slots=True)
class _Flight:
    """One upstream call in progress and the callers waiting for it."""

    waiters: list[Deferred[UpstreamResponse]] = field(default_factory=list)
    upstream: Deferred[None] | None = None
    landed: bool = False


class ResponseCache:
    """Stored 200 answers by key, fresh for ``ttl`` seconds: at most ``max_bytes`` of
    memory (``entry_size``) in at most ``max_entries`` entries."""

    def __init__(self, clock: IReactorTime, ttl: float, max_bytes: int, max_entries: int = 10_000) -> None:
        # "not >=" also refuses NaN, which would make every comparison false.
        if not ttl >= 0:
            raise ValueError(f"cache ttl must be 0 or more seconds, not {ttl!r}")
        if max_bytes < 0:
            raise ValueError(f"cache max_bytes must be 0 or more, not {max_bytes!r}")
        if max_entries < 0:
            raise ValueError(f"cache max_entries must be 0 or more, not {max_entries!r}")
        self.clock = clock
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # Oldest use first: a hit moves its entry to the end, eviction pops from the front.
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._flights: dict[bytes, _Flight] = {}
        self._stored_bytes = 0

    @property
    def stored_bytes(self) -> int:
        """The memory the stored entries hold, as ``entry_size`` counts it."""
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
        size = entry_size(key, response)
        # A TTL of 0 would store entries that are never fresh: memory for nothing.
        if self.ttl <= 0 or size > self.max_bytes or self.max_entries == 0:
            return
        if not self._fits(size):
            self.evict_expired()
        while not self._fits(size):
            oldest = next(iter(self._entries))
            self._drop(oldest)
        self._entries[key] = _Entry(response, self.clock.seconds(), size)
        self._stored_bytes += size

    def _fits(self, size: int) -> bool:
        return self._stored_bytes + size <= self.max_bytes and len(self._entries) < self.max_entries

    def evict_expired(self) -> int:
        """Drop every entry no longer fresh; how many were dropped."""
        stale = [key for key, entry in self._entries.items() if not self._fresh(entry)]
        for key in stale:
            self._drop(key)
        return len(stale)

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self._stored_bytes -= entry.size


class ExpirySweep(Service):
    """Sweeps the cache's expired entries every ``interval`` seconds while running: an
    entry nobody asks for again would otherwise stay until the cache is full."""

    def __init__(self, cache: ResponseCache, clock: IReactorTime, interval: float):
        self.loop = LoopingCall(cache.evict_expired)
        self.loop.clock = clock
        self.interval = interval

    def startService(self) -> None:
        super().startService()
        self.loop.start(self.interval, now=False)

    def stopService(self) -> None:
        if self.loop.running:
            self.loop.stop()
        super().stopService()
