"""The response cache, driven by hand: a ``task.Clock`` for time and hand-made Deferreds
for the upstream calls, so nothing touches the network and nothing sleeps."""

from __future__ import annotations

import base64
import gc
import hashlib
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogEvent
from twisted.python.failure import Failure

from orgproxy.upstream.cache import ExpirySweep, Outcome, ResponseCache, cache_key, entry_size
from orgproxy.upstream.client import UpstreamResponse
from tests.support.properties import property_settings as examples_of

TTL = 10.0
TOKEN = b"sk-admin-CACHE-test-never-kept-8d41e7"
AUTH = b"Bearer " + TOKEN
OTHER_AUTH = b"Bearer sk-admin-OTHER-credential-19ac"
TARGET = b"/v1/organization/usage/completions?start_time=1730419200&group_by[]=project_id"


def response(status: int = 200, body: bytes = b'{"object": "page", "data": []}') -> UpstreamResponse:
    return UpstreamResponse(status, b"OK" if status == 200 else b"Not Found",
                            [(b"Content-Type", [b"application/json"])], body, None)


CREDENTIALS = (b"authorization",)  # OpenAI's; Anthropic's adds x-api-key
HeaderList = list[tuple[bytes, list[bytes]]]


def key(target: bytes = TARGET, authorization: bytes = AUTH, headers: HeaderList | None = None) -> bytes:
    made = cache_key(b"GET", target, [(b"Authorization", [authorization]), *(headers or [])], CREDENTIALS)
    assert made is not None
    return made


class FakeUpstream:
    """The upstream call: each call hands out a new pending Deferred, whose canceller is
    recorded, so a test fires (or checks the cancelling of) each call itself."""

    def __init__(self) -> None:
        self.calls: list[Deferred[UpstreamResponse]] = []
        self.cancelled: list[Deferred[UpstreamResponse]] = []

    def __call__(self) -> Deferred[UpstreamResponse]:
        call: Deferred[UpstreamResponse] = Deferred(self.cancelled.append)
        self.calls.append(call)
        return call


def results(d: Deferred[Any]) -> list[Any]:
    """A list that gets d's result, success or Failure; the failure is consumed."""
    box: list[Any] = []
    d.addBoth(box.append)
    return box


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> ResponseCache:
    return ResponseCache(clock, ttl=TTL, max_bytes=100_000)


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


# --- keys ---------------------------------------------------------------------------

def test_key_holds_no_trace_of_the_credential_and_is_one_digest() -> None:
    made = key()
    for secret in (AUTH, TOKEN):
        assert secret not in made
        for encode in (base64.b64encode, base64.urlsafe_b64encode, base64.b32encode, base64.b16encode):
            encoded = encode(secret)
            assert encoded not in made and encoded.rstrip(b"=") not in made
        assert secret.hex().encode() not in made
    assert len(made) == hashlib.sha256().digest_size
    assert len(key(target=TARGET * 100, headers=[(b"OpenAI-Beta", [b"x" * 5000])])) == len(made)


@pytest.mark.parametrize("method", [b"POST", b"HEAD", b"DELETE", b"PUT", b"OPTIONS", b"get"])
def test_non_get_has_no_key(method: bytes) -> None:
    assert cache_key(method, TARGET, [(b"Authorization", [AUTH])], CREDENTIALS) is None


@pytest.mark.parametrize("headers", [
    [], [(b"Accept", [b"application/json"])], [(b"Authorization", [b""])],
    [(b"X-Api-Key", [b"sk-ant-admin-x"])],  # not a credential of this provider
])
def test_a_request_without_a_credential_has_no_key(headers: HeaderList) -> None:
    """Nobody to keep it for: such requests would all share one entry."""
    assert cache_key(b"GET", TARGET, headers, CREDENTIALS) is None
    assert cache_key(b"GET", TARGET, [(b"x-api-key", [b"k"])], (b"authorization", b"x-api-key")) is not None


