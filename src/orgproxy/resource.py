"""HTTP in: /health, /orgproxy/unknown, and the proxy for everything under /v1/organization/.

One leaf resource routes on the raw path, so that the path that was checked is the path
that is forwarded (Twisted's own traversal would decode ``%2F`` and ``%2e`` first), and
so that every refusal is an OpenAI-shaped error rather than Twisted's HTML pages.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

import orjson
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from orgproxy import metrics
from orgproxy.access import TOKEN_HEADER, AllowList, token_matches
from orgproxy.amend import UNKNOWN, Amended, amend_json
from orgproxy.errors import (
    ProxyError,
    bad_client_token,
    forbidden_source,
    not_found,
    request_too_large,
    too_many_requests,
    unknown_name,
)
from orgproxy.cache import ResponseCache, cache_key
from orgproxy.grouping import regroup
from orgproxy.learning import DiscoveryService
from orgproxy.logs import debug_enabled, log
from orgproxy.names import CurrentNames, Names
from orgproxy.paths import is_forwardable, split_uri
from orgproxy.query import UnknownName, names_grouped_by, rewrite_group_by, rewrite_name_filters
from orgproxy.site import CappedRequest, printable, send_error
from orgproxy.times import iso
from orgproxy.unknown import UnknownIds
from orgproxy.upstream import NOT_FORWARDED_TO_UPSTREAM, Upstream, UpstreamResponse, end_to_end

# How many distinct unknown ids one request's log line lists.
UNKNOWN_IDS_LOGGED = 10
# The status counted for a request whose client left before the answer (nginx's use).
CLIENT_LEFT = 499
# Request headers that choose what OpenAI answers, besides the credential and target.
SCOPE_HEADERS = (b"openai-organization", b"openai-project")
# The proxy's own routes, by raw path, as named in metrics.
OWN_ROUTES = {b"/health": "health", b"/metrics": "metrics", b"/orgproxy/unknown": "unknown_report"}


def is_json_type(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


class InFlight:
    """Counts forwarded requests not yet answered, so that a stop can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self.waiting: list[Deferred[None]] = []

    def enter(self) -> None:
        self.count += 1

    def leave(self, _: object = None) -> None:
        self.count -= 1
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


