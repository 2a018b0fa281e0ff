"""The site: HTTP in below the resources, and the one place the resource tree is built.

Requests are capped in size and in time (a request's line, headers and body must arrive
within ``--header-timeout``, however slowly its bytes trickle), connections in number
(``--max-connections``, ``--max-connections-per-source``: see ``connections.py``), and
request bodies in memory. Nothing is read from a connection from outside
``--allow-from`` (it is closed as it is accepted), nor a byte of a request's body before
the guard has accepted its head (``allHeadersReceived``), and the bodies held across all
connections are capped (``--max-buffered-request-bytes``). Even requests too malformed to
reach a resource are answered in a provider's error shape (Anthropic's once the request
line has named a path under /v1/organizations/, OpenAI's otherwise).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource

from orgproxy._twisted_private import BadRequestHook, send_in_pieces_of
from orgproxy.errors import (
    ProxyError,
    bad_request,
    headers_too_large,
    internal_error,
    request_bodies_full,
    request_timeout,
    too_many_connections,
    too_many_headers,
    uri_too_long,
)
from orgproxy.infra import metrics
from orgproxy.infra.logs import log
from orgproxy.paths import split_uri
from orgproxy.providers import provider_for_path
from orgproxy.web.access import AllowList
from orgproxy.web.connections import (
    ClientConnections,
    Throttled,
    said_made_room,
    said_outside_allow_from,
    said_over_capacity,
)
from orgproxy.web.dashboard import DashboardSources, OwnDirectory, add_dashboard
from orgproxy.web.guard import AccessGuard, first_segments, route_of_target
from orgproxy.web.names import NamesListing
from orgproxy.web.resources import Directory, Health, MetricsPage, UnknownReport
from orgproxy.web.respond import log_refused, method_of, path_of, reason_phrase, send_error

MAX_REQUEST_BODY = 1024 * 1024
MAX_BUFFERED_REQUEST_BYTES = 64 * 1024 * 1024
# What every answer says in its Server header: no version to look vulnerabilities up by
# (Twisted's own would be TwistedWeb/26.10.0).
SERVER = b"orgproxy"


class BufferedBytes:
    """The bytes of request bodies held in memory across all connections, against a cap."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold ``size`` bytes more, if the cap leaves room for them."""
        if self.limit is not None and self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


class CappedRequest(server.Request):
    """A request that keeps at most ``max_body`` bytes of body, in memory.

    Twisted spools large bodies to temporary files; the admin API's bodies are tiny, so
    anything over the cap is dropped as it arrives and answered with 413.
    """

    max_body = MAX_REQUEST_BODY
    body_too_large = False
    # Twisted would label a body-less answer text/html; the proxy adds no content type
    # the upstream did not send, and its own answers say theirs.
    defaultContentType = None
    # The route the request took, as metrics name it (each resource sets its own), and
    # the provider whose proxy answered it (set by the proxy leaves).
    route = "other"
    provider = metrics.NO_PROVIDER

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()
        if length is not None and length > self.max_body:
            self.body_too_large = True

    # The site's count of body bytes held, and this request's share of it until it is done.
    bodies: BufferedBytes | None = None
    held = 0

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        size = len(data)
        if self.content.tell() + size > self.max_body:
            self.body_too_large = True
            self.content = BytesIO()
            self.give_back_body()
            return
        bodies = self.bodies
        if bodies is None:
            bodies = self.bodies = self.channel.site.request_bodies
        if not bodies.take(size):
            self.content = BytesIO()
            self.give_back_body()
            self.channel.refuse_request(request_bodies_full(bodies.limit or 0))
            return
        self.held += size
        self.content.write(data)

    def give_back_body(self) -> None:
        if self.held and self.bodies is not None:
            self.bodies.give_back(self.held)
            self.held = 0

    def finish(self) -> None:
        self.give_back_body()
        super().finish()

    def connectionLost(self, reason: Failure) -> None:
        self.give_back_body()
        super().connectionLost(reason)

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            # Set as the head goes out (finish() without a body writes too), so every
            # answer says it, a proxied one included: the upstream's Server describes a
            # server the client is not talking to, as nginx's proxy_hide_header holds.
            self.responseHeaders.setRawHeaders(b"server", [SERVER])
        super().write(data)

    def process(self) -> None:
        # Twisted answers the asterisk form (OPTIONS *, GET *) itself, before any resource
        # or the access guard: an empty 200 or a bare 405. Here it is one more path the
        # proxy does not serve: through the guard, to an OpenAI-shaped 404.
        if self.path == b"*":
            self.path = b"/*"
        super().process()

    def processingFailed(self, reason: Failure) -> None:
        # A fault of the proxy's own: the traceback goes to the operator's log, the client
        # gets a plain JSON 500 (in its path's provider's shape) instead of Twisted's HTML page.
        log.failure("{method} {path}: internal error", reason, event="internal_error",
                    method=method_of(self), path=path_of(self))
        # The channel is None once the client has gone (Request.connectionLost).
        if not self.finished and not self.startedWriting and self.channel is not None:
            send_error(self, internal_error())