def test_keys_differ_by_credential_target_and_every_forwarded_header() -> None:
    variants = [
        key(), key(authorization=OTHER_AUTH), key(authorization=b"Bearer"),
        key(target=TARGET + b"&limit=7"), key(target=b"/v1/organization/costs"),
        key(headers=[(b"OpenAI-Beta", [b"assistants=v2"])]),
        key(headers=[(b"Accept", [b"text/csv"])]),
        key(headers=[(b"Accept", [b"application/json"])]),
        key(headers=[(b"User-Agent", [b"dashboards/1"])]),
        # Two headers are not one header with both values, nor the same two in another order.
        key(headers=[(b"OpenAI-Organization", [b"org-a", b"org-b"])]),
        key(headers=[(b"OpenAI-Organization", [b"org-a,org-b"])]),
        key(headers=[(b"OpenAI-Organization", [b"org-b", b"org-a"])]),
        key(headers=[(b"OpenAI-Organization", [b"org-a"])]),
        key(headers=[(b"OpenAI-Organization", [b""])]),
        # Length-prefixed: where one part ends and the next starts cannot be moved.
        key(headers=[(b"A", [b"b1 c"])]), key(headers=[(b"Ab", [b"1 c"])]),
    ]
    assert len(set(variants)) == len(variants)


def test_header_names_are_compared_lower_cased_and_in_any_order() -> None:
    one = cache_key(b"GET", TARGET, [(b"Authorization", [AUTH]), (b"OpenAI-Beta", [b"b"]), (b"Accept", [b"j"])],
                    CREDENTIALS)
    other = cache_key(b"GET", TARGET, [(b"accept", [b"j"]), (b"AUTHORIZATION", [AUTH]), (b"openai-beta", [b"b"])],
                      CREDENTIALS)
    assert one == other is not None


# --- freshness --------------------------------------------------------------------

def test_hit_within_ttl(cache: ResponseCache, clock: Clock, upstream: FakeUpstream) -> None:
    first, outcome = cache.fetch(key(), upstream)
    assert outcome == "miss"
    answer = response()
    upstream.calls[0].callback(answer)
    assert results(first) == [answer]

    clock.advance(TTL - 0.001)
    again, outcome = cache.fetch(key(), upstream)
    assert outcome == "hit"
    assert again.called and results(again) == [answer]
    assert len(upstream.calls) == 1


def test_miss_after_expiry_drops_the_stale_entry(cache: ResponseCache, clock: Clock,
                                                 upstream: FakeUpstream) -> None:
    cache.fetch(key(), upstream)
    upstream.calls[0].callback(response())
    assert (len(cache), cache.stored_bytes) == (1, entry_size(key(), response()))

    clock.advance(TTL)  # fresh while now < stored_at + ttl: at exactly ttl it is stale
    later, outcome = cache.fetch(key(), upstream)
    assert outcome == "miss"
    assert len(upstream.calls) == 2
    assert (len(cache), cache.stored_bytes) == (0, 0)
    newer = response(body=b'{"data": [1]}')
    upstream.calls[1].callback(newer)
    assert results(later) == [newer]
    assert cache.fetch(key(), upstream)[1] == "hit"


def test_entries_are_stale_when_the_clock_steps_back(cache: ResponseCache, clock: Clock,
                                                     upstream: FakeUpstream) -> None:
    clock.advance(100)
    cache.fetch(key(), upstream)
    upstream.calls[0].callback(response())
    clock.rightNow = 50.0  # a wall clock stepped back by NTP
    assert cache.fetch(key(), upstream)[1] == "miss"


def test_ttl_zero_stores_nothing(clock: Clock, upstream: FakeUpstream) -> None:
    cache = ResponseCache(clock, ttl=0, max_bytes=1_000)
    cache.fetch(key(), upstream)
    upstream.calls[0].callback(response())
    assert (len(cache), cache.stored_bytes) == (0, 0)
    assert cache.fetch(key(), upstream)[1] == "miss"


@pytest.mark.parametrize(("ttl", "max_bytes", "max_entries"),
                         [(-1.0, 10, 1), (float("nan"), 10, 1), (1.0, -1, 1), (1.0, 10, -1)])
def test_invalid_settings_are_refused(clock: Clock, ttl: float, max_bytes: int, max_entries: int) -> None:
    with pytest.raises(ValueError):
        ResponseCache(clock, ttl=ttl, max_bytes=max_bytes, max_entries=max_entries)


def test_credentials_are_isolated(cache: ResponseCache, upstream: FakeUpstream) -> None:
    cache.fetch(key(authorization=AUTH), upstream)
    theirs = response(body=b'{"data": ["first credential"]}')
    upstream.calls[0].callback(theirs)

    mine, outcome = cache.fetch(key(authorization=OTHER_AUTH), upstream)
    assert outcome == "miss"
    assert len(upstream.calls) == 2
    got = results(mine)
    assert got == []  # waiting on its own call, not answered from the first's entry
    own = response(body=b'{"data": ["second credential"]}')
    upstream.calls[1].callback(own)
    assert got[0] is own and got[0] is not theirs
    # Both entries are kept, each under its own credential.
    assert results(cache.fetch(key(authorization=AUTH), upstream)[0]) == [theirs]
    assert results(cache.fetch(key(authorization=OTHER_AUTH), upstream)[0]) == [own]


