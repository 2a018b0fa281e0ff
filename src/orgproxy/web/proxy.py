"""The proxy leaf: the Admin APIs' paths go to their provider's upstream and come back
with names: everything under ``/v1/organization/`` (and OpenAI's project role paths
under ``/v1/projects/``) to OpenAI, everything under ``/v1/organizations/`` to Anthropic.

One class serves both: the ``Provider`` it is given says where its paths start, which id
fields it names, what its errors look like and what a cache key must hold.

Twisted's traversal decodes each segment (``%2F``, ``%2e``) before this leaf is reached,
so the leaf checks the raw request target itself: the path that was checked is the path
that is forwarded, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from orgproxy.body.amend import UNKNOWN, Amended
from orgproxy.errors import (
    ProxyError,
    duplicate_authorization,
    not_found,
    request_too_large,
    too_many_requests,
    unknown_name,
)
from orgproxy.names.snapshot import CurrentNames, Names
from orgproxy.ops import metrics
from orgproxy.ops.logs import debug_enabled, log
from orgproxy.paths import is_forwardable, split_uri
from orgproxy.providers import OPENAI, Provider
from orgproxy.query import (
    UnknownName,
    bracket_arrays,
    ids_grouped_by,
    names_grouped_by,
    rewrite_group_by,
    rewrite_name_filters,
)
from orgproxy.upstream.cache import ResponseCache, cache_key
from orgproxy.upstream.client import NOT_FORWARDED_TO_UPSTREAM, HeaderList, UpstreamResponse, end_to_end
from orgproxy.web.pipeline import Answer, amend_names, regroup_rows, validate
from orgproxy.web.respond import method_of, printable, printable_text, refuse, refuse_method, send_error

# How many distinct unknown ids one request's log line lists.
UNKNOWN_IDS_LOGGED = 10
# How errors name each credential header.
CREDENTIAL_HEADER_TITLES = {b"authorization": "Authorization", b"x-api-key": "x-api-key"}
# The status counted for a request whose client left before the answer (nginx's use).
CLIENT_LEFT = 499
# What the Admin APIs use (GET, POST, DELETE), and HEAD and OPTIONS; any other method
# (TRACE, CONNECT, PUT, PATCH, a lowercase get) is a 405 and never forwarded.
FORWARDED_METHODS = (b"GET", b"POST", b"DELETE", b"HEAD", b"OPTIONS")
FORWARDED = frozenset(FORWARDED_METHODS)

# Sends (method, path and query, headers, body) upstream.
Forward = Callable[[bytes, bytes, HeaderList, "bytes | None"], "Deferred[UpstreamResponse]"]


class InFlight:
    """Counts forwarded requests not yet answered: for the concurrency limit, and so
    that a stop can wait for them."""

    def __init__(self, limit: int, on_change: Callable[[int], None] = lambda count: None):
        self.limit = limit
        self.count = 0
        self.waiting: list[Deferred[None]] = []
        self.on_change = on_change  # told each new count (the idle trim)

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    def enter(self) -> None:
        self.count += 1
        self.on_change(self.count)

    def leave(self, _: object = None) -> None:
        self.count -= 1
        self.on_change(self.count)
        if self.count == 0:
            waiting, self.waiting = self.waiting, []
            for idle in waiting:
                idle.callback(None)

    def idle(self) -> Deferred[None]:
        """Fires once no request is in flight."""
        idle: Deferred[None] = Deferred()
        if self.count == 0:
            idle.callback(None)
        else:
            self.waiting.append(idle)
        return idle


class OrganizationProxy(Resource):
    """Forwards what may be forwarded to ``provider``'s upstream (``forward``), and
    answers with names beside the ids."""

    isLeaf = True

    def __init__(self, forward: Forward, current: CurrentNames, clock: IReactorTime, in_flight: InFlight,
                 on_unknown: Callable[[Amended], None], *, replace_ids: bool = False,
                 cache: ResponseCache | None = None, provider: Provider = OPENAI):
        super().__init__()
        self.forward = forward
        self.current = current
        self.clock = clock
        self.in_flight = in_flight  # shared by every provider's leaf: one limit, one drain
        self.on_unknown = on_unknown  # ids nobody could name: the report, discovery
        self.replace_ids = replace_ids
        self.cache = cache
        self.provider = provider

    def render(self, request: server.Request) -> int:  # type: ignore[override]
        request.route = "proxy"  # type: ignore[attr-defined]
        provider = self.provider
        request.provider = provider.name  # type: ignore[attr-defined]
        path, query = split_uri(request.uri)
        if not is_forwardable(path, provider.prefix, provider.paths_outside_prefix):
            refuse(request, not_found(), provider)
        elif request.method not in FORWARDED:
            refuse_method(request, FORWARDED_METHODS, provider)
        elif getattr(request, "body_too_large", False):
            refuse(request, request_too_large(request.max_body), provider)  # type: ignore[attr-defined]
        elif (repeated := repeated_credential(request.requestHeaders, provider)) is not None:
            # Which one would count? The upstream, a cache key and a log could each pick
            # another: refused rather than guessed at.
            refuse(request, duplicate_authorization(repeated), provider)
        elif self.in_flight.full:
            refuse(request, too_many_requests(self.in_flight.limit), provider)
        else:
            self.start(request, path, query)
        return server.NOT_DONE_YET

    def start(self, request: server.Request, path: bytes, query: bytes | None) -> None:
        started = self.clock.seconds()
        names = self.current.names  # this request keeps this snapshot, whatever reloads happen
        provider = self.provider
        fields = provider.fields
        grouped: frozenset[str] = frozenset()
        named_nulls: frozenset[str] = frozenset()
        target = path
        if query is not None:
            try:
                upstream_query = rewrite_group_by(
                    rewrite_name_filters(query, names.ids_by_name_for(fields), fields), fields)
            except UnknownName as e:
                refuse(request, unknown_name(e.param, e.name), provider)
                return
            if provider.array_params:
                upstream_query = bracket_arrays(upstream_query, provider.array_params)
            grouped = names_grouped_by(query, fields)
            if fields.null_names:
                # Grouped by workspace_id, Anthropic's null is the Default Workspace.
                named_nulls = ids_grouped_by(upstream_query, fields.null_names)
            target = path + b"?" + upstream_query
        headers = request.requestHeaders
        has_body = headers.hasHeader(b"content-length") or headers.hasHeader(b"transfer-encoding")
        body = request.content.getvalue() if has_body else None
        # Taken before any work starts, so a client that leaves at once is still noticed.
        finished = request.notifyFinish()
        self.in_flight.enter()
        forwarded = end_to_end(headers, NOT_FORWARDED_TO_UPSTREAM)
        key = (cache_key(request.method, target, forwarded, provider.credential_headers)
               if self.cache is not None and body is None else None)
        if key is None:
            exchange = self.forward(request.method, target, forwarded, body)
        else:
            assert self.cache is not None
            exchange, outcome = self.cache.fetch(
                key, lambda: self.forward(request.method, target, forwarded, body))
            request.setHeader(b"x-orgproxy-cache", outcome.encode())
        answering = Exchange(self, request, path, names, started)
        finished.addErrback(answering.client_left, exchange)
        finished.addBoth(self.in_flight.leave)
        exchange.addCallback(answering.upstream_answered)
        exchange.addCallback(validate)
        exchange.addCallback(amend_names, names, fields, named_nulls)
        exchange.addCallback(answering.note_ids)
        exchange.addCallback(regroup_rows, grouped, names, self.replace_ids, fields)
        exchange.addCallbacks(answering.respond, answering.fail)
        exchange.addErrback(answering.bug)


def repeated_credential(headers: Headers, provider: Provider) -> str | None:
    """The name of a credential header the request sends more than once, if any."""
    for name in provider.credential_headers:
        if len(headers.getRawHeaders(name, ())) > 1:
            return CREDENTIAL_HEADER_TITLES.get(name, name.decode("ascii"))
    return None


class Exchange:
    """One forwarded request: answers the client once, and logs one line."""

    def __init__(self, proxy: OrganizationProxy, request: server.Request, path: bytes, names: Names,
                 started: float):
        self.proxy = proxy
        self.request = request
        self.path = path
        self.names = names
        self.started = started
        self.upstream_done = started
        self.gone = False

    def client_left(self, _: Failure, exchange: Deferred[UpstreamResponse]) -> None:
        self.gone = True
        exchange.cancel()

    def upstream_answered(self, response: UpstreamResponse) -> UpstreamResponse:
        self.upstream_done = self.proxy.clock.seconds()
        metrics.observe_upstream(self.upstream_done - self.started, self.proxy.provider.name)
        return response

    def note_ids(self, answer: Answer) -> Answer:
        """Count the ids, remember the unknown ones (and let discovery look for them)."""
        amended = answer.amended
        if answer.unparsable:
            log.warn("{method} {path}: the upstream's body is labelled JSON but does not parse;"
                     " passed through untouched", method=method_of(self.request), path=printable(self.path),
                     problem="does_not_parse")
        elif answer.too_deep:
            log.warn("{method} {path}: the upstream's JSON is nested too deeply to amend;"
                     " passed through untouched", method=method_of(self.request), path=printable(self.path),
                     problem="too_deep")
        if amended is None:
            return answer
        metrics.count_ids(amended.by_field, self.proxy.provider.name)
        if amended.unknown_ids:
            self.proxy.on_unknown(amended)
        if debug_enabled():
            self.log_ids(amended.occurrences)
        return answer

    def respond(self, answer: Answer) -> None:
        if self.gone:
            return
        response, request = answer.response, self.request
        request.setResponseCode(response.status, response.phrase)
        for name, values in response.headers:
            request.responseHeaders.setRawHeaders(name, values)
        if request.method == b"HEAD" and response.announced_length is not None:
            request.setHeader(b"content-length", response.announced_length)
        else:
            request.setHeader(b"content-length", b"%d" % len(answer.body))
        request.write(answer.body)
        request.finish()
        self.log_line(response.status, answer.amended)

    def fail(self, failure: Failure) -> None:
        clock = self.proxy.clock
        if failure.check(CancelledError) or self.gone:
            metrics.count_request("proxy", self.request.method, CLIENT_LEFT, self.proxy.provider.name)
            log.info("{method} {path}: the client left; the upstream request was cancelled",
                     method=method_of(self.request), path=printable(self.path))
            return None
        failure.trap(ProxyError)  # anything else is a bug, for bug() below
        error: ProxyError = failure.value
        metrics.observe_upstream(clock.seconds() - self.started, self.proxy.provider.name)
        send_error(self.request, error, self.proxy.provider)
        log.warn("{method} {path} -> {status} {code}: {message} (after {total_ms:.1f} ms)",
                 method=method_of(self.request), path=printable(self.path), status=error.status,
                 code=error.code, message=error.message, total_ms=(clock.seconds() - self.started) * 1000)
        return None

    def bug(self, failure: Failure) -> None:
        if not self.gone:
            self.request.processingFailed(failure)

    def log_ids(self, occurrences: dict[tuple[str, str], int]) -> None:
        for (id_field, id_value), times in occurrences.items():
            name = self.names.by_field.get(id_field, {}).get(id_value, UNKNOWN)
            log.debug("{method} {path}: {id_field} {id} named {name!r} in {times} objects",
                      method=method_of(self.request), path=printable(self.path), id_field=id_field,
                      id=printable_text(id_value), name=printable_text(name), times=times)

    def log_line(self, status: int, amended: Amended | None) -> None:
        named, unknown = (amended.named, amended.unknown) if amended is not None else (0, 0)
        unknown_ids: Collection[str] = amended.unknown_ids if amended is not None else ()
        listed = [printable_text(i) for i in list(unknown_ids)[:UNKNOWN_IDS_LOGGED]]
        more = len(unknown_ids) - len(listed)
        method, path = method_of(self.request), printable(self.path)
        now = self.proxy.clock.seconds()
        total_ms, upstream_ms = (now - self.started) * 1000, (self.upstream_done - self.started) * 1000
        unknown_list = f" ({', '.join(listed)}{f' and {more} more' if more else ''})" if listed else ""
        # Formatted here, once, with an f-string: twisted.logger's own formatting of a
        # many-field format string costs more than the rest of a small request's logging.
        # The fields still travel with the event, for the JSON lines observer.
        log.info("{line}", line=f"{method} {path} -> {status} in {total_ms:.1f} ms (upstream {upstream_ms:.1f} ms):"
                 f" {named} named, {unknown} unknown{unknown_list}",
                 method=method, path=path, status=status, total_ms=total_ms, upstream_ms=upstream_ms,
                 named=named, unknown=unknown, unknown_ids=listed)