class OrgproxyChannel(BadRequestHook):
    """Twisted's HTTP channel, answering what it refuses in a provider's error shape,
    giving each request a deadline to arrive whole, and reading no body the guard has
    not let in.

    Twisted answers a malformed request with a bare ``400`` and a request line longer
    than its limit with nothing at all; SDKs and people then see a dropped connection.
    Its only timer is an idle timeout that every byte resets, so a client sending a
    header byte a minute would hold a connection for days.
    """

    # Bytes handed to one send() (see send_in_pieces_of).
    SEND_LIMIT = 1024 * 1024

    site: OrgproxySite
    # Seconds from a request's first byte (or the connection's start) until its line,
    # headers and body have all arrived; None for no deadline. Set by the site.
    header_timeout: float | None = None
    deadline: IDelayedCall | None = None
    # The method and target of the request line of the request arriving, once that line
    # has come: the target's path is the one whose provider's error shape an answer from
    # the channel takes, and None until then tells a long request line (414) from a long
    # header (431).
    request_method = b""
    request_target: bytes | None = None
    # Bytes of the lines of the request arriving, counted as Twisted counts them against
    # totalHeadersSize: past it, a refusal is a 431, not a 400.
    head_bytes = 0
    awaiting_request = True  # no request being answered: what arrives starts the next one
    request_begun = False  # a byte of the next request has arrived
    closing = False  # answered for good: nothing more is read

    def connectionMade(self) -> None:
        super().connectionMade()
        send_in_pieces_of(self.transport, self.SEND_LIMIT)
        self.start_deadline()  # a connection that never sends a request is closed too

    _host: IAddress | None = None

    def getHost(self) -> IAddress:
        # Asked once per request (by twisted.web's Request): a connection's own address
        # never changes, and asking the socket is a system call.
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        if self.awaiting_request and data:
            self.request_begun = True
            if self.deadline is None:
                self.start_deadline()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self.head_bytes += len(line)
        if self.request_target is None and line:  # the request line (a blank one is skipped)
            parts = line.split(b" ")
            if len(parts) == 3:
                self.request_method, self.request_target = parts[0], parts[1]
            else:
                self.request_target = b""
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        # A request with a body is put to the guard now, before a byte of its body is read
        # (one without is put to it on its way to a resource, like every request).
        if self.length != 0:
            error = self.site.refusal_before_body(self.requests[-1].requestHeaders, self.request_target or b"")
            if error is not None:
                self.refuse_request(error)
                return  # not Twisted's: no 100 Continue, no body
        super().allHeadersReceived()

    def start_deadline(self) -> None:
        if self.header_timeout is not None:
            self.deadline = self.callLater(self.header_timeout, self.deadline_passed)

    def allContentReceived(self) -> None:
        if self.closing:
            return  # refused already: the request is not answered twice
        if self.deadline is not None:
            if self.deadline.active():
                self.deadline.cancel()
            self.deadline = None
        self.awaiting_request = self.request_begun = False
        self.request_target = None
        self.head_bytes = 0
        self.site.connections.holding_request(self)
        super().allContentReceived()

    def requestDone(self, request: server.Request) -> None:
        self.awaiting_request = True
        if self.persistent:
            self.site.connections.waiting_for_request(self)
        super().requestDone(request)

    def deadline_passed(self) -> None:
        self.deadline = None
        metrics.count_connection_closed("header_timeout")
        if self.request_begun:
            self.answer_and_close(request_timeout(self.header_timeout or 0))
        else:
            self.loseConnection()

    def make_room(self) -> None:
        """Close this connection, which holds no whole request, for a newer one (the site
        no longer counts it)."""
        metrics.count_connection_closed("evicted")
        if self.site.made_room is not None:
            self.site.made_room.happened()
        if self.request_begun:
            self.answer_and_close(too_many_connections())
        else:
            self.closing = True
            self.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None
        site = getattr(self, "site", None)
        if isinstance(site, OrgproxySite):
            site.connections.closed(self)
        super().connectionLost(reason)

    def refuse_malformed(self) -> None:
        if self.head_bytes > self.totalHeadersSize:
            self.answer_and_close(headers_too_large(self.totalHeadersSize))
        elif self.requests and header_count(self.requests[-1]) > self.maxHeaders:
            self.answer_and_close(too_many_headers(self.maxHeaders))
        else:
            self.answer_and_close(bad_request())

    def lineLengthExceeded(self, line: bytes) -> None:
        self.answer_and_close(uri_too_long(self.MAX_LENGTH) if self.request_target is None
                              else headers_too_large(self.MAX_LENGTH))

    def refuse_request(self, error: ProxyError) -> None:
        """Answer the request arriving with ``error`` before its body is read, count it
        and log it as any refused request, and close."""
        target = self.request_target or b""
        metrics.count_request(route_of_target(target), self.request_method, error.status)
        log_refused(self.request_method, target, error)
        self.answer_and_close(error)

    def answer_and_close(self, error: ProxyError) -> None:
        body = provider_for_path(split_uri(self.request_target or b"")[0]).error_body(error)
        head = [b"HTTP/1.1 %d %s" % (error.status, reason_phrase(error.status)), b"Server: " + SERVER,
                b"Content-Type: application/json", b"Content-Length: %d" % len(body), b"Connection: close"]
        if error.retry is not None:
            head.append(b"x-should-retry: " + (b"true" if error.retry else b"false"))
        if error.retry_after is not None:
            head.append(b"Retry-After: %d" % error.retry_after)
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.closing = True
        self.loseConnection()