# --- coalescing ----------------------------------------------------------------------

def test_coalescing_shares_one_call(cache: ResponseCache, upstream: FakeUpstream) -> None:
    fetched = [cache.fetch(key(), upstream) for _ in range(5)]
    assert [outcome for _, outcome in fetched] == ["miss"] + ["coalesced"] * 4
    assert len(upstream.calls) == 1
    boxes = [results(d) for d, _ in fetched]
    assert all(box == [] for box in boxes)

    answer = response()
    upstream.calls[0].callback(answer)
    assert all(box == [answer] and box[0] is answer for box in boxes)
    assert cache.fetch(key(), upstream)[1] == "hit"


def test_different_targets_are_not_coalesced(cache: ResponseCache, upstream: FakeUpstream) -> None:
    cache.fetch(key(), upstream)
    assert cache.fetch(key(target=b"/v1/organization/costs"), upstream)[1] == "miss"
    assert len(upstream.calls) == 2


def test_non_200_is_delivered_to_all_waiters_but_never_stored(cache: ResponseCache,
                                                              upstream: FakeUpstream) -> None:
    boxes = [results(cache.fetch(key(), upstream)[0]) for _ in range(3)]
    refused = response(429, b'{"error": {"message": "Rate limit reached"}}')
    upstream.calls[0].callback(refused)
    assert all(box == [refused] for box in boxes)
    assert (len(cache), cache.stored_bytes) == (0, 0)
    assert cache.fetch(key(), upstream)[1] == "miss"
    assert len(upstream.calls) == 2


def test_failure_is_delivered_to_all_waiters_and_nothing_stored(
        cache: ResponseCache, upstream: FakeUpstream) -> None:
    boxes = [results(cache.fetch(key(), upstream)[0]) for _ in range(3)]
    upstream.calls[0].errback(ConnectionError("upstream went away"))
    failures = [box[0] for box in boxes]
    assert all(isinstance(f, Failure) and f.check(ConnectionError) for f in failures)
    assert len({id(f) for f in failures}) == 3  # each waiter its own copy
    assert (len(cache), cache.stored_bytes) == (0, 0)
    assert cache.fetch(key(), upstream)[1] == "miss"
    upstream.calls[1].callback(response())


def test_failures_leave_no_unhandled_error_behind(
        clock: Clock, upstream: FakeUpstream, logged_failures: Callable[[], list[LogEvent]]) -> None:
    cache = ResponseCache(clock, ttl=TTL, max_bytes=1_000)
    waiters = [cache.fetch(key(), upstream)[0] for _ in range(2)]
    upstream.calls[0].errback(ConnectionError("upstream went away"))
    for waiter in waiters:
        waiter.addErrback(lambda f: f.trap(ConnectionError))
    lonely, _ = cache.fetch(key(target=b"/v1/organization/costs"), upstream)
    lonely.cancel()
    lonely.addErrback(lambda f: f.trap(CancelledError))
    del waiters, lonely
    gc.collect()
    assert logged_failures() == []


def test_call_that_answers_at_once_or_raises(cache: ResponseCache) -> None:
    answer = response()
    d, outcome = cache.fetch(key(), lambda: succeed(answer))
    assert outcome == "miss" and results(d) == [answer]
    assert cache.fetch(key(), lambda: fail(AssertionError("not called")))[1] == "hit"

    def broken() -> Deferred[UpstreamResponse]:
        raise RuntimeError("could not even start")

    d, outcome = cache.fetch(key(target=b"/other"), broken)
    got = results(d)
    assert outcome == "miss" and got[0].check(RuntimeError)
    assert cache.fetch(key(target=b"/other"), lambda: Deferred())[1] == "miss"  # no stuck flight


def test_waiter_fetching_again_from_its_callback_gets_a_hit(cache: ResponseCache,
                                                            upstream: FakeUpstream) -> None:
    first, _ = cache.fetch(key(), upstream)
    refetched: list[Outcome] = []
    first.addCallback(lambda _: refetched.append(cache.fetch(key(), upstream)[1]))
    upstream.calls[0].callback(response())
    assert refetched == ["hit"]
    assert len(upstream.calls) == 1