class OrgproxyResource(Resource):
    isLeaf = True

    def __init__(self, upstream: Upstream, names: CurrentNames, clock: IReactorTime,
                 discovery: DiscoveryService | None = None, replace_ids: bool = False,
                 allow: AllowList | None = None, client_token: bytes | None = None,
                 max_concurrency: int = 256, cache: ResponseCache | None = None):
        super().__init__()
        self.cache = cache
        self.replace_ids = replace_ids
        self.allow = allow
        self.client_token = client_token
        self.max_concurrency = max_concurrency
        self.upstream = upstream
        self.names = names
        self.clock = clock
        self.discovery = discovery
        self.in_flight = InFlight()
        self.unknown = UnknownIds()

    def render(self, request: CappedRequest) -> bytes | int:  # type: ignore[override]
        # Twisted would label a body-less answer text/html; the proxy adds no content type
        # the upstream did not send.
        request.defaultContentType = None
        path, query = split_uri(request.uri)
        route = OWN_ROUTES.get(path) or ("proxy" if is_forwardable(path) else "other")
        refusal = self.refusal(request, route)
        if refusal is not None:
            return self.refuse(request, refusal, route)
        if route == "health":
            body = self.render_health(request)
        elif route == "metrics":
            content_type, body = metrics.render()
            request.setHeader(b"content-type", content_type)
        elif route == "unknown_report":
            body = self.render_unknown(request, query)
        elif route == "other":
            return self.refuse(request, not_found(), route)
        elif request.body_too_large:
            return self.refuse(request, request_too_large(CappedRequest.max_body), route)
        elif self.in_flight.count >= self.max_concurrency:
            return self.refuse(request, too_many_requests(self.max_concurrency), route)
        else:
            return self.forward(request, path, query)
        metrics.count_request(route, request.method, 200)
        return body

    def refusal(self, request: CappedRequest, route: str) -> ProxyError | None:
        """Why this caller may not be answered at all, if it may not."""
        address = request.getClientAddress()
        host = getattr(address, "host", None)  # None for a UNIX socket: this machine
        if self.allow is not None and host is not None and not self.allow.allows(host):
            return forbidden_source()
        # /health answers without the token: liveness probes cannot send one, and it
        # tells nothing but counts.
        if self.client_token is not None and route != "health" and not token_matches(
                self.client_token, request.requestHeaders.getRawHeaders(TOKEN_HEADER, [None])[-1]):
            return bad_client_token()
        return None

    def render_health(self, request: server.Request) -> bytes:
        current = self.names
        names = current.names
        request.setHeader(b"content-type", b"application/json")
        aliases = None
        if current.source is not None:
            aliases = {
                "path": current.source,
                "names": names.count(),
                "loaded_at": iso(current.loaded_at),
                "checked_at": iso(current.checked_at, precise=True),
                "error": current.error,  # the current file's problem; None when it loaded
            }
        return orjson.dumps({
            "status": "ok",
            "pid": os.getpid(),
            "names_loaded": names.count(),
            "names_by_field": names.counts(),
            "names_by_source": dict(names.by_source),
            "aliases": aliases,
            "discovery": self.discovery.status() if self.discovery is not None else {"enabled": False},
        })

    def render_unknown(self, request: server.Request, query: bytes | None) -> bytes:
        names = self.names.names
        wanted = parse_qs((query or b"").decode("latin-1")).get("format", ["json"])[-1]
        if wanted == "toml":
            request.setHeader(b"content-type", b"application/toml; charset=utf-8")
            return self.unknown.toml_skeleton(names).encode("utf-8")
        request.setHeader(b"content-type", b"application/json")
        return orjson.dumps(self.unknown.report(names))

    def saw_unknown(self, amended: Amended) -> None:
        """Remember the ids a response could not name, and let discovery look for them."""
        if not amended.unknown_ids:
            return
        self.unknown.record(amended.occurrences, amended.unknown_ids, self.clock.seconds())
        if self.discovery is not None:
            self.discovery.unknown_seen(amended.unknown_ids)

    @staticmethod
    def cache_key(request: CappedRequest, target: bytes) -> bytes | None:
        """Same credential, same organization and project headers, same target."""
        headers = request.requestHeaders
        scope = b"\n".join(b",".join(headers.getRawHeaders(name, [])) for name in SCOPE_HEADERS)
        return cache_key(request.method, headers.getRawHeaders(b"authorization", [None])[-1],
                         target + b"\n" + scope)

    def refuse(self, request: server.Request, error: ProxyError, route: str) -> int:
        send_error(request, error)
        metrics.count_request(route, request.method, error.status)
        log.info("{method} {path} -> {status} {code}", method=request.method.decode("ascii", "replace"),
                 path=printable(split_uri(request.uri)[0]), status=error.status, code=error.code)
        return server.NOT_DONE_YET

    def forward(self, request: CappedRequest, path: bytes, query: bytes | None) -> int:
        started = self.clock.seconds()
        names = self.names.names  # this request keeps this snapshot, whatever reloads happen
        grouped: frozenset[str] = frozenset()
        target = path
        if query is not None:
            try:
                upstream_query = rewrite_group_by(rewrite_name_filters(query, names.ids_by_name))
            except UnknownName as e:
                return self.refuse(request, unknown_name(e.param, e.name), "proxy")
            grouped = names_grouped_by(query)
            target = path + b"?" + upstream_query
        has_body = (request.requestHeaders.hasHeader(b"content-length")
                    or request.requestHeaders.hasHeader(b"transfer-encoding"))
        # Taken before any work starts, so a client that leaves at once is still noticed.
        finished = request.notifyFinish()
        self.in_flight.enter()
        headers = end_to_end(request.requestHeaders, NOT_FORWARDED_TO_UPSTREAM)
        body = request.content.getvalue() if has_body else None

        def call_upstream() -> Deferred[UpstreamResponse]:
            return self.upstream.forward(request.method, target, headers, body)

        key = self.cache_key(request, target) if self.cache is not None and body is None else None
        if key is None:
            exchange = call_upstream()
        else:
            assert self.cache is not None
            exchange, outcome = self.cache.fetch(key, call_upstream)
            request.setHeader(b"x-orgproxy-cache", outcome.encode())
        exchange_state = _Exchange(self, request, path, names, started, grouped)
        finished.addErrback(exchange_state.client_left, exchange)
        finished.addBoth(self.in_flight.leave)
        exchange.addCallbacks(exchange_state.respond, exchange_state.fail)
        exchange.addErrback(exchange_state.bug)
        return server.NOT_DONE_YET