def header_count(request: server.Request) -> int:
    """How many headers the channel has taken for a request: it adds each to the request's
    headers as it counts it against maxHeaders, so past that limit a refusal is a 431."""
    return sum(len(values) for _, values in request.requestHeaders.getAllRawHeaders())


class OrgproxySite(server.Site):
    requestFactory = CappedRequest
    # The channel itself, not Twisted's wrapper that would negotiate HTTP/2: orgproxy
    # speaks HTTP/1.1, and the wrapper costs a call per read.
    protocol = OrgproxyChannel
    noisy = False
    displayTracebacks = False

    header_timeout: float | None = None  # given to each channel
    allow: AllowList | None = None  # who may connect; None: anyone
    guard: AccessGuard | None = None
    over_capacity: Throttled | None = None
    made_room: Throttled | None = None
    outsiders: Throttled | None = None

    def __init__(self, resource: IResource, *args: Any, **kwargs: Any):
        super().__init__(resource, *args, **kwargs)
        self.connections = ClientConnections()  # the caps: none, until make_site sets them
        self.request_bodies = BufferedBytes(MAX_BUFFERED_REQUEST_BYTES)

    def buildProtocol(self, addr: IAddress) -> Any:
        # None: the port closes the new socket at once, before reading a byte of it.
        host = getattr(addr, "host", None)  # None for a UNIX socket's peer
        if host is not None and self.allow is not None and not self.allow.allows(host):
            metrics.count_connection_closed("forbidden_source")
            if self.outsiders is not None:
                self.outsiders.happened()
            return None
        refused = self.connections.room_for(host)
        if refused is not None:
            metrics.count_connection_closed(refused)
            if self.over_capacity is not None:
                self.over_capacity.happened()
            return None
        channel = super().buildProtocol(addr)
        channel.header_timeout = self.header_timeout
        self.connections.opened(channel, host)
        return channel

    def refusal_before_body(self, headers: Headers, target: bytes) -> ProxyError | None:
        """Why a request with these headers, for this target, may not be answered: asked
        before its body is read."""
        return None if self.guard is None else self.guard.refusal(headers, *first_segments(target))

    def log(self, request: server.Request) -> None:
        # Twisted's access log is replaced by the proxy's own line per request (no query
        # strings, and what the proxy did); here each finished request is counted.
        metrics.count_request(getattr(request, "route", "other"), request.method, request.code,
                              getattr(request, "provider", metrics.NO_PROVIDER))