# --- cancellation ----------------------------------------------------------------

def test_cancelling_one_of_two_waiters_keeps_the_call(
                                                      cache: ResponseCache, upstream: FakeUpstream) -> None:
    leaving, _ = cache.fetch(key(), upstream)
    staying, _ = cache.fetch(key(), upstream)
    left, stayed = results(leaving), results(staying)

    leaving.cancel()
    assert left[0].check(CancelledError)
    assert upstream.cancelled == [] and not upstream.calls[0].called

    answer = response()
    upstream.calls[0].callback(answer)
    assert stayed == [answer]
    assert len(left) == 1  # the cancelled waiter is not fired a second time


def test_cancelling_all_waiters_cancels_the_call(
                                                 cache: ResponseCache, upstream: FakeUpstream) -> None:
    waiters = [cache.fetch(key(), upstream)[0] for _ in range(3)]
    boxes = [results(w) for w in waiters]
    for waiter in waiters[:-1]:
        waiter.cancel()
    assert upstream.cancelled == []
    waiters[-1].cancel()
    assert upstream.cancelled == [upstream.calls[0]]  # its canceller ran
    assert all(box[0].check(CancelledError) for box in boxes)
    assert (len(cache), cache.stored_bytes) == (0, 0)
    # The next fetch starts afresh rather than joining the cancelled call.
    assert cache.fetch(key(), upstream)[1] == "miss"
    assert len(upstream.calls) == 2


def test_no_fetch_joins_a_call_its_waiters_all_left(
                                                     cache: ResponseCache) -> None:
    # A paused Deferred does not run its callbacks when cancelled: the call is still
    # being torn down when the next fetch comes.
    stuck: Deferred[UpstreamResponse] = Deferred()
    stuck.pause()
    leaving, _ = cache.fetch(key(), lambda: stuck)
    leaving.cancel()
    leaving.addErrback(lambda f: f.trap(CancelledError))
    fresh = FakeUpstream()
    d, outcome = cache.fetch(key(), fresh)
    assert outcome == "miss" and len(fresh.calls) == 1
    stuck.unpause()
    answer = response()
    fresh.calls[0].callback(answer)
    assert results(d) == [answer]


def test_a_waiter_cancelling_another_while_served(
                                                 cache: ResponseCache, upstream: FakeUpstream) -> None:
    first, second, third = (cache.fetch(key(), upstream)[0] for _ in range(3))
    first.addCallback(lambda _: second.cancel())
    got_second, got_third = results(second), results(third)
    answer = response()
    upstream.calls[0].callback(answer)
    assert got_second[0].check(CancelledError)
    assert got_third == [answer]
    assert upstream.cancelled == []


def test_cancelling_a_hit_does_nothing(cache: ResponseCache, upstream: FakeUpstream) -> None:
    cache.fetch(key(), upstream)
    answer = response()
    upstream.calls[0].callback(answer)
    hit, outcome = cache.fetch(key(), upstream)
    assert outcome == "hit"
    hit.cancel()
    assert results(hit) == [answer]
    assert len(cache) == 1


# --- memory bound ---------------------------------------------------------------

def store(cache: ResponseCache, upstream: FakeUpstream, target: bytes, body: bytes) -> None:
    """Fetch ``target`` (a miss) and answer it with a 200 of ``body``."""
    _, result = cache.fetch(key(target=target), upstream)
    assert result == "miss"
    upstream.calls[-1].callback(response(body=body))


def outcome_of(cache: ResponseCache, upstream: FakeUpstream, target: bytes) -> Outcome:
    """The outcome of fetching ``target``; a miss's call is cancelled at once."""
    d, result = cache.fetch(key(target=target), upstream)
    if result != "hit":
        upstream.calls[-1].cancel()
        d.addErrback(lambda f: f.trap(CancelledError))
    return result


def size(target: bytes, body: bytes) -> int:
    """What an entry for ``target`` answered with ``body`` counts against the bound."""
    return entry_size(key(target=target), response(body=body))


def test_an_entry_counts_its_key_headers_and_objects_not_only_its_body() -> None:
    answer = UpstreamResponse(200, b"OK", [(b"Content-Type", [b"application/json"]), (b"X-Request-Id", [b"req_1"])],
                              b"{}", b"2")
    long_key = key(target=b"/v1/organization/costs?x=" + b"a" * 10_000)
    counted = entry_size(long_key, answer)
    held = len(long_key) + len(answer.body) + len(b"Content-Type" b"application/json" b"X-Request-Id" b"req_1")
    assert counted >= held + 2 * 100  # and something for each header's objects
    assert counted == entry_size(key(), answer), "a key is a digest: a long query costs no more"