class _Exchange:
    """One forwarded request: answers the client once, and logs one line."""

    def __init__(self, proxy: OrgproxyResource, request: CappedRequest, path: bytes, names: Names,
                 started: float, grouped: frozenset[str]):
        self.proxy = proxy
        self.grouped = grouped  # id fields the caller grouped by name: rows to merge
        self.request = request
        self.path = path
        self.names = names
        self.started = started
        self.gone = False

    def client_left(self, _: Failure, exchange: Deferred[UpstreamResponse]) -> None:
        self.gone = True
        exchange.cancel()

    def respond(self, response: UpstreamResponse) -> None:
        clock = self.proxy.clock
        upstream_done = clock.seconds()
        metrics.UPSTREAM_SECONDS.observe(upstream_done - self.started)
        body = response.body
        named = unknown = 0
        unknown_ids: dict[str, str] = {}
        content_type = next((v[-1] for k, v in response.headers if k.lower() == b"content-type"), None)
        if body and is_json_type(content_type):
            amended = amend_json(body, self.names)
            if amended is None:
                log.warn("{method} {path}: the upstream's body is labelled JSON but does not parse;"
                         " passed through untouched", method=self.method, path=printable(self.path))
            else:
                body, named, unknown, unknown_ids = (amended.body, amended.named, amended.unknown,
                                                     amended.unknown_ids)
                metrics.count_ids(amended.occurrences, amended.unknown_ids)
                self.proxy.saw_unknown(amended)
                if self.grouped or self.proxy.replace_ids:
                    body = regroup(body, self.grouped, self.names, self.proxy.replace_ids) or body
                if debug_enabled():
                    self.log_ids(amended.occurrences)
        if self.gone:
            return
        metrics.count_request("proxy", self.request.method, response.status)
        request = self.request
        request.setResponseCode(response.status, response.phrase)
        for name, values in response.headers:
            request.responseHeaders.setRawHeaders(name, values)
        if request.method == b"HEAD" and response.announced_length is not None:
            request.setHeader(b"content-length", response.announced_length)
        else:
            request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
        self.log_line(response.status, clock.seconds(), upstream_done, named, unknown, unknown_ids)

    def fail(self, failure: Failure) -> None:
        clock = self.proxy.clock
        if failure.check(CancelledError) or self.gone:
            metrics.count_request("proxy", self.request.method, CLIENT_LEFT)
            log.info("{method} {path}: the client left; the upstream request was cancelled",
                     method=self.method, path=printable(self.path))
            return None
        failure.trap(ProxyError)  # anything else is a bug, for bug() below
        error: ProxyError = failure.value
        metrics.UPSTREAM_SECONDS.observe(clock.seconds() - self.started)
        metrics.count_request("proxy", self.request.method, error.status)
        send_error(self.request, error)
        log.warn("{method} {path} -> {status} {code}: {message} (after {total_ms:.1f} ms)",
                 method=self.method, path=printable(self.path), status=error.status,
                 code=error.code, message=error.message,
                 total_ms=(clock.seconds() - self.started) * 1000)
        return None

    def bug(self, failure: Failure) -> None:
        self.request.processingFailed(failure)

    def log_ids(self, occurrences: dict[tuple[str, str], int]) -> None:
        for (id_field, id_value), times in occurrences.items():
            name = self.names.by_field.get(id_field, {}).get(id_value, UNKNOWN)
            log.debug("{method} {path}: {id_field} {id} named {name!r} in {times} objects",
                      method=self.method, path=printable(self.path), id_field=id_field,
                      id=id_value, name=name, times=times)

    @property
    def method(self) -> str:
        return self.request.method.decode("ascii", "replace")

    def log_line(self, status: int, now: float, upstream_done: float, named: int, unknown: int,
                 unknown_ids: dict[str, Any]) -> None:
        listed = list(unknown_ids)[:UNKNOWN_IDS_LOGGED]
        more = len(unknown_ids) - len(listed)
        method, path = self.method, printable(self.path)
        total_ms, upstream_ms = (now - self.started) * 1000, (upstream_done - self.started) * 1000
        unknown_list = f" ({', '.join(listed)}{f' and {more} more' if more else ''})" if listed else ""
        # Formatted here, once, with an f-string: twisted.logger's own formatting of a
        # many-field format string costs more than the rest of a small request's logging.
        # The fields still travel with the event, for the JSON lines observer.
        log.info("{line}", line=f"{method} {path} -> {status} in {total_ms:.1f} ms (upstream {upstream_ms:.1f} ms):"
                 f" {named} named, {unknown} unknown{unknown_list}",
                 method=method, path=path, status=status, total_ms=total_ms, upstream_ms=upstream_ms,
                 named=named, unknown=unknown, unknown_ids=listed)