def make_site(*, proxy: IResource, health: Health, unknown_report: UnknownReport,
              allow: AllowList | None, client_token: bytes | None, reactor: IReactorTime,
              anthropic_proxy: IResource | None = None, header_timeout: float | None = None,
              max_connections: int | None = None, max_connections_per_source: int | None = None,
              max_buffered_request_bytes: int = MAX_BUFFERED_REQUEST_BYTES,
              dashboard: DashboardSources | None = None) -> OrgproxySite:
    """The whole tree, behind the site's admission (``allow``, the connection caps) and
    the access guard (``client_token``):

    ``/health``, ``/metrics``, ``/orgproxy/unknown``, ``/orgproxy/names``, the dashboard
    (``/orgproxy/`` and ``/orgproxy/costs.json``, where ``dashboard`` says what it reads),
    ``/v1/organization/...`` and
    ``/v1/projects/...`` (the proxy to OpenAI, which forwards only the Admin API's paths)
    and ``/v1/organizations/...`` (the proxy to Anthropic, another leaf of the same
    class); every other path a 404 (Anthropic-shaped under ``/v1/organizations``,
    OpenAI-shaped elsewhere).
    """
    root = Directory()
    root.putChild(b"health", health)
    root.putChild(b"metrics", MetricsPage())
    own = OwnDirectory()
    own.putChild(b"unknown", unknown_report)
    own.putChild(b"names", NamesListing(health.current))
    if dashboard is not None:
        add_dashboard(own, dashboard)
    root.putChild(b"orgproxy", own)
    v1 = Directory()
    v1.putChild(b"organization", proxy)
    v1.putChild(b"projects", proxy)  # the Admin API's project role paths (see paths.py)
    if anthropic_proxy is not None:
        v1.putChild(b"organizations", anthropic_proxy)
    root.putChild(b"v1", v1)
    guard = AccessGuard(root, client_token)
    # The reactor drives the connections' idle timeouts and deadlines.
    site = OrgproxySite(guard, reactor=reactor)
    site.guard = guard
    site.allow = allow
    site.outsiders = Throttled(reactor, said_outside_allow_from)
    site.header_timeout = header_timeout
    site.connections = ClientConnections(max_connections, max_connections_per_source)
    site.request_bodies = BufferedBytes(max_buffered_request_bytes)
    if max_connections is not None:
        site.over_capacity = Throttled(reactor, said_over_capacity(max_connections))
        site.made_room = Throttled(reactor, said_made_room(max_connections, max_connections_per_source))
    return site