def test_the_count_covers_what_an_entry_really_holds_in_memory(clock: Clock) -> None:
    # Stored answers as OpenAI's look: a dozen headers, a small body, a long query. What
    # the process holds for them once only the cache refers to them, as tracemalloc sees
    # it, is at most what the cache counts.
    cache = ResponseCache(clock, ttl=TTL, max_bytes=10**9, max_entries=10**6)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(500):
            answer = UpstreamResponse(200, b"OK", [(b"X-Header-%d" % h, [b"value-%d-%d" % (i, h)]) for h in range(12)],
                                      b'{"n": %d}' % i, None)
            waiting = FakeUpstream()
            cache.fetch(key(target=TARGET + b"&n=%d" % i), waiting)
            waiting.calls[0].callback(answer)
        del answer, waiting
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(cache) == 500
    assert 500 * 1000 < held <= cache.stored_bytes, (held, cache.stored_bytes)


def test_body_over_max_bytes_is_not_stored(clock: Clock, upstream: FakeUpstream) -> None:
    cache = ResponseCache(clock, ttl=TTL, max_bytes=size(b"/small", b"x" * 10))
    store(cache, upstream, b"/small", b"x" * 10)
    store(cache, upstream, b"/large", b"y" * 11)
    assert (len(cache), cache.stored_bytes) == (1, size(b"/small", b"x" * 10))
    assert outcome_of(cache, upstream, b"/large") == "miss"
    assert outcome_of(cache, upstream, b"/small") == "hit"  # and nothing was evicted for it


def test_lru_eviction_with_a_hit_refreshing_recency(clock: Clock, upstream: FakeUpstream) -> None:
    one = size(b"/a", b"a" * 4)  # each of /a to /d
    cache = ResponseCache(clock, ttl=TTL, max_bytes=3 * one)
    store(cache, upstream, b"/a", b"a" * 4)
    store(cache, upstream, b"/b", b"b" * 4)
    store(cache, upstream, b"/c", b"c" * 4)
    assert outcome_of(cache, upstream, b"/a") == "hit"  # /b is now the least recently used
    store(cache, upstream, b"/d", b"d" * 4)
    assert cache.stored_bytes == 3 * one
    assert [outcome_of(cache, upstream, t) for t in (b"/a", b"/c", b"/d")] == ["hit"] * 3
    assert outcome_of(cache, upstream, b"/b") == "miss"
    # One bigger entry evicts as many of the oldest as it needs: /a and /c, not /d.
    store(cache, upstream, b"/e", b"e" * 8)
    assert (len(cache), cache.stored_bytes) == (2, one + size(b"/e", b"e" * 8))
    assert [outcome_of(cache, upstream, t) for t in (b"/d", b"/e")] == ["hit", "hit"]
    assert [outcome_of(cache, upstream, t) for t in (b"/a", b"/c")] == ["miss", "miss"]


def test_the_number_of_entries_is_bounded_too(clock: Clock, upstream: FakeUpstream) -> None:
    cache = ResponseCache(clock, ttl=TTL, max_bytes=10**9, max_entries=2)
    for target in (b"/a", b"/b", b"/c"):
        store(cache, upstream, target, b"{}")
    assert len(cache) == 2
    assert [outcome_of(cache, upstream, t) for t in (b"/b", b"/c", b"/a")] == ["hit", "hit", "miss"]


def test_expired_entries_are_evicted_before_fresh_ones(clock: Clock, upstream: FakeUpstream) -> None:
    one = size(b"/old", b"o" * 4)
    cache = ResponseCache(clock, ttl=TTL, max_bytes=2 * one)
    store(cache, upstream, b"/old", b"o" * 4)  # stored at 0
    clock.advance(5)
    store(cache, upstream, b"/yng", b"y" * 4)  # stored at 5
    clock.advance(1)
    assert outcome_of(cache, upstream, b"/old") == "hit"  # /yng is the least recently used
    clock.advance(5)  # now 11: /old is expired, /yng fresh until 15
    store(cache, upstream, b"/new", b"n" * 4)
    assert cache.stored_bytes == 2 * one
    assert [outcome_of(cache, upstream, t) for t in (b"/yng", b"/new")] == ["hit", "hit"]


def test_the_sweep_drops_expired_entries_nobody_asks_for_again(clock: Clock, upstream: FakeUpstream) -> None:
    cache = ResponseCache(clock, ttl=TTL, max_bytes=10**6)
    sweep = ExpirySweep(cache, clock, interval=TTL)
    sweep.startService()
    store(cache, upstream, b"/a", b"a")  # stored at 0, stale from 10
    clock.advance(5)
    store(cache, upstream, b"/b", b"b")  # stored at 5, stale from 15
    clock.advance(5)  # the sweep at 10
    assert len(cache) == 1 and cache.stored_bytes == size(b"/b", b"b")
    clock.advance(10)  # the sweep at 20
    assert (len(cache), cache.stored_bytes) == (0, 0)
    sweep.stopService()
    assert clock.getDelayedCalls() == []


# --- the bound and freshness, over random histories ----------------------------------

TARGETS = [b"/v1/organization/usage/completions", b"/v1/organization/costs", b"/v1/organization/projects"]
fetch_op = st.tuples(st.just("fetch"), st.integers(0, len(TARGETS) - 1), st.sampled_from([AUTH, OTHER_AUTH]))
land_op = st.tuples(st.just("land"), st.integers(0, 20), st.sampled_from([200, 200, 200, 404, "fail"]),
                    st.integers(0, 12))
advance_op = st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.999, 5.0, 7.0]))
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 40))


@examples_of(300)
@given(ttl=st.sampled_from([0.0, 1.0, 5.0, 10.0]), max_bytes=st.integers(0, 4 * entry_size(key(), response())),
       max_entries=st.integers(0, 4),
       ops=st.lists(st.one_of(fetch_op, fetch_op, land_op, advance_op, cancel_op), max_size=60))
def test_stored_bytes_stay_bounded_and_every_hit_is_a_fresh_200(
        ttl: float, max_bytes: int, max_entries: int, ops: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    cache = ResponseCache(clock, ttl=ttl, max_bytes=max_bytes, max_entries=max_entries)
    upstream = FakeUpstream()
    call_keys: list[bytes] = []  # the key each upstream call was made for
    made: dict[int, tuple[UpstreamResponse, bytes, float]] = {}  # id -> (response, key, landed at)
    waiters: list[tuple[Deferred[UpstreamResponse], bytes, list[Any]]] = []

    for op in ops:
        if op[0] == "fetch":
            k = key(target=TARGETS[op[1]], authorization=op[2])
            calls_before = len(upstream.calls)
            d, result = cache.fetch(k, upstream)
            if result == "miss":
                assert len(upstream.calls) == calls_before + 1
                call_keys.append(k)
            else:
                assert len(upstream.calls) == calls_before
            box = results(d)
            if result == "hit":
                assert len(box) == 1
                hit = box[0]
                assert isinstance(hit, UpstreamResponse) and hit.status == 200
                stored, origin, landed_at = made[id(hit)]
                assert stored is hit and origin == k
                assert landed_at <= clock.seconds() < landed_at + ttl
            waiters.append((d, k, box))
        elif op[0] == "land":
            pending = [(c, k) for c, k in zip(upstream.calls, call_keys) if not c.called]
            if pending:
                call, k = pending[op[1] % len(pending)]
                if op[2] == "fail":
                    call.errback(ConnectionError("lost"))
                else:
                    answer = response(op[2], b"z" * op[3])
                    made[id(answer)] = (answer, k, clock.seconds())
                    call.callback(answer)
        elif op[0] == "advance":
            clock.advance(op[1])
        elif waiters:
            waiters[op[1] % len(waiters)][0].cancel()
        assert 0 <= cache.stored_bytes <= max_bytes and len(cache) <= max_entries
        assert cache.stored_bytes == 0 or len(cache) > 0

    # Nobody is left hanging: once every call is over, every waiter has had its answer,
    # and only ever one made for its own key.
    for call, k in zip(upstream.calls, call_keys):
        if not call.called:
            answer = response()
            made[id(answer)] = (answer, k, clock.seconds())
            call.callback(answer)
    for _, k, box in waiters:
        assert len(box) == 1
        got = box[0]
        if isinstance(got, UpstreamResponse):
            assert made[id(got)][0] is got and made[id(got)][1] == k
        else:
            assert got.check(ConnectionError, CancelledError)
    assert 0 <= cache.stored_bytes <= max_bytes
